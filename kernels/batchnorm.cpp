// Batch normalisation kernels (see odyssey/kernels/batchnorm.h for the math).
//
// Memory-bound: at (128,64,32,32) fp32 a tensor is 33.5 MB, and forward + backward touch
// x twice, y once, dy twice and dx once (~200 MB, ~4.5 ms at 45 GB/s). Statistics are
// gathered per chunk of rows small enough (32 KiB) to stay in L1 between the chunk's two
// passes, so each chunk's mean and sum of squared deviations are exact two-pass values;
// chunks are then merged in double, in chunk order, with Chan's pairwise formula.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "batchnorm.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

#include "common.h"
#include "odyssey/kernels/batchnorm.h"
#include "simd-inl.h"

#ifndef ODYSSEY_KERNELS_BATCHNORM_CONSTANTS  // this file is compiled once per target
#define ODYSSEY_KERNELS_BATCHNORM_CONSTANTS
namespace odyssey::kernels::detail {
constexpr std::size_t kBnChunkBytes = 32 << 10;
constexpr std::size_t kBnMaxChannels = 4096;
inline std::size_t bn_rows_per_chunk(const BatchNormShape& s, std::size_t elem) {
  return std::max<std::size_t>(1, kBnChunkBytes / (s.c * elem));
}
}  // namespace odyssey::kernels::detail
#endif

HWY_BEFORE_NAMESPACE();
namespace odyssey::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

/// Per-channel sums over `rows` rows of x (and of a second tensor) into T accumulators.
/// kind 0: s1 = sum(x)
/// kind 1: s1 = sum(x - m), s2 = sum((x - m)^2)            (m: per-channel shift)
/// kind 2: s1 = sum(dy), s2 = sum(dy * (x - m))
template <int kind, class T>
HWY_NOINLINE void chunk_sums(const T* HWY_RESTRICT x, const T* HWY_RESTRICT dy,
                             const T* HWY_RESTRICT m, std::size_t rows, std::size_t C,
                             T* HWY_RESTRICT s1, T* HWY_RESTRICT s2) {
  const hn::ScalableTag<T> d;
  const std::size_t L = hn::Lanes(d);
  for (std::size_t c = 0; c < C; c += L) {
    const std::size_t n = std::min(L, C - c);
    auto a1 = hn::Zero(d), a2 = hn::Zero(d);
    const auto mv = kind == 0 ? hn::Zero(d) : load_n(d, m + c, n);
    for (std::size_t r = 0; r < rows; ++r) {
      const auto xv = load_n(d, x + r * C + c, n);
      if constexpr (kind == 0) {
        a1 = hn::Add(a1, xv);
      } else if constexpr (kind == 1) {
        const auto dv = hn::Sub(xv, mv);
        a1 = hn::Add(a1, dv);
        a2 = hn::MulAdd(dv, dv, a2);
      } else {
        const auto gv = load_n(d, dy + r * C + c, n);
        a1 = hn::Add(a1, gv);
        a2 = hn::MulAdd(gv, hn::Sub(xv, mv), a2);
      }
    }
    store_n(d, a1, s1 + c, n);
    if constexpr (kind != 0) store_n(d, a2, s2 + c, n);
  }
}

/// Per channel: out = (x - m) * a + e, then + r (kResidual) and max(., 0) (kRelu); or, with
/// `dy` (kBackward), out = dy * a + (x - m) * b + e.
/// (Subtracting the mean first, rather than folding it into e, keeps y accurate for
/// channels of tiny variance, where rstd is large and x*a and e would nearly cancel.)
/// `out` may be `dy` (in-place backward): each element is read before it is written.
template <bool kBackward, bool kResidual, bool kRelu, class T>
HWY_NOINLINE void affine_rows(const T* x, const T* dy, const T* r, const T* HWY_RESTRICT a,
                              const T* HWY_RESTRICT b, const T* HWY_RESTRICT m,
                              const T* HWY_RESTRICT e, std::size_t rows, std::size_t C, T* out) {
  const hn::ScalableTag<T> d;
  const std::size_t L = hn::Lanes(d);
  for (std::size_t row = 0; row < rows; ++row)
    for (std::size_t c = 0; c < C; c += L) {
      const std::size_t n = std::min(L, C - c), i = row * C + c;
      const auto t = hn::Sub(load_n(d, x + i, n), hn::Load(d, m + c));
      hn::Vec<decltype(d)> v;
      if constexpr (kBackward) {
        v = hn::MulAdd(load_n(d, dy + i, n), hn::Load(d, a + c), hn::MulAdd(t, hn::Load(d, b + c), hn::Load(d, e + c)));
      } else {
        v = hn::MulAdd(t, hn::Load(d, a + c), hn::Load(d, e + c));
        if constexpr (kResidual) v = hn::Add(v, load_n(d, r + i, n));
        if constexpr (kRelu) v = hn::Max(v, hn::Zero(d));
      }
      store_n(d, v, out + i, n);
    }
}

