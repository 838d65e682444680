// Plain double-precision reference implementations of the kernels, written for clarity
// rather than speed and, where it matters, by a different route than the kernels (the conv
// backward-data reference scatters, the kernel gathers), so a shared mistake is unlikely.
// Activations are channels-last, as odyssey stores them.
module;
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>
export module odyssey.testing:reference;

export namespace odyssey::testing::ref {

struct Conv {
  std::size_t n, c, h, w, k, r, s, stride, pad;
  std::size_t p() const { return (h + 2 * pad - r) / stride + 1; }
  std::size_t q() const { return (w + 2 * pad - s) / stride + 1; }
};

/// Visits every (output pixel, tap) pair whose input pixel lies inside the image.
template <class F>
void for_each_tap(const Conv& g, F&& f) {
  for (std::size_t n = 0; n < g.n; ++n)
    for (std::size_t p = 0; p < g.p(); ++p)
      for (std::size_t q = 0; q < g.q(); ++q)
        for (std::size_t r = 0; r < g.r; ++r)
          for (std::size_t s = 0; s < g.s; ++s) {
            const long ih = long(p * g.stride + r) - long(g.pad), iw = long(q * g.stride + s) - long(g.pad);
            if (ih < 0 || iw < 0 || ih >= long(g.h) || iw >= long(g.w)) continue;
            const std::size_t xi = ((n * g.h + std::size_t(ih)) * g.w + std::size_t(iw)) * g.c;
            const std::size_t yi = ((n * g.p() + p) * g.q() + q) * g.k;
            f(xi, yi, r * g.s + s);
          }
}

std::vector<double> conv_forward(const Conv& g, const std::vector<double>& x,
                                 const std::vector<double>& w, const double* bias) {
  std::vector<double> y(g.n * g.p() * g.q() * g.k, 0.0);
  if (bias)
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = bias[i % g.k];
  for_each_tap(g, [&](std::size_t xi, std::size_t yi, std::size_t tap) {
    for (std::size_t k = 0; k < g.k; ++k)
      for (std::size_t c = 0; c < g.c; ++c) y[yi + k] += w[(k * g.c + c) * g.r * g.s + tap] * x[xi + c];
  });
  return y;
}

std::vector<double> conv_backward_data(const Conv& g, const std::vector<double>& dy,
                                       const std::vector<double>& w) {
  std::vector<double> dx(g.n * g.h * g.w * g.c, 0.0);
  for_each_tap(g, [&](std::size_t xi, std::size_t yi, std::size_t tap) {
    for (std::size_t k = 0; k < g.k; ++k)
      for (std::size_t c = 0; c < g.c; ++c) dx[xi + c] += w[(k * g.c + c) * g.r * g.s + tap] * dy[yi + k];
  });
  return dx;
}

/// Returns {dw, db}.
std::vector<std::vector<double>> conv_backward_weights(const Conv& g, const std::vector<double>& x,
                                                       const std::vector<double>& dy) {
  std::vector<double> dw(g.k * g.c * g.r * g.s, 0.0), db(g.k, 0.0);
  for_each_tap(g, [&](std::size_t xi, std::size_t yi, std::size_t tap) {
    for (std::size_t k = 0; k < g.k; ++k)
      for (std::size_t c = 0; c < g.c; ++c) dw[(k * g.c + c) * g.r * g.s + tap] += dy[yi + k] * x[xi + c];
  });
  for (std::size_t i = 0; i < dy.size(); ++i) db[i % g.k] += dy[i];
  return {dw, db};
}

// ---- batch norm, [M,C] rows, written with the textbook (unsimplified) chain rule.
struct BatchNormOut {
  std::vector<double> y, mean, rstd, running_mean, running_var;
};

BatchNormOut batchnorm_forward_training(std::size_t M, std::size_t C, const std::vector<double>& x,
                                        const std::vector<double>& gamma, const std::vector<double>& beta,
                                        std::vector<double> rm, std::vector<double> rv,
                                        double momentum, double eps) {
  BatchNormOut o{std::vector<double>(M * C), std::vector<double>(C), std::vector<double>(C), rm, rv};
  for (std::size_t c = 0; c < C; ++c) {
    double mean = 0, var = 0;
    for (std::size_t m = 0; m < M; ++m) mean += x[m * C + c];
    mean /= double(M);
    for (std::size_t m = 0; m < M; ++m) var += (x[m * C + c] - mean) * (x[m * C + c] - mean);
    var /= double(M);
    o.mean[c] = mean;
    o.rstd[c] = 1 / std::sqrt(var + eps);
    for (std::size_t m = 0; m < M; ++m) o.y[m * C + c] = (x[m * C + c] - mean) * o.rstd[c] * gamma[c] + beta[c];
    o.running_mean[c] = (1 - momentum) * rm[c] + momentum * mean;
    o.running_var[c] = (1 - momentum) * rv[c] + momentum * var * double(M) / double(M - 1);
  }
  return o;
}

/// Returns {dx, dgamma, dbeta}.
std::vector<std::vector<double>> batchnorm_backward_training(
    std::size_t M, std::size_t C, const std::vector<double>& x, const std::vector<double>& dy,
    const std::vector<double>& gamma, const std::vector<double>& mean, const std::vector<double>& rstd) {
  std::vector<double> dx(M * C), dg(C, 0.0), db(C, 0.0);
  for (std::size_t c = 0; c < C; ++c) {
    const double r = rstd[c], var_eps = 1 / (r * r);
    double dvar = 0, dmean = 0, sum_xm = 0;
    for (std::size_t m = 0; m < M; ++m) {
      const double xm = x[m * C + c] - mean[c], dxhat = dy[m * C + c] * gamma[c];
      dvar += dxhat * xm * -0.5 * std::pow(var_eps, -1.5);
      dmean += -dxhat * r;
      sum_xm += -2 * xm;
      dg[c] += dy[m * C + c] * xm * r;
      db[c] += dy[m * C + c];
    }
    dmean += dvar * sum_xm / double(M);
    for (std::size_t m = 0; m < M; ++m) {
      const double xm = x[m * C + c] - mean[c];
      dx[m * C + c] = dy[m * C + c] * gamma[c] * r + dvar * 2 * xm / double(M) + dmean / double(M);
    }
  }
  return {dx, dg, db};
}

std::vector<double> batchnorm_forward_inference(std::size_t M, std::size_t C, const std::vector<double>& x,
                                                const std::vector<double>& gamma, const std::vector<double>& beta,
                                                const std::vector<double>& rm, const std::vector<double>& rv,
                                                double eps) {
  std::vector<double> y(M * C);
  for (std::size_t i = 0; i < M * C; ++i) {
    const std::size_t c = i % C;
    y[i] = (x[i] - rm[c]) / std::sqrt(rv[c] + eps) * gamma[c] + beta[c];
  }
  return y;
}

// ---- pooling, channels-last
std::vector<double> avgpool_forward(std::size_t N, std::size_t C, std::size_t H, std::size_t W,
                                    std::size_t k, std::size_t s, const std::vector<double>& x) {
  const std::size_t P = (H - k) / s + 1, Q = (W - k) / s + 1;
  std::vector<double> y(N * P * Q * C, 0.0);
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t p = 0; p < P; ++p)
      for (std::size_t q = 0; q < Q; ++q)
        for (std::size_t i = 0; i < k; ++i)
          for (std::size_t j = 0; j < k; ++j)
            for (std::size_t c = 0; c < C; ++c)
              y[((n * P + p) * Q + q) * C + c] += x[((n * H + p * s + i) * W + q * s + j) * C + c] / double(k * k);
  return y;
}

