// Element-wise kernels: one pass over memory each, split into fixed blocks across threads.
// Dropout's mask comes from a counter-based hash of the element index, so it does not depend
// on the blocks either.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "eltwise.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

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

// Dropout's hash (eltwise.h states it): SplitMix64's increment and finaliser constants.
constexpr std::uint64_t kGolden = 0x9E3779B97F4A7C15u;
constexpr std::uint64_t kMix1 = 0xBF58476D1CE4E5B9u, kMix2 = 0x94D049BB133111EBu;

constexpr std::uint64_t splitmix_finalise(std::uint64_t z) {
  z = (z ^ (z >> 30)) * kMix1;
  z = (z ^ (z >> 27)) * kMix2;
  return z ^ (z >> 31);
}

constexpr std::uint64_t dropout_key(const DropoutParams& p) {
  return splitmix_finalise(p.seed ^ splitmix_finalise(p.stream + kGolden));
}

/// Element i is kept iff (bits(i) >> 11) >= ceil(p * 2^53): the integer form of
/// (bits >> 11) * 2^-53 >= p, and exact (scaling by a power of two does not round).
inline std::int64_t dropout_threshold(double p) { return static_cast<std::int64_t>(std::ceil(std::ldexp(p, 53))); }
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

// ---- dropout

/// a * b mod 2^64 in each u64 lane, b a constant. Highway 1.0.3 has no 64-bit multiply; build
/// it from 32x32->64 products (MulEven, one vpmuludq each):
///   a * b = lo(a) lo(b) + ((hi(a) lo(b) + lo(a) hi(b)) << 32)   (mod 2^64).
template <class DU>
HWY_INLINE hn::Vec<DU> mul_u64(DU du, hn::Vec<DU> a, std::uint64_t b) {
  const hn::Repartition<std::uint32_t, DU> d32;
  const auto b_lo = hn::BitCast(d32, hn::Set(du, b & 0xFFFFFFFFu));
  const auto b_hi = hn::BitCast(d32, hn::Set(du, b >> 32));
  const auto a32 = hn::BitCast(d32, a);
  const auto cross = hn::Add(hn::MulEven(hn::BitCast(d32, hn::ShiftRight<32>(a)), b_lo), hn::MulEven(a32, b_hi));
  return hn::Add(hn::MulEven(a32, b_lo), hn::ShiftLeft<32>(cross));
}

/// SplitMix64's finaliser, lane-wise (detail::splitmix_finalise).
template <class DU>
HWY_INLINE hn::Vec<DU> splitmix_finalise(DU du, hn::Vec<DU> z) {
  z = mul_u64(du, hn::Xor(z, hn::ShiftRight<30>(z)), detail::kMix1);
  z = mul_u64(du, hn::Xor(z, hn::ShiftRight<27>(z)), detail::kMix2);
  return hn::Xor(z, hn::ShiftRight<31>(z));
}

/// 1 in the lanes whose element is kept, else 0; a lane holds its element i's counter
/// key + (i + 1) * G.
template <class DU>
HWY_INLINE hn::Vec<DU> keep_u64(DU du, hn::Vec<DU> counter, std::int64_t threshold) {
  const hn::RebindToSigned<DU> di;
  const auto u53 = hn::BitCast(di, hn::ShiftRight<11>(splitmix_finalise(du, counter)));
  return hn::IfThenZeroElse(hn::RebindMask(du, hn::Lt(u53, hn::Set(di, threshold))), hn::Set(du, 1));
}

/// Keep flags (1 or 0) of the Lanes(d) elements from the one whose counter is lane 0 of
/// `counter`, in unsigned lanes as wide as T. A float vector spans two u64 vectors of counters,
/// the second `half` = Lanes(d64) * G further on.
template <class D, class D64>
HWY_INLINE hn::Vec<hn::RebindToUnsigned<D>> keep_flags(D /*d*/, D64 d64, hn::Vec<D64> counter, std::uint64_t half,
                                                       std::int64_t threshold) {
  if constexpr (sizeof(hn::TFromD<D>) == 8) {
    return keep_u64(d64, counter, threshold);
  } else {
    const hn::RebindToUnsigned<D> du;
    const hn::Rebind<std::uint32_t, D64> dh;
    const auto lo = hn::TruncateTo(dh, keep_u64(d64, counter, threshold));
    const auto hi = hn::TruncateTo(dh, keep_u64(d64, hn::Add(counter, hn::Set(d64, half)), threshold));
    return hn::Combine(du, hi, lo);
  }
}