/// Work shared by the entry points below. Partial sums per chunk go to ws[chunk][2][C].
template <class T>
struct Bn {
  const BatchNormShape& s;
  double* ws;
  std::size_t rows_per_chunk = detail::bn_rows_per_chunk(s, sizeof(T));
  std::size_t chunks = detail::ceil_div(s.m, rows_per_chunk);

  std::size_t rows_of(std::size_t k) const { return std::min(rows_per_chunk, s.m - k * rows_per_chunk); }
  double* part(std::size_t k) const { return ws + k * 2 * s.c; }
  double* totals() const { return ws + chunks * 2 * s.c; }  // [2][C]

  /// Per-channel mean and M2 (sum of squared deviations) of x, into totals().
  void moments(const T* x) const {
    detail::parallel_items(chunks, [&](std::size_t k) {
      HWY_ALIGN T s1[detail::kBnMaxChannels], s2[detail::kBnMaxChannels], mk[detail::kBnMaxChannels];
      const std::size_t rows = rows_of(k);
      const T* xk = x + k * rows_per_chunk * s.c;
      chunk_sums<0>(xk, static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), rows, s.c, s1, s2);
      for (std::size_t c = 0; c < s.c; ++c) mk[c] = s1[c] / T(rows);
      chunk_sums<1>(xk, static_cast<const T*>(nullptr), mk, rows, s.c, s1, s2);
      double* p = part(k);
      for (std::size_t c = 0; c < s.c; ++c) {
        // Exact shifted two-pass: the chunk's mean is mk + s1/rows, its M2 s2 - s1^2/rows.
        p[c] = double(mk[c]) + double(s1[c]) / double(rows);
        p[s.c + c] = std::max(0.0, double(s2[c]) - double(s1[c]) * double(s1[c]) / double(rows));
      }
    });
    // Chan et al.: merge (n_a, mean_a, M2_a) with (n_b, mean_b, M2_b), chunks in order.
    double* mean = totals();
    double* m2 = mean + s.c;
    for (std::size_t c = 0; c < s.c; ++c) {
      double n = double(rows_of(0)), mu = part(0)[c], q = part(0)[s.c + c];
      for (std::size_t k = 1; k < chunks; ++k) {
        const double nb = double(rows_of(k)), delta = part(k)[c] - mu, nt = n + nb;
        mu += delta * nb / nt;
        q += part(k)[s.c + c] + delta * delta * n * nb / nt;
        n = nt;
      }
      mean[c] = mu;
      m2[c] = q;
    }
  }

  /// Per-channel sum(dy) and sum(dy * (x - m)), into totals().
  void gradient_sums(const T* x, const T* dy, const T* m) const {
    detail::parallel_items(chunks, [&](std::size_t k) {
      HWY_ALIGN T s1[detail::kBnMaxChannels], s2[detail::kBnMaxChannels];
      const std::size_t off = k * rows_per_chunk * s.c;
      chunk_sums<2>(x + off, dy + off, m, rows_of(k), s.c, s1, s2);
      double* p = part(k);
      for (std::size_t c = 0; c < s.c; ++c) {
        p[c] = double(s1[c]);
        p[s.c + c] = double(s2[c]);
      }
    });
    double* t = totals();
    for (std::size_t c = 0; c < 2 * s.c; ++c) {
      double sum = 0;
      for (std::size_t k = 0; k < chunks; ++k) sum += part(k)[c];
      t[c] = sum;
    }
  }

  /// out = f(rows) over row blocks in parallel; `coeffs` fills the per-channel arrays.
  /// Forward passes add `residual` (when not null) and apply a ReLU (when `relu`).
  template <bool kBackward, class Coeffs>
  void apply(const T* x, const T* dy, T* out, const Coeffs& coeffs, const T* residual = nullptr,
             bool relu = false) const {
    detail::parallel_items(chunks, [&](std::size_t k) {
      HWY_ALIGN T a[detail::kBnMaxChannels], b[detail::kBnMaxChannels], m[detail::kBnMaxChannels],
          e[detail::kBnMaxChannels];
      coeffs(a, b, m, e);
      const std::size_t off = k * rows_per_chunk * s.c, rows = rows_of(k);
      const T* r = residual ? residual + off : nullptr;
      if constexpr (kBackward) {
        affine_rows<true, false, false>(x + off, dy + off, r, a, b, m, e, rows, s.c, out + off);
      } else if (residual && relu) {
        affine_rows<false, true, true>(x + off, dy, r, a, b, m, e, rows, s.c, out + off);
      } else if (residual) {
        affine_rows<false, true, false>(x + off, dy, r, a, b, m, e, rows, s.c, out + off);
      } else if (relu) {
        affine_rows<false, false, true>(x + off, dy, r, a, b, m, e, rows, s.c, out + off);
      } else {
        affine_rows<false, false, false>(x + off, dy, r, a, b, m, e, rows, s.c, out + off);
      }
    });
  }
};

