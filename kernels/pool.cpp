// Average and max pooling kernels: vectorised over channels (contiguous in channels-last),
// parallel over images. Backward passes gather rather than scatter, so no two tasks write the
// same element and sums do not depend on the thread count.
//
// Legend: N batch, C channels, H, W input extent, P, Q output extent, K kernel, S stride,
// pad padding.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "pool.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

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

// ---- max pooling

/// Rows [begin, end) of the input that window `p` covers (padded row p*S .. p*S + K - 1).
/// pad <= K/2 leaves every window at least one row inside the image.
struct Span {
  std::size_t begin, end;
};
HWY_INLINE Span window_span(std::size_t p, std::size_t stride, std::size_t kernel, std::size_t pad,
                            std::size_t extent) {
  const std::size_t top = p * stride;
  return {top > pad ? top - pad : 0, std::min(extent, top + kernel - pad)};
}

/// Outputs [begin, end) whose windows hold input row i (padded row i + pad):
/// p*S <= i + pad < p*S + K, 0 <= p < P.
HWY_INLINE Span windows_holding(std::size_t i, std::size_t stride, std::size_t kernel, std::size_t pad,
                                std::size_t outputs) {
  const std::size_t r = i + pad;
  return {r + 1 > kernel ? detail::ceil_div(r + 1 - kernel, stride) : 0, std::min(outputs, r / stride + 1)};
}

/// Writes the first `count` lanes of an index vector (int32 lanes for float, int64 for double)
/// as int32.
template <class DI>
HWY_INLINE void store_index(DI di, hn::Vec<DI> idx, std::int32_t* HWY_RESTRICT out, std::size_t count) {
  if constexpr (sizeof(hn::TFromD<DI>) == 4) {
    store_n(di, idx, out, count);
  } else {
    HWY_ALIGN hn::TFromD<DI> buf[hn::MaxLanes(DI())];
    hn::Store(idx, di, buf);
    for (std::size_t j = 0; j < count; ++j) out[j] = static_cast<std::int32_t>(buf[j]);
  }
}

/// Lanes of d where the stored int32 index equals `pixel` (first `count` lanes read).
template <class D>
HWY_INLINE hn::Mask<D> index_is(D d, const std::int32_t* HWY_RESTRICT idx, std::size_t count,
                                std::int32_t pixel) {
  const hn::RebindToSigned<D> di;
  if constexpr (sizeof(hn::TFromD<D>) == 4) {
    return hn::RebindMask(d, hn::Eq(load_n(di, idx, count), hn::Set(di, pixel)));
  } else {
    const hn::Rebind<std::int32_t, D> d32;
    const auto wide = hn::PromoteTo(di, load_n(d32, idx, count));
    return hn::RebindMask(d, hn::Eq(wide, hn::Set(di, static_cast<hn::TFromD<decltype(di)>>(pixel))));
  }
}

template <class T>
HWY_NOINLINE void maxpool_forward_image(const MaxPool2dShape& s, const T* HWY_RESTRICT x, T* HWY_RESTRICT y,
                                        std::int32_t* HWY_RESTRICT argmax) {
  const hn::ScalableTag<T> d;
  const hn::RebindToSigned<decltype(d)> di;
  using TI = hn::TFromD<decltype(di)>;
  const std::size_t L = hn::Lanes(d), C = s.c, P = s.p(), Q = s.q();
  const auto lowest = hn::Set(d, -std::numeric_limits<T>::infinity());
  for (std::size_t p = 0; p < P; ++p) {
    const Span rows = window_span(p, s.stride, s.kernel, s.pad, s.h);
    for (std::size_t q = 0; q < Q; ++q) {
      const Span cols = window_span(q, s.stride, s.kernel, s.pad, s.w);
      const std::size_t out = (p * Q + q) * C;
      for (std::size_t c = 0; c < C; c += L) {
        const std::size_t n = std::min(L, C - c);
        // PyTorch's rule: start from -inf at the window's first pixel, take an element when
        // it is greater (so ties keep the first) or NaN (so NaNs propagate).
        auto best = lowest;
        auto idx = hn::Set(di, static_cast<TI>(rows.begin * s.w + cols.begin));
        for (std::size_t ih = rows.begin; ih < rows.end; ++ih)
          for (std::size_t iw = cols.begin; iw < cols.end; ++iw) {
            const auto v = load_n(d, x + (ih * s.w + iw) * C + c, n);
            const auto take = hn::Or(hn::Gt(v, best), hn::IsNaN(v));
            best = hn::IfThenElse(take, v, best);
            idx = hn::IfThenElse(hn::RebindMask(di, take), hn::Set(di, static_cast<TI>(ih * s.w + iw)), idx);
          }
        store_n(d, best, y + out + c, n);
        store_index(di, idx, argmax + out + c, n);
      }
    }
  }
}

