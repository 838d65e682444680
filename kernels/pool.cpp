// Average pooling kernels: vectorised over channels (contiguous in channels-last), parallel
// over images. Backward passes gather rather than scatter, so no two tasks write the same
// element and sums do not depend on the thread count.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "pool.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cstddef>
#include <stdexcept>

#include "common.h"
#include "odyssey/kernels/pool.h"
#include "simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace odyssey::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

/// out[c] = scale * sum over `count` rows (row stride `step`) of in[row][c].
template <class T>
HWY_INLINE void mean_rows(const T* HWY_RESTRICT in, std::size_t count, std::size_t step,
                          std::size_t C, T scale, T* HWY_RESTRICT out) {
  const hn::ScalableTag<T> d;
  const std::size_t L = hn::Lanes(d);
  for (std::size_t c = 0; c < C; c += L) {
    const std::size_t n = std::min(L, C - c);
    auto acc = hn::Zero(d);
    for (std::size_t r = 0; r < count; ++r) acc = hn::Add(acc, load_n(d, in + r * step + c, n));
    store_n(d, hn::Mul(acc, hn::Set(d, scale)), out + c, n);
  }
}

template <class T>
HWY_NOINLINE void gap_forward_image(const T* x, std::size_t hw, std::size_t C, T* y) {
  mean_rows(x, hw, C, C, T(1) / T(hw), y);
}

template <class T>
HWY_NOINLINE void gap_backward_image(const T* dy, std::size_t hw, std::size_t C, T* dx) {
  const hn::ScalableTag<T> d;
  const std::size_t L = hn::Lanes(d);
  const T scale = T(1) / T(hw);
  for (std::size_t c = 0; c < C; c += L) {
    const std::size_t n = std::min(L, C - c);
    const auto g = hn::Mul(load_n(d, dy + c, n), hn::Set(d, scale));
    for (std::size_t p = 0; p < hw; ++p) store_n(d, g, dx + p * C + c, n);
  }
}

template <class T>
HWY_NOINLINE void pool_forward_image(const Pool2dShape& s, const T* x, T* y) {
  const T scale = T(1) / T(s.kernel * s.kernel);
  const hn::ScalableTag<T> d;
  const std::size_t L = hn::Lanes(d);
  for (std::size_t p = 0; p < s.p(); ++p)
    for (std::size_t q = 0; q < s.q(); ++q)
      for (std::size_t c = 0; c < s.c; c += L) {
        const std::size_t n = std::min(L, s.c - c);
        auto acc = hn::Zero(d);
        for (std::size_t i = 0; i < s.kernel; ++i)
          for (std::size_t j = 0; j < s.kernel; ++j)
            acc = hn::Add(acc, load_n(d, x + ((p * s.stride + i) * s.w + q * s.stride + j) * s.c + c, n));
        store_n(d, hn::Mul(acc, hn::Set(d, scale)), y + (p * s.q() + q) * s.c + c, n);
      }
}

template <class T>
HWY_NOINLINE void pool_backward_image(const Pool2dShape& s, const T* dy, T* dx) {
  const T scale = T(1) / T(s.kernel * s.kernel);
  const hn::ScalableTag<T> d;
  const std::size_t L = hn::Lanes(d);
  // Windows p holding row ih: p*stride <= ih < p*stride + kernel, 0 <= p < P.
  auto first = [&](std::size_t i) { return i + 1 > s.kernel ? detail::ceil_div(i + 1 - s.kernel, s.stride) : 0; };
  for (std::size_t ih = 0; ih < s.h; ++ih)
    for (std::size_t iw = 0; iw < s.w; ++iw) {
      const std::size_t p0 = first(ih), p1 = std::min(s.p(), ih / s.stride + 1);
      const std::size_t q0 = first(iw), q1 = std::min(s.q(), iw / s.stride + 1);
      for (std::size_t c = 0; c < s.c; c += L) {
        const std::size_t n = std::min(L, s.c - c);
        auto acc = hn::Zero(d);
        for (std::size_t p = p0; p < p1; ++p)
          for (std::size_t q = q0; q < q1; ++q) acc = hn::Add(acc, load_n(d, dy + (p * s.q() + q) * s.c + c, n));
        store_n(d, hn::Mul(acc, hn::Set(d, scale)), dx + (ih * s.w + iw) * s.c + c, n);
      }
    }
}