/// The forward pass after the statistics: `mean` and `m2` (sum of squared deviations) per
/// channel over `count` rows (this call's, or those of every process of a data-parallel
/// batch).
template <class T>
void forward_from_moments(const Bn<T>& bn, const T* x, const T* gamma, const T* beta, T* y, T* save_mean,
                          T* save_rstd, T* running_mean, T* running_var, double momentum, double eps,
                          const double* mean, const double* m2, double M, const T* residual, bool relu) {
  const BatchNormShape& s = bn.s;
  for (std::size_t c = 0; c < s.c; ++c) {
    const double var = m2[c] / M;
    save_mean[c] = T(mean[c]);
    save_rstd[c] = T(1.0 / std::sqrt(var + eps));
    running_mean[c] = T((1 - momentum) * double(running_mean[c]) + momentum * mean[c]);
    running_var[c] = T((1 - momentum) * double(running_var[c]) + momentum * m2[c] / (M - 1));
  }
  bn.template apply<false>(
      x, nullptr, y,
      [&](T* a, T*, T* m, T* e) {
        for (std::size_t c = 0; c < s.c; ++c) {
          a[c] = gamma[c] * save_rstd[c];
          m[c] = save_mean[c];
          e[c] = beta[c];
        }
      },
      residual, relu);
}

template <class T>
void forward_training(const BatchNormShape& s, const T* x, const T* gamma, const T* beta, T* y,
                      T* save_mean, T* save_rstd, T* running_mean, T* running_var,
                      double momentum, double eps, double* ws, const T* residual, bool relu) {
  const Bn<T> bn{s, ws};
  bn.moments(x);
  const double* mean = bn.totals();
  forward_from_moments(bn, x, gamma, beta, y, save_mean, save_rstd, running_mean, running_var, momentum, eps, mean,
                       mean + s.c, double(s.m), residual, relu);
}

template <class T>
void moments(const BatchNormShape& s, const T* x, double* out, double* ws) {
  const Bn<T> bn{s, ws};
  bn.moments(x);
  std::copy_n(bn.totals(), 2 * s.c, out);
}

template <class T>
void forward_with_moments(const BatchNormShape& s, const T* x, const T* gamma, const T* beta, T* y, T* save_mean,
                          T* save_rstd, T* running_mean, T* running_var, double momentum, double eps,
                          const double* stats, double count, const T* residual, bool relu) {
  const Bn<T> bn{s, nullptr};
  forward_from_moments(bn, x, gamma, beta, y, save_mean, save_rstd, running_mean, running_var, momentum, eps, stats,
                       stats + s.c, count, residual, relu);
}