/// Scatter form (the kernel gathers).
std::vector<double> avgpool_backward(std::size_t N, std::size_t C, std::size_t H, std::size_t W,
                                     std::size_t k, std::size_t s, const std::vector<double>& dy) {
  const std::size_t P = (H - k) / s + 1, Q = (W - k) / s + 1;
  std::vector<double> dx(N * H * W * C, 0.0);
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t p = 0; p < P; ++p)
      for (std::size_t q = 0; q < Q; ++q)
        for (std::size_t i = 0; i < k; ++i)
          for (std::size_t j = 0; j < k; ++j)
            for (std::size_t c = 0; c < C; ++c)
              dx[((n * H + p * s + i) * W + q * s + j) * C + c] += dy[((n * P + p) * Q + q) * C + c] / double(k * k);
  return dx;
}

// ---- max pooling, channels-last, PyTorch's rule (padding is -inf; take an element when it
// is greater than the best so far or NaN). Returns y and fills argmax (ih * W + iw).
struct MaxPool {
  std::size_t n, c, h, w, k, s, pad;
  std::size_t p() const { return (h + 2 * pad - k) / s + 1; }
  std::size_t q() const { return (w + 2 * pad - k) / s + 1; }
};

std::vector<double> maxpool_forward(const MaxPool& g, const std::vector<double>& x, std::vector<std::int32_t>& argmax) {
  const std::size_t P = g.p(), Q = g.q();
  std::vector<double> y(g.n * P * Q * g.c);
  argmax.assign(y.size(), -1);
  for (std::size_t n = 0; n < g.n; ++n)
    for (std::size_t p = 0; p < P; ++p)
      for (std::size_t q = 0; q < Q; ++q)
        for (std::size_t c = 0; c < g.c; ++c) {
          double best = -std::numeric_limits<double>::infinity();
          long arg = -1;
          for (std::size_t i = 0; i < g.k; ++i)
            for (std::size_t j = 0; j < g.k; ++j) {
              const long ih = long(p * g.s + i) - long(g.pad), iw = long(q * g.s + j) - long(g.pad);
              if (ih < 0 || iw < 0 || ih >= long(g.h) || iw >= long(g.w)) continue;
              if (arg < 0) arg = ih * long(g.w) + iw;  // the first pixel inside the image
              const double v = x[((n * g.h + std::size_t(ih)) * g.w + std::size_t(iw)) * g.c + c];
              if (v > best || std::isnan(v)) best = v, arg = ih * long(g.w) + iw;
            }
          const std::size_t o = ((n * P + p) * Q + q) * g.c + c;
          y[o] = best;
          argmax[o] = std::int32_t(arg);
        }
  return y;
}