/// Gathers, for each input pixel, dy of the windows (in row-major output order) whose argmax
/// is that pixel: the order a scatter over the outputs would add them in, without a zeroing
/// pass and with each dx element written once.
template <class T>
HWY_NOINLINE void maxpool_backward_image(const MaxPool2dShape& s, const T* HWY_RESTRICT dy,
                                         const std::int32_t* HWY_RESTRICT argmax, T* HWY_RESTRICT dx) {
  const hn::ScalableTag<T> d;
  const std::size_t L = hn::Lanes(d), C = s.c, P = s.p(), Q = s.q();
  for (std::size_t ih = 0; ih < s.h; ++ih) {
    const Span ps = windows_holding(ih, s.stride, s.kernel, s.pad, P);
    for (std::size_t iw = 0; iw < s.w; ++iw) {
      const Span qs = windows_holding(iw, s.stride, s.kernel, s.pad, Q);
      const auto pixel = static_cast<std::int32_t>(ih * s.w + iw);
      for (std::size_t c = 0; c < C; c += L) {
        const std::size_t n = std::min(L, C - c);
        auto acc = hn::Zero(d);
        for (std::size_t p = ps.begin; p < ps.end; ++p)
          for (std::size_t q = qs.begin; q < qs.end; ++q) {
            const std::size_t o = (p * Q + q) * C + c;
            acc = hn::Add(acc, hn::IfThenElseZero(index_is(d, argmax + o, n, pixel), load_n(d, dy + o, n)));
          }
        store_n(d, acc, dx + (ih * s.w + iw) * C + c, n);
      }
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
  }                                                                                            \
  void maxpool_forward_##suffix(const MaxPool2dShape& s, const T* x, T* y, std::int32_t* argmax) { \
    const std::size_t in = s.h * s.w * s.c, out = s.p() * s.q() * s.c;                        \
    detail::parallel_items(s.n, [&](std::size_t i) {                                          \
      maxpool_forward_image(s, x + i * in, y + i * out, argmax + i * out);                    \
    });                                                                                        \
  }                                                                                            \
  void maxpool_backward_##suffix(const MaxPool2dShape& s, const T* dy, const std::int32_t* argmax, T* dx) { \
    const std::size_t in = s.h * s.w * s.c, out = s.p() * s.q() * s.c;                        \
    detail::parallel_items(s.n, [&](std::size_t i) {                                          \
      maxpool_backward_image(s, dy + i * out, argmax + i * out, dx + i * in);                 \
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

void check(const MaxPool2dShape& s) {
  const auto shape = [&] {
    return " (kernel " + std::to_string(s.kernel) + ", stride " + std::to_string(s.stride) + ", pad " +
           std::to_string(s.pad) + ", input " + std::to_string(s.h) + "x" + std::to_string(s.w) + ")";
  };
  if (s.kernel == 0 || s.stride == 0)
    throw std::invalid_argument("maxpool2d: kernel and stride must be at least 1" + shape());
  if (s.pad > s.kernel / 2)
    throw std::invalid_argument("maxpool2d: padding must be at most half the kernel, as in PyTorch" + shape());
  if (s.h + 2 * s.pad < s.kernel || s.w + 2 * s.pad < s.kernel)
    throw std::invalid_argument("maxpool2d: the padded input is smaller than the kernel" + shape());
  if (s.h * s.w > std::size_t(std::numeric_limits<std::int32_t>::max()))
    throw std::invalid_argument("maxpool2d: h*w does not fit the int32 argmax" + shape());
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
  }                                                                                           \
  HWY_EXPORT(maxpool_forward_##suffix);                                                       \
  HWY_EXPORT(maxpool_backward_##suffix);                                                      \
  void maxpool2d_forward(const MaxPool2dShape& s, const T* x, T* y, std::int32_t* argmax) {   \
    check(s);                                                                                 \
    HWY_DYNAMIC_DISPATCH(maxpool_forward_##suffix)(s, x, y, argmax);                          \
  }                                                                                           \
  void maxpool2d_backward(const MaxPool2dShape& s, const T* dy, const std::int32_t* argmax, T* dx) { \
    check(s);                                                                                 \
    HWY_DYNAMIC_DISPATCH(maxpool_backward_##suffix)(s, dy, argmax, dx);                       \
  }
ODYSSEY_POOL_ENTRIES(float, f32)
ODYSSEY_POOL_ENTRIES(double, f64)
#undef ODYSSEY_POOL_ENTRIES

}  // namespace odyssey::kernels
#endif  // HWY_ONCE