template <class T>
void forward_inference(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                       const T* rm, const T* rv, double eps, T* y, const T* residual, bool relu) {
  const Bn<T> bn{s, nullptr};
  bn.template apply<false>(
      x, nullptr, y,
      [&](T* a, T*, T* m, T* e) {
        for (std::size_t c = 0; c < s.c; ++c) {
          a[c] = T(double(gamma[c]) / std::sqrt(double(rv[c]) + eps));
          m[c] = rm[c];
          e[c] = beta[c];
        }
      },
      residual, relu);
}

/// dx from the per-channel sums of dy and dy * (x - mean) over `M` rows.
template <class T>
void backward_from_sums(const Bn<T>& bn, const T* x, const T* dy, const T* gamma, const T* mean, const T* rstd,
                        const double* sum_dy, const double* sum_dyxm, double M, T* dx) {
  const BatchNormShape& s = bn.s;
  // dx = g*r*dy - g*r^3*sum(dy*(x-mean))/M * (x-mean) - g*r*sum(dy)/M
  bn.template apply<true>(x, dy, dx, [&](T* a, T* b, T* m, T* e) {
    for (std::size_t c = 0; c < s.c; ++c) {
      const double gr = double(gamma[c]) * double(rstd[c]), r = double(rstd[c]);
      a[c] = T(gr);
      b[c] = T(-gr * r * r * sum_dyxm[c] / M);
      m[c] = mean[c];
      e[c] = T(-gr * sum_dy[c] / M);
    }
  });
}

template <class T>
void backward_training(const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                       const T* mean, const T* rstd, T* dx, T* dgamma, T* dbeta, double* ws) {
  const Bn<T> bn{s, ws};
  bn.gradient_sums(x, dy, mean);
  const double* sum_dy = bn.totals();
  const double* sum_dyxm = sum_dy + s.c;  // sum(dy * (x - mean))
  for (std::size_t c = 0; c < s.c; ++c) {
    dgamma[c] += T(sum_dyxm[c] * double(rstd[c]));
    dbeta[c] += T(sum_dy[c]);
  }
  backward_from_sums(bn, x, dy, gamma, mean, rstd, sum_dy, sum_dyxm, double(s.m), dx);
}

template <class T>
void gradient_sums(const BatchNormShape& s, const T* x, const T* dy, const T* mean, double* out, double* ws) {
  const Bn<T> bn{s, ws};
  bn.gradient_sums(x, dy, mean);
  std::copy_n(bn.totals(), 2 * s.c, out);
}

template <class T>
void backward_with_sums(const BatchNormShape& s, const T* x, const T* dy, const T* gamma, const T* mean,
                        const T* rstd, const double* sums, double count, T* dx) {
  const Bn<T> bn{s, nullptr};
  backward_from_sums(bn, x, dy, gamma, mean, rstd, sums, sums + s.c, count, dx);
}

template <class T>
void backward_inference(const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                        const T* rm, const T* rv, double eps, T* dx, T* dgamma, T* dbeta,
                        double* ws) {
  const Bn<T> bn{s, ws};
  bn.gradient_sums(x, dy, rm);
  const double* sum_dy = bn.totals();
  const double* sum_dyxm = sum_dy + s.c;
  for (std::size_t c = 0; c < s.c; ++c) {
    dgamma[c] += T(sum_dyxm[c] / std::sqrt(double(rv[c]) + eps));
    dbeta[c] += T(sum_dy[c]);
  }
  bn.template apply<true>(x, dy, dx, [&](T* a, T* b, T* m, T* e) {
    for (std::size_t c = 0; c < s.c; ++c) {
      a[c] = T(double(gamma[c]) / std::sqrt(double(rv[c]) + eps));
      b[c] = T(0);
      m[c] = T(0);
      e[c] = T(0);
    }
  });
}

