// Plain double-precision reference implementations of the kernels, written for clarity
// rather than speed and, where it matters, by a different route than the kernels (the conv
// backward-data reference scatters, the kernel gathers), so a shared mistake is unlikely.
// Activations are channels-last, as odyssey stores them.
module;
#include <cmath>
#include <cstddef>
#include <cstdint>
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

}  // namespace odyssey::testing::ref
