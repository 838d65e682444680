// Softmax cross-entropy (see odyssey/kernels/loss.h). Vectorised along the classes with a
// stable log-sum-exp (subtract the row maximum before exp); the batch mean is summed in
// double, in sample order.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "loss.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "odyssey/kernels/loss.h"
#include "simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace odyssey::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

/// One sample: writes probs, returns {loss, argmax}.
template <class T>
HWY_NOINLINE double sample_loss(std::size_t K, const T* HWY_RESTRICT z, std::int32_t label,
                                double eps, T* HWY_RESTRICT p, std::size_t* argmax) {
  const hn::ScalableTag<T> d;
  const std::size_t L = hn::Lanes(d);
  // Row maximum (and its first index, for accuracy).
  T zmax = z[0];
  std::size_t best = 0;
  for (std::size_t k = 1; k < K; ++k)
    if (z[k] > zmax) {
      zmax = z[k];
      best = k;
    }
  *argmax = best;
  const auto mv = hn::Set(d, zmax);
  auto sum = hn::Zero(d), zsum = hn::Zero(d);
  for (std::size_t k = 0; k < K; k += L) {
    const std::size_t n = std::min(L, K - k);
    const auto zv = load_n(d, z + k, n);
    const auto e = hn::IfThenElseZero(hn::FirstN(d, n), hn::Exp(d, hn::Sub(zv, mv)));
    store_n(d, e, p + k, n);
    sum = hn::Add(sum, e);
    zsum = hn::Add(zsum, zv);
  }
  const double s = double(hn::GetLane(hn::SumOfLanes(d, sum)));
  const double lse = double(zmax) + std::log(s);
  const auto inv = hn::Set(d, T(1.0 / s));
  for (std::size_t k = 0; k < K; k += L) {
    const std::size_t n = std::min(L, K - k);
    store_n(d, hn::Mul(load_n(d, p + k, n), inv), p + k, n);
  }
  const double mean_z = double(hn::GetLane(hn::SumOfLanes(d, zsum))) / double(K);
  return lse - (1 - eps) * double(z[label]) - eps * mean_z;
}

template <class T>
LossStats forward(std::size_t N, std::size_t K, const T* z, const std::int32_t* labels, double eps,
                  T* probs) {
  LossStats st;
  double total = 0;
  for (std::size_t i = 0; i < N; ++i) {
    std::size_t arg = 0;
    total += sample_loss(K, z + i * K, labels[i], eps, probs + i * K, &arg);
    st.correct += arg == static_cast<std::size_t>(labels[i]);
  }
  st.loss = total / double(N);
  return st;
}

template <class T>
HWY_NOINLINE void backward(std::size_t N, std::size_t K, const T* HWY_RESTRICT p,
                           const std::int32_t* labels, double eps, std::size_t mean_over, T* HWY_RESTRICT dz) {
  const hn::ScalableTag<T> d;
  const std::size_t L = hn::Lanes(d);
  const auto inv_n = hn::Set(d, T(1.0 / double(mean_over)));
  const auto floor = hn::Set(d, T(eps / double(K)));
  for (std::size_t i = 0; i < N; ++i) {
    for (std::size_t k = 0; k < K; k += L) {
      const std::size_t n = std::min(L, K - k);
      store_n(d, hn::Mul(hn::Sub(load_n(d, p + i * K + k, n), floor), inv_n), dz + i * K + k, n);
    }
    dz[i * K + labels[i]] -= T((1 - eps) / double(mean_over));
  }
}

LossStats forward_f32(std::size_t n, std::size_t k, const float* z, const std::int32_t* y,
                      double e, float* p) {
  return forward(n, k, z, y, e, p);
}
LossStats forward_f64(std::size_t n, std::size_t k, const double* z, const std::int32_t* y,
                      double e, double* p) {
  return forward(n, k, z, y, e, p);
}
void backward_f32(std::size_t n, std::size_t k, const float* p, const std::int32_t* y, double e,
                  std::size_t mean_over, float* dz) {
  backward(n, k, p, y, e, mean_over, dz);
}
void backward_f64(std::size_t n, std::size_t k, const double* p, const std::int32_t* y, double e,
                  std::size_t mean_over, double* dz) {
  backward(n, k, p, y, e, mean_over, dz);
}

}  // namespace odyssey::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace odyssey::kernels {

HWY_EXPORT(forward_f32);
HWY_EXPORT(forward_f64);
HWY_EXPORT(backward_f32);
HWY_EXPORT(backward_f64);

namespace {
void check(std::size_t n, std::size_t k, const std::int32_t* labels, double eps) {
  if (n == 0 || k == 0) throw std::invalid_argument("softmax_cross_entropy: empty batch or no classes");
  if (!(eps >= 0 && eps <= 1))
    throw std::invalid_argument("softmax_cross_entropy: label smoothing must be in [0, 1]");
  for (std::size_t i = 0; i < n; ++i)
    if (labels[i] < 0 || static_cast<std::size_t>(labels[i]) >= k)
      throw std::invalid_argument("softmax_cross_entropy: label " + std::to_string(labels[i]) +
                                  " of sample " + std::to_string(i) + " is outside [0, " +
                                  std::to_string(k) + ")");
}
}  // namespace

LossStats softmax_cross_entropy_forward(std::size_t n, std::size_t k, const float* z,
                                        const std::int32_t* y, double e, float* p) {
  check(n, k, y, e);
  return HWY_DYNAMIC_DISPATCH(forward_f32)(n, k, z, y, e, p);
}
LossStats softmax_cross_entropy_forward(std::size_t n, std::size_t k, const double* z,
                                        const std::int32_t* y, double e, double* p) {
  check(n, k, y, e);
  return HWY_DYNAMIC_DISPATCH(forward_f64)(n, k, z, y, e, p);
}
void softmax_cross_entropy_backward(std::size_t n, std::size_t k, const float* p,
                                    const std::int32_t* y, double e, float* dz, std::size_t mean_over) {
  check(n, k, y, e);
  HWY_DYNAMIC_DISPATCH(backward_f32)(n, k, p, y, e, mean_over ? mean_over : n, dz);
}
void softmax_cross_entropy_backward(std::size_t n, std::size_t k, const double* p,
                                    const std::int32_t* y, double e, double* dz, std::size_t mean_over) {
  check(n, k, y, e);
  HWY_DYNAMIC_DISPATCH(backward_f64)(n, k, p, y, e, mean_over ? mean_over : n, dz);
}

}  // namespace odyssey::kernels
#endif  // HWY_ONCE
