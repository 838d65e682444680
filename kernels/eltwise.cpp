// Element-wise kernels: one pass over memory each, split into fixed blocks across threads.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "eltwise.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cstddef>

#include "common.h"
#include "odyssey/kernels/eltwise.h"
#include "simd-inl.h"

#ifndef ODYSSEY_KERNELS_ELTWISE_CONSTANTS  // this file is compiled once per target
#define ODYSSEY_KERNELS_ELTWISE_CONSTANTS
namespace odyssey::kernels::detail {
/// 64 KiB of floats per task: big enough to amortise scheduling, small enough to balance.
constexpr std::size_t kEltwiseBlock = 16384;

/// Runs body(begin, end) over [0, n) in fixed blocks, in parallel.
template <class Body>
void for_blocks(std::size_t n, const Body& body) {
  parallel_items(ceil_div(n, kEltwiseBlock), [&](std::size_t b) {
    body(b * kEltwiseBlock, std::min(n, (b + 1) * kEltwiseBlock));
  });
}
}  // namespace odyssey::kernels::detail
#endif

HWY_BEFORE_NAMESPACE();
namespace odyssey::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

enum class Op { relu, relu_backward, add, add_relu, accumulate };

/// out[i] = op(a[i], b[i]) for i in [begin, end).
template <Op op, class T>
HWY_NOINLINE void binary(const T* HWY_RESTRICT a, const T* b, T* out, std::size_t begin,
                         std::size_t end) {
  const hn::ScalableTag<T> d;
  const std::size_t L = hn::Lanes(d);
  const auto zero = hn::Zero(d);
  for (std::size_t i = begin; i < end; i += L) {
    const std::size_t n = std::min(L, end - i);
    const auto av = load_n(d, a + i, n);
    hn::Vec<decltype(d)> r;
    if constexpr (op == Op::relu) {
      r = hn::Max(av, zero);
    } else if constexpr (op == Op::relu_backward) {  // a = y, b = dy
      r = hn::IfThenElseZero(hn::Gt(av, zero), load_n(d, b + i, n));
    } else if constexpr (op == Op::add) {
      r = hn::Add(av, load_n(d, b + i, n));
    } else if constexpr (op == Op::add_relu) {
      r = hn::Max(hn::Add(av, load_n(d, b + i, n)), zero);
    } else {  // accumulate: out = out + a
      r = hn::Add(load_n(d, out + i, n), av);
    }
    store_n(d, r, out + i, n);
  }
}

template <class T>
HWY_NOINLINE void sgd(T* HWY_RESTRICT w, T* HWY_RESTRICT g, T* HWY_RESTRICT v,
                      const SgdParams& p, std::size_t begin, std::size_t end) {
  const hn::ScalableTag<T> d;
  const std::size_t L = hn::Lanes(d);
  const auto lr = hn::Set(d, T(p.lr)), mu = hn::Set(d, T(p.momentum)), wd = hn::Set(d, T(p.weight_decay));
  const auto zero = hn::Zero(d);
  for (std::size_t i = begin; i < end; i += L) {
    const std::size_t n = std::min(L, end - i);
    const auto wv = load_n(d, w + i, n);
    const auto gv = hn::MulAdd(wd, wv, load_n(d, g + i, n));
    const auto vv = hn::MulAdd(mu, load_n(d, v + i, n), gv);
    const auto step = p.nesterov ? hn::MulAdd(mu, vv, gv) : vv;
    store_n(d, hn::NegMulAdd(lr, step, wv), w + i, n);
    store_n(d, vv, v + i, n);
    store_n(d, zero, g + i, n);
  }
}

#define ODYSSEY_ELTWISE_INSTANCES(T, suffix)                                                    \
  void relu_forward_##suffix(std::size_t n, const T* x, T* y) {                                 \
    detail::for_blocks(n, [&](std::size_t b, std::size_t e) { binary<Op::relu>(x, x, y, b, e); }); \
  }                                                                                             \
  void relu_backward_##suffix(std::size_t n, const T* y, const T* dy, T* dx) {                  \
    detail::for_blocks(n, [&](std::size_t b, std::size_t e) { binary<Op::relu_backward>(y, dy, dx, b, e); }); \
  }                                                                                             \
  void add_forward_##suffix(std::size_t n, const T* a, const T* b2, T* y) {                     \
    detail::for_blocks(n, [&](std::size_t b, std::size_t e) { binary<Op::add>(a, b2, y, b, e); }); \
  }                                                                                             \
  void add_relu_forward_##suffix(std::size_t n, const T* a, const T* b2, T* y) {                \
    detail::for_blocks(n, [&](std::size_t b, std::size_t e) { binary<Op::add_relu>(a, b2, y, b, e); }); \
  }                                                                                             \
  void accumulate_##suffix(std::size_t n, const T* x, T* y) {                                   \
    detail::for_blocks(n, [&](std::size_t b, std::size_t e) { binary<Op::accumulate>(x, x, y, b, e); }); \
  }                                                                                             \
  void sgd_update_##suffix(std::size_t n, T* w, T* g, T* v, const SgdParams& p) {               \
    detail::for_blocks(n, [&](std::size_t b, std::size_t e) { sgd(w, g, v, p, b, e); });        \
  }
ODYSSEY_ELTWISE_INSTANCES(float, f32)
ODYSSEY_ELTWISE_INSTANCES(double, f64)
#undef ODYSSEY_ELTWISE_INSTANCES

}  // namespace odyssey::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace odyssey::kernels {

#define ODYSSEY_ELTWISE_ENTRIES(T, suffix)                                                \
  HWY_EXPORT(relu_forward_##suffix);                                                      \
  HWY_EXPORT(relu_backward_##suffix);                                                     \
  HWY_EXPORT(add_forward_##suffix);                                                       \
  HWY_EXPORT(add_relu_forward_##suffix);                                                  \
  HWY_EXPORT(accumulate_##suffix);                                                        \
  HWY_EXPORT(sgd_update_##suffix);                                                        \
  void relu_forward(std::size_t n, const T* x, T* y) {                                    \
    HWY_DYNAMIC_DISPATCH(relu_forward_##suffix)(n, x, y);                                 \
  }                                                                                       \
  void relu_backward(std::size_t n, const T* y, const T* dy, T* dx) {                     \
    HWY_DYNAMIC_DISPATCH(relu_backward_##suffix)(n, y, dy, dx);                           \
  }                                                                                       \
  void add_forward(std::size_t n, const T* a, const T* b, T* y) {                         \
    HWY_DYNAMIC_DISPATCH(add_forward_##suffix)(n, a, b, y);                               \
  }                                                                                       \
  void add_relu_forward(std::size_t n, const T* a, const T* b, T* y) {                    \
    HWY_DYNAMIC_DISPATCH(add_relu_forward_##suffix)(n, a, b, y);                          \
  }                                                                                       \
  void accumulate(std::size_t n, const T* x, T* y) {                                      \
    HWY_DYNAMIC_DISPATCH(accumulate_##suffix)(n, x, y);                                   \
  }                                                                                       \
  void sgd_update(std::size_t n, T* w, T* g, T* v, const SgdParams& p) {                  \
    HWY_DYNAMIC_DISPATCH(sgd_update_##suffix)(n, w, g, v, p);                             \
  }
ODYSSEY_ELTWISE_ENTRIES(float, f32)
ODYSSEY_ELTWISE_ENTRIES(double, f64)
#undef ODYSSEY_ELTWISE_ENTRIES

}  // namespace odyssey::kernels
#endif  // HWY_ONCE