#define ODYSSEY_BN_INSTANCES(T, suffix)                                                       \
  void bn_forward_training_##suffix(const BatchNormShape& s, const T* x, const T* g,          \
                                    const T* b, T* y, T* sm, T* sr, T* rm, T* rv, double mom, \
                                    double eps, double* ws, const T* res, bool relu) {        \
    forward_training(s, x, g, b, y, sm, sr, rm, rv, mom, eps, ws, res, relu);                 \
  }                                                                                           \
  void bn_forward_inference_##suffix(const BatchNormShape& s, const T* x, const T* g,         \
                                     const T* b, const T* rm, const T* rv, double eps, T* y,  \
                                     const T* res, bool relu) {                               \
    forward_inference(s, x, g, b, rm, rv, eps, y, res, relu);                                 \
  }                                                                                           \
  void bn_backward_training_##suffix(const BatchNormShape& s, const T* x, const T* dy,        \
                                     const T* g, const T* sm, const T* sr, T* dx, T* dg,      \
                                     T* db, double* ws) {                                     \
    backward_training(s, x, dy, g, sm, sr, dx, dg, db, ws);                                   \
  }                                                                                           \
  void bn_backward_inference_##suffix(const BatchNormShape& s, const T* x, const T* dy,       \
                                      const T* g, const T* rm, const T* rv, double eps,       \
                                      T* dx, T* dg, T* db, double* ws) {                      \
    backward_inference(s, x, dy, g, rm, rv, eps, dx, dg, db, ws);                             \
  }                                                                                           \
  void bn_moments_##suffix(const BatchNormShape& s, const T* x, double* out, double* ws) {    \
    moments(s, x, out, ws);                                                                   \
  }                                                                                           \
  void bn_forward_with_moments_##suffix(const BatchNormShape& s, const T* x, const T* g,      \
                                        const T* b, T* y, T* sm, T* sr, T* rm, T* rv,         \
                                        double mom, double eps, const double* st, double n,   \
                                        const T* res, bool relu) {                            \
    forward_with_moments(s, x, g, b, y, sm, sr, rm, rv, mom, eps, st, n, res, relu);          \
  }                                                                                           \
  void bn_gradient_sums_##suffix(const BatchNormShape& s, const T* x, const T* dy,            \
                                 const T* m, double* out, double* ws) {                       \
    gradient_sums(s, x, dy, m, out, ws);                                                      \
  }                                                                                           \
  void bn_backward_with_sums_##suffix(const BatchNormShape& s, const T* x, const T* dy,       \
                                      const T* g, const T* sm, const T* sr, const double* su, \
                                      double n, T* dx) {                                      \
    backward_with_sums(s, x, dy, g, sm, sr, su, n, dx);                                       \
  }
ODYSSEY_BN_INSTANCES(float, f32)
ODYSSEY_BN_INSTANCES(double, f64)
#undef ODYSSEY_BN_INSTANCES

}  // namespace odyssey::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace odyssey::kernels {

HWY_EXPORT(bn_forward_training_f32);
HWY_EXPORT(bn_forward_training_f64);
HWY_EXPORT(bn_forward_inference_f32);
HWY_EXPORT(bn_forward_inference_f64);
HWY_EXPORT(bn_backward_training_f32);
HWY_EXPORT(bn_backward_training_f64);
HWY_EXPORT(bn_backward_inference_f32);
HWY_EXPORT(bn_backward_inference_f64);
HWY_EXPORT(bn_moments_f32);
HWY_EXPORT(bn_moments_f64);
HWY_EXPORT(bn_forward_with_moments_f32);
HWY_EXPORT(bn_forward_with_moments_f64);
HWY_EXPORT(bn_gradient_sums_f32);
HWY_EXPORT(bn_gradient_sums_f64);
HWY_EXPORT(bn_backward_with_sums_f32);
HWY_EXPORT(bn_backward_with_sums_f64);

namespace {
void check(const BatchNormShape& s, bool training) {
  if (s.m == 0 || s.c == 0 || s.c > detail::kBnMaxChannels)
    throw std::invalid_argument("batchnorm: " + std::to_string(s.c) + " channels over " +
                                std::to_string(s.m) + " rows; need 1 to " +
                                std::to_string(detail::kBnMaxChannels) + " channels and rows > 0");
  if (training && s.m == 1)
    throw std::invalid_argument("batchnorm: training mode needs more than one value per channel "
                                "(batch * height * width is 1)");
}
void check_count(double n) {
  if (!(n >= 2))
    throw std::invalid_argument("batchnorm: training mode needs more than one value per channel over all "
                                "processes (batch * height * width is " + std::to_string(n) + ")");
}
}  // namespace

