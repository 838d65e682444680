// Linear layer kernels: dot products vectorised along the input features, parallel over
// batch rows (forward, backward-data) or output features (backward-weights, whose sums over
// the batch run in batch order inside one task).
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "linear.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cstddef>

#include "common.h"
#include "odyssey/kernels/linear.h"
#include "simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace odyssey::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class T>
HWY_NOINLINE void forward_row(std::size_t in, std::size_t out, const T* HWY_RESTRICT x,
                              const T* HWY_RESTRICT w, const T* HWY_RESTRICT b, T* HWY_RESTRICT y) {
  const hn::ScalableTag<T> d;
  const std::size_t L = hn::Lanes(d);
  for (std::size_t o = 0; o < out; ++o) {
    auto acc = hn::Zero(d);
    for (std::size_t i = 0; i < in; i += L) {
      const std::size_t n = std::min(L, in - i);
      acc = hn::MulAdd(load_n(d, x + i, n), load_n(d, w + o * in + i, n), acc);
    }
    y[o] = hn::GetLane(hn::SumOfLanes(d, acc)) + (b ? b[o] : T(0));
  }
}

template <class T>
HWY_NOINLINE void backward_data_row(std::size_t in, std::size_t out, const T* HWY_RESTRICT dy,
                                    const T* HWY_RESTRICT w, T* HWY_RESTRICT dx) {
  const hn::ScalableTag<T> d;
  const std::size_t L = hn::Lanes(d);
  for (std::size_t i = 0; i < in; i += L) {
    const std::size_t n = std::min(L, in - i);
    auto acc = hn::Zero(d);
    for (std::size_t o = 0; o < out; ++o) acc = hn::MulAdd(hn::Set(d, dy[o]), load_n(d, w + o * in + i, n), acc);
    store_n(d, acc, dx + i, n);
  }
}

template <class T>
HWY_NOINLINE void backward_weights_row(std::size_t batch, std::size_t in, std::size_t out,
                                       std::size_t o, const T* HWY_RESTRICT x,
                                       const T* HWY_RESTRICT dy, T* HWY_RESTRICT dw, T* db) {
  const hn::ScalableTag<T> d;
  const std::size_t L = hn::Lanes(d);
  for (std::size_t i = 0; i < in; i += L) {
    const std::size_t n = std::min(L, in - i);
    auto acc = load_n(d, dw + o * in + i, n);
    for (std::size_t r = 0; r < batch; ++r) acc = hn::MulAdd(hn::Set(d, dy[r * out + o]), load_n(d, x + r * in + i, n), acc);
    store_n(d, acc, dw + o * in + i, n);
  }
  if (db) {
    double sum = 0;
    for (std::size_t r = 0; r < batch; ++r) sum += double(dy[r * out + o]);
    db[o] += T(sum);
  }
}

#define ODYSSEY_LINEAR_INSTANCES(T, suffix)                                                     \
  void linear_forward_##suffix(std::size_t n, std::size_t in, std::size_t out, const T* x,     \
                               const T* w, const T* b, T* y) {                                  \
    detail::parallel_items(n, [&](std::size_t r) { forward_row(in, out, x + r * in, w, b, y + r * out); }); \
  }                                                                                             \
  void linear_backward_data_##suffix(std::size_t n, std::size_t in, std::size_t out,           \
                                     const T* dy, const T* w, T* dx) {                          \
    detail::parallel_items(n, [&](std::size_t r) { backward_data_row(in, out, dy + r * out, w, dx + r * in); }); \
  }                                                                                             \
  void linear_backward_weights_##suffix(std::size_t n, std::size_t in, std::size_t out,        \
                                        const T* x, const T* dy, T* dw, T* db) {                \
    detail::parallel_items(out, [&](std::size_t o) { backward_weights_row(n, in, out, o, x, dy, dw, db); }); \
  }
ODYSSEY_LINEAR_INSTANCES(float, f32)
ODYSSEY_LINEAR_INSTANCES(double, f64)
#undef ODYSSEY_LINEAR_INSTANCES

}  // namespace odyssey::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace odyssey::kernels {

#define ODYSSEY_LINEAR_ENTRIES(T, suffix)                                                       \
  HWY_EXPORT(linear_forward_##suffix);                                                          \
  HWY_EXPORT(linear_backward_data_##suffix);                                                    \
  HWY_EXPORT(linear_backward_weights_##suffix);                                                 \
  void linear_forward(std::size_t n, std::size_t in, std::size_t out, const T* x, const T* w,  \
                      const T* b, T* y) {                                                       \
    HWY_DYNAMIC_DISPATCH(linear_forward_##suffix)(n, in, out, x, w, b, y);                      \
  }                                                                                             \
  void linear_backward_data(std::size_t n, std::size_t in, std::size_t out, const T* dy,       \
                            const T* w, T* dx) {                                                \
    HWY_DYNAMIC_DISPATCH(linear_backward_data_##suffix)(n, in, out, dy, w, dx);                 \
  }                                                                                             \
  void linear_backward_weights(std::size_t n, std::size_t in, std::size_t out, const T* x,     \
                               const T* dy, T* dw, T* db) {                                     \
    HWY_DYNAMIC_DISPATCH(linear_backward_weights_##suffix)(n, in, out, x, dy, dw, db);          \
  }
ODYSSEY_LINEAR_ENTRIES(float, f32)
ODYSSEY_LINEAR_ENTRIES(double, f64)
#undef ODYSSEY_LINEAR_ENTRIES

}  // namespace odyssey::kernels
#endif  // HWY_ONCE