/// The hash is the cost: two emulated 64-bit multiplies per element make the forward pass
/// compute-bound at about 1.7 G elements/s on 2 threads (15 GB/s; Xeon model 207, AVX3),
/// where backward, which only reads the mask, streams at 43 GB/s.
template <class T>
HWY_NOINLINE void dropout_fwd(const T* x, T* y, std::uint8_t* HWY_RESTRICT mask, std::uint64_t key,
                              std::int64_t threshold, T scale, std::size_t begin, std::size_t end) {
  const hn::ScalableTag<T> d;
  const hn::RebindToUnsigned<decltype(d)> du;
  const hn::Rebind<std::uint8_t, decltype(d)> d8;
  const hn::Repartition<std::uint64_t, decltype(d)> d64;
  const std::size_t L = hn::Lanes(d), L64 = hn::Lanes(d64);
  HWY_ALIGN std::uint64_t first[hn::MaxLanes(decltype(d64)())];
  for (std::size_t j = 0; j < L64; ++j) first[j] = key + (begin + j + 1) * detail::kGolden;
  auto counter = hn::Load(d64, first);
  const auto advance = hn::Set(d64, L * detail::kGolden);
  const auto s = hn::Set(d, scale);
  for (std::size_t i = begin; i < end; i += L) {
    const std::size_t n = std::min(L, end - i);
    const auto flags = keep_flags(d, d64, counter, L64 * detail::kGolden, threshold);
    counter = hn::Add(counter, advance);
    store_n(d8, hn::TruncateTo(d8, flags), mask + i, n);
    const auto keep = hn::RebindMask(d, hn::Ne(flags, hn::Zero(du)));
    store_n(d, hn::IfThenElseZero(keep, hn::Mul(load_n(d, x + i, n), s)), y + i, n);
  }
}

template <class T>
HWY_NOINLINE void dropout_bwd(const T* dy, const std::uint8_t* HWY_RESTRICT mask, T scale, T* dx,
                              std::size_t begin, std::size_t end) {
  const hn::ScalableTag<T> d;
  const hn::RebindToUnsigned<decltype(d)> du;
  const hn::Rebind<std::uint8_t, decltype(d)> d8;
  const std::size_t L = hn::Lanes(d);
  const auto s = hn::Set(d, scale);
  for (std::size_t i = begin; i < end; i += L) {
    const std::size_t n = std::min(L, end - i);
    const auto bytes = load_n(d8, mask + i, n);
    hn::Vec<decltype(du)> flags;
    if constexpr (sizeof(T) == 4) {
      flags = hn::PromoteTo(du, bytes);
    } else {  // no u8 -> u64 promotion in Highway 1.0.3: go through u32
      flags = hn::PromoteTo(du, hn::PromoteTo(hn::Rebind<std::uint32_t, decltype(d)>(), bytes));
    }
    const auto keep = hn::RebindMask(d, hn::Ne(flags, hn::Zero(du)));
    store_n(d, hn::IfThenElseZero(keep, hn::Mul(load_n(d, dy + i, n), s)), dx + i, n);
  }
}

// ---- AdamW