std::size_t batchnorm_workspace_size(const BatchNormShape& s) {
  const std::size_t rows = detail::bn_rows_per_chunk(s, sizeof(double));  // the most chunks
  return (detail::ceil_div(s.m, rows) + 1) * 2 * s.c;
}

#define ODYSSEY_BN_ENTRIES(T, suffix)                                                          \
  void batchnorm_forward_training(const BatchNormShape& s, const T* x, const T* g, const T* b, \
                                  T* y, T* sm, T* sr, T* rm, T* rv, double mom, double eps,    \
                                  double* ws, const T* res, bool relu) {                       \
    check(s, true);                                                                            \
    HWY_DYNAMIC_DISPATCH(bn_forward_training_##suffix)(s, x, g, b, y, sm, sr, rm, rv, mom, eps, ws, res, relu); \
  }                                                                                            \
  void batchnorm_forward_inference(const BatchNormShape& s, const T* x, const T* g,           \
                                   const T* b, const T* rm, const T* rv, double eps, T* y,    \
                                   const T* res, bool relu) {                                  \
    check(s, false);                                                                           \
    HWY_DYNAMIC_DISPATCH(bn_forward_inference_##suffix)(s, x, g, b, rm, rv, eps, y, res, relu); \
  }                                                                                            \
  void batchnorm_backward_training(const BatchNormShape& s, const T* x, const T* dy,          \
                                   const T* g, const T* sm, const T* sr, T* dx, T* dg, T* db, \
                                   double* ws) {                                               \
    check(s, true);                                                                            \
    HWY_DYNAMIC_DISPATCH(bn_backward_training_##suffix)(s, x, dy, g, sm, sr, dx, dg, db, ws);  \
  }                                                                                            \
  void batchnorm_backward_inference(const BatchNormShape& s, const T* x, const T* dy,         \
                                    const T* g, const T* rm, const T* rv, double eps, T* dx,  \
                                    T* dg, T* db, double* ws) {                                \
    check(s, false);                                                                           \
    HWY_DYNAMIC_DISPATCH(bn_backward_inference_##suffix)(s, x, dy, g, rm, rv, eps, dx, dg, db, ws); \
  }                                                                                            \
  void batchnorm_moments(const BatchNormShape& s, const T* x, double* out, double* ws) {       \
    check(s, false);                                                                           \
    HWY_DYNAMIC_DISPATCH(bn_moments_##suffix)(s, x, out, ws);                                  \
  }                                                                                            \
  void batchnorm_forward_with_moments(const BatchNormShape& s, const T* x, const T* g,        \
                                      const T* b, T* y, T* sm, T* sr, T* rm, T* rv,           \
                                      double mom, double eps, const double* st, double n,     \
                                      const T* res, bool relu) {                               \
    check(s, false);                                                                           \
    check_count(n);                                                                            \
    HWY_DYNAMIC_DISPATCH(bn_forward_with_moments_##suffix)(s, x, g, b, y, sm, sr, rm, rv, mom, eps, st, n, res, relu); \
  }                                                                                            \
  void batchnorm_gradient_sums(const BatchNormShape& s, const T* x, const T* dy, const T* m,  \
                               double* out, double* ws) {                                      \
    check(s, false);                                                                           \
    HWY_DYNAMIC_DISPATCH(bn_gradient_sums_##suffix)(s, x, dy, m, out, ws);                     \
  }                                                                                            \
  void batchnorm_backward_with_sums(const BatchNormShape& s, const T* x, const T* dy,         \
                                    const T* g, const T* sm, const T* sr, const double* su,   \
                                    double n, T* dx) {                                         \
    check(s, false);                                                                           \
    check_count(n);                                                                            \
    HWY_DYNAMIC_DISPATCH(bn_backward_with_sums_##suffix)(s, x, dy, g, sm, sr, su, n, dx);      \
  }
ODYSSEY_BN_ENTRIES(float, f32)
ODYSSEY_BN_ENTRIES(double, f64)
#undef ODYSSEY_BN_ENTRIES

}  // namespace odyssey::kernels
#endif  // HWY_ONCE