#define ODYSSEY_POOL_INSTANCES(T, suffix)                                                      \
  void gap_forward_##suffix(std::size_t n, std::size_t hw, std::size_t c, const T* x, T* y) { \
    detail::parallel_items(n, [&](std::size_t i) { gap_forward_image(x + i * hw * c, hw, c, y + i * c); }); \
  }                                                                                            \
  void gap_backward_##suffix(std::size_t n, std::size_t hw, std::size_t c, const T* dy, T* dx) { \
    detail::parallel_items(n, [&](std::size_t i) { gap_backward_image(dy + i * c, hw, c, dx + i * hw * c); }); \
  }                                                                                            \
  void pool_forward_##suffix(const Pool2dShape& s, const T* x, T* y) {                        \
    detail::parallel_items(s.n, [&](std::size_t i) {                                          \
      pool_forward_image(s, x + i * s.h * s.w * s.c, y + i * s.p() * s.q() * s.c);            \
    });                                                                                        \
  }                                                                                            \
  void pool_backward_##suffix(const Pool2dShape& s, const T* dy, T* dx) {                     \
    detail::parallel_items(s.n, [&](std::size_t i) {                                          \
      pool_backward_image(s, dy + i * s.p() * s.q() * s.c, dx + i * s.h * s.w * s.c);         \
    });                                                                                        \
  }
ODYSSEY_POOL_INSTANCES(float, f32)
ODYSSEY_POOL_INSTANCES(double, f64)
#undef ODYSSEY_POOL_INSTANCES

}  // namespace odyssey::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace odyssey::kernels {

namespace {
void check(const Pool2dShape& s) {
  if (s.kernel == 0 || s.stride == 0 || s.kernel > s.h || s.kernel > s.w)
    throw std::invalid_argument("avgpool2d: the window must be between 1 and the input extent, stride >= 1");
}
}  // namespace

#define ODYSSEY_POOL_ENTRIES(T, suffix)                                                       \
  HWY_EXPORT(gap_forward_##suffix);                                                           \
  HWY_EXPORT(gap_backward_##suffix);                                                          \
  HWY_EXPORT(pool_forward_##suffix);                                                          \
  HWY_EXPORT(pool_backward_##suffix);                                                         \
  void global_avgpool_forward(std::size_t n, std::size_t hw, std::size_t c, const T* x, T* y) { \
    HWY_DYNAMIC_DISPATCH(gap_forward_##suffix)(n, hw, c, x, y);                               \
  }                                                                                           \
  void global_avgpool_backward(std::size_t n, std::size_t hw, std::size_t c, const T* dy, T* dx) { \
    HWY_DYNAMIC_DISPATCH(gap_backward_##suffix)(n, hw, c, dy, dx);                            \
  }                                                                                           \
  void avgpool2d_forward(const Pool2dShape& s, const T* x, T* y) {                            \
    check(s);                                                                                 \
    HWY_DYNAMIC_DISPATCH(pool_forward_##suffix)(s, x, y);                                     \
  }                                                                                           \
  void avgpool2d_backward(const Pool2dShape& s, const T* dy, T* dx) {                         \
    check(s);                                                                                 \
    HWY_DYNAMIC_DISPATCH(pool_backward_##suffix)(s, dy, dx);                                  \
  }
ODYSSEY_POOL_ENTRIES(float, f32)
ODYSSEY_POOL_ENTRIES(double, f64)
#undef ODYSSEY_POOL_ENTRIES

}  // namespace odyssey::kernels
#endif  // HWY_ONCE