template <class T>
HWY_NOINLINE void adamw(T* HWY_RESTRICT w, T* HWY_RESTRICT g, T* HWY_RESTRICT m, T* HWY_RESTRICT v,
                        const AdamWParams& p, std::size_t begin, std::size_t end) {
  const hn::ScalableTag<T> d;
  const std::size_t L = hn::Lanes(d);
  // The scalars in double, as PyTorch computes them in Python floats.
  const double bias1 = 1 - std::pow(p.beta1, double(p.step)), bias2 = 1 - std::pow(p.beta2, double(p.step));
  const auto decay = hn::Set(d, T(1 - p.lr * p.weight_decay));
  const auto b1 = hn::Set(d, T(p.beta1)), c1 = hn::Set(d, T(1 - p.beta1));
  const auto b2 = hn::Set(d, T(p.beta2)), c2 = hn::Set(d, T(1 - p.beta2));
  const auto step_size = hn::Set(d, T(p.lr / bias1)), bias2_sqrt = hn::Set(d, T(std::sqrt(bias2)));
  const auto eps = hn::Set(d, T(p.eps)), zero = hn::Zero(d);
  for (std::size_t i = begin; i < end; i += L) {
    const std::size_t n = std::min(L, end - i);
    const auto gv = load_n(d, g + i, n);
    // PyTorch's order of operations: m.mul_(beta1).add_(g, alpha=1-beta1),
    // v.mul_(beta2).addcmul_(g, g, value=1-beta2), denom = v.sqrt() / sqrt(bias2) + eps,
    // w.addcdiv_(m, denom, value=-step_size). The divisions stay divisions (not products
    // with reciprocals) to round as PyTorch does; the update is memory-bound anyway
    // (8 streams of T per element).
    const auto mv = hn::MulAdd(c1, gv, hn::Mul(b1, load_n(d, m + i, n)));
    const auto vv = hn::MulAdd(hn::Mul(c2, gv), gv, hn::Mul(b2, load_n(d, v + i, n)));
    const auto denom = hn::Add(hn::Div(hn::Sqrt(vv), bias2_sqrt), eps);
    const auto wv = hn::Mul(load_n(d, w + i, n), decay);
    store_n(d, hn::NegMulAdd(step_size, hn::Div(mv, denom), wv), w + i, n);
    store_n(d, mv, m + i, n);
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
  }                                                                                             \
  void dropout_forward_##suffix(std::size_t n, const T* x, T* y, std::uint8_t* mask, const DropoutParams& p) { \
    const std::uint64_t key = detail::dropout_key(p);                                           \
    const std::int64_t threshold = detail::dropout_threshold(p.p);                              \
    const T scale = T(1 / (1 - p.p));                                                           \
    detail::for_blocks(n, [&](std::size_t b, std::size_t e) { dropout_fwd(x, y, mask, key, threshold, scale, b, e); }); \
  }                                                                                             \
  void dropout_backward_##suffix(std::size_t n, const T* dy, const std::uint8_t* mask, double p, T* dx) { \
    const T scale = T(1 / (1 - p));                                                             \
    detail::for_blocks(n, [&](std::size_t b, std::size_t e) { dropout_bwd(dy, mask, scale, dx, b, e); }); \
  }                                                                                             \
  void adamw_update_##suffix(std::size_t n, T* w, T* g, T* m, T* v, const AdamWParams& p) {     \
    detail::for_blocks(n, [&](std::size_t b, std::size_t e) { adamw(w, g, m, v, p, b, e); });   \
  }
ODYSSEY_ELTWISE_INSTANCES(float, f32)
ODYSSEY_ELTWISE_INSTANCES(double, f64)
#undef ODYSSEY_ELTWISE_INSTANCES

}  // namespace odyssey::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace odyssey::kernels {

namespace {
void check_dropout(double p) {
  if (!(p >= 0 && p < 1))
    throw std::invalid_argument("dropout: p must be in [0, 1), got " + std::to_string(p));
}

void check(const AdamWParams& p) {
  const auto fail = [](const std::string& what) { throw std::invalid_argument("adamw: " + what); };
  if (p.step < 1) fail("step must be at least 1 (the count after incrementing), got " + std::to_string(p.step));
  if (!(p.lr >= 0)) fail("lr must be >= 0, got " + std::to_string(p.lr));
  if (!(p.eps >= 0)) fail("eps must be >= 0, got " + std::to_string(p.eps));
  if (!(p.weight_decay >= 0)) fail("weight_decay must be >= 0, got " + std::to_string(p.weight_decay));
  if (!(p.beta1 >= 0 && p.beta1 < 1) || !(p.beta2 >= 0 && p.beta2 < 1))
    fail("betas must be in [0, 1), got " + std::to_string(p.beta1) + ", " + std::to_string(p.beta2));
}
}  // namespace

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
  }                                                                                       \
  HWY_EXPORT(dropout_forward_##suffix);                                                   \
  HWY_EXPORT(dropout_backward_##suffix);                                                  \
  HWY_EXPORT(adamw_update_##suffix);                                                      \
  void dropout_forward(std::size_t n, const T* x, T* y, std::uint8_t* mask, const DropoutParams& p) { \
    check_dropout(p.p);                                                                   \
    HWY_DYNAMIC_DISPATCH(dropout_forward_##suffix)(n, x, y, mask, p);                     \
  }                                                                                       \
  void dropout_backward(std::size_t n, const T* dy, const std::uint8_t* mask, double p, T* dx) { \
    check_dropout(p);                                                                     \
    HWY_DYNAMIC_DISPATCH(dropout_backward_##suffix)(n, dy, mask, p, dx);                  \
  }                                                                                       \
  void adamw_update(std::size_t n, T* w, T* g, T* m, T* v, const AdamWParams& p) {        \
    check(p);                                                                             \
    HWY_DYNAMIC_DISPATCH(adamw_update_##suffix)(n, w, g, m, v, p);                        \
  }
ODYSSEY_ELTWISE_ENTRIES(float, f32)
ODYSSEY_ELTWISE_ENTRIES(double, f64)
#undef ODYSSEY_ELTWISE_ENTRIES

}  // namespace odyssey::kernels
#endif  // HWY_ONCE