/// Scatter form (the kernel gathers), in output order.
std::vector<double> maxpool_backward(const MaxPool& g, const std::vector<double>& dy,
                                     const std::vector<std::int32_t>& argmax) {
  std::vector<double> dx(g.n * g.h * g.w * g.c, 0.0);
  const std::size_t out = g.p() * g.q() * g.c;
  for (std::size_t o = 0; o < dy.size(); ++o) {
    const std::size_t n = o / out, c = o % g.c;
    dx[(n * g.h * g.w + std::size_t(argmax[o])) * g.c + c] += dy[o];
  }
  return dx;
}

// ---- linear, PyTorch layouts
std::vector<double> linear_forward(std::size_t N, std::size_t I, std::size_t O, const std::vector<double>& x,
                                   const std::vector<double>& w, const std::vector<double>& b) {
  std::vector<double> y(N * O);
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t o = 0; o < O; ++o) {
      double s = b.empty() ? 0.0 : b[o];
      for (std::size_t i = 0; i < I; ++i) s += x[n * I + i] * w[o * I + i];
      y[n * O + o] = s;
    }
  return y;
}

// ---- softmax cross-entropy with label smoothing, mean over the batch
double cross_entropy(std::size_t N, std::size_t K, const std::vector<double>& z,
                     const std::vector<std::int32_t>& labels, double eps, std::vector<double>* probs = nullptr,
                     std::vector<double>* dz = nullptr) {
  double total = 0;
  if (probs) probs->assign(N * K, 0.0);
  if (dz) dz->assign(N * K, 0.0);
  for (std::size_t n = 0; n < N; ++n) {
    double mx = z[n * K];
    for (std::size_t k = 1; k < K; ++k) mx = std::max(mx, z[n * K + k]);
    double s = 0;
    for (std::size_t k = 0; k < K; ++k) s += std::exp(z[n * K + k] - mx);
    for (std::size_t k = 0; k < K; ++k) {
      const double logp = z[n * K + k] - mx - std::log(s);
      const double q = (k == std::size_t(labels[n]) ? 1 - eps : 0.0) + eps / double(K);
      total -= q * logp;
      if (probs) (*probs)[n * K + k] = std::exp(logp);
      if (dz) (*dz)[n * K + k] = (std::exp(logp) - q) / double(N);
    }
  }
  return total / double(N);
}

// ---- SGD exactly as torch.optim.SGD (momentum buffer created from the first gradient).
struct SgdState {
  std::vector<double> w, buf;
  bool started = false;
};
void sgd_step(SgdState& s, const std::vector<double>& grad, double lr, double momentum, double wd, bool nesterov) {
  if (s.buf.empty()) s.buf.assign(s.w.size(), 0.0);
  for (std::size_t i = 0; i < s.w.size(); ++i) {
    double g = grad[i] + wd * s.w[i];
    s.buf[i] = s.started ? momentum * s.buf[i] + g : g;
    const double step = nesterov ? g + momentum * s.buf[i] : s.buf[i];
    s.w[i] -= lr * step;
  }
  s.started = true;
}

// ---- AdamW exactly as torch.optim.AdamW (1.13, amsgrad off), one step; `step` is 1-based.
struct AdamWState {
  std::vector<double> w, m, v;
};
void adamw_step(AdamWState& s, const std::vector<double>& grad, double lr, double beta1, double beta2, double eps,
                double wd, long step) {
  if (s.m.empty()) s.m.assign(s.w.size(), 0.0), s.v.assign(s.w.size(), 0.0);
  const double bc1 = 1 - std::pow(beta1, double(step)), bc2 = 1 - std::pow(beta2, double(step));
  for (std::size_t i = 0; i < s.w.size(); ++i) {
    s.w[i] *= 1 - lr * wd;
    s.m[i] = beta1 * s.m[i] + (1 - beta1) * grad[i];
    s.v[i] = beta2 * s.v[i] + (1 - beta2) * grad[i] * grad[i];
    s.w[i] -= lr / bc1 * s.m[i] / (std::sqrt(s.v[i]) / std::sqrt(bc2) + eps);
  }
}

}  // namespace odyssey::testing::ref
