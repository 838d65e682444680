// Per-target building blocks of the convolution kernels: the register tiling and the
// micro-kernels. Included once per Highway target by conv.cpp and conv_weights.cpp.
//
// The convolutions are implicit GEMMs on channels-last data. A register tile holds
// kRows pixels (or input channels, for the weight gradient) by kVectors vectors of
// output channels: on AVX-512, 6 x 4 or 12 x 2 = 24 accumulators, which with the weight
// vectors and one broadcast use at most 29 of the 32 registers; each step issues 24
// independent FMAs, enough to keep two FMA pipes with 4-cycle latency busy (8 needed).
// AVX2 has 16 registers: 6 x 2 = 12 accumulators + 2 + 1.
#if defined(ODYSSEY_KERNELS_CONV_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ODYSSEY_KERNELS_CONV_INL_H_
#undef ODYSSEY_KERNELS_CONV_INL_H_
#else
#define ODYSSEY_KERNELS_CONV_INL_H_
#endif

#include <hwy/aligned_allocator.h>
#include <hwy/highway.h>

#include <algorithm>

#include "odyssey/kernels/conv.h"
#include "simd-inl.h"

HWY_BEFORE_NAMESPACE();
namespace odyssey::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

/// The register tile. Two shapes on AVX-512: "wide" (6 rows x 4 vectors, 64 output
/// channels) reuses each loaded input value 4 times and suits short reductions; "tall"
/// (12 rows x 2 vectors, 32 channels) halves the weight bytes per FMA, which pays when the
/// reduction is long (C >= 256: ResNet-18's layer 3 and 4, where the per-tap weights no longer
/// stay in L1). Measured at batch 128: layer-1 forward 27.1 ms wide vs 29.8 tall, layer-4
/// forward 36.7 wide vs 30.0 tall. Other targets have one shape.
template <class T, bool kTall = false>
struct ConvTile {
  using D = hn::ScalableTag<T>;
  static constexpr bool kAvx512 = HWY_TARGET <= HWY_AVX3;
  static constexpr bool kEmulated = HWY_TARGET == HWY_EMU128 || HWY_TARGET == HWY_SCALAR;
  static constexpr std::size_t kLanes = hn::MaxLanes(D());
  static constexpr std::size_t kVectors = kAvx512 && !kTall ? 4 : 2;
  static constexpr std::size_t kRows = kEmulated ? 4 : (kAvx512 && kTall ? 12 : 6);
  /// Output channels per tile; weights are packed and zero-padded in groups of this many.
  static constexpr std::size_t kGroup = kVectors * kLanes;
  using value_type = T;
};

/// Whether a reduction of `len` channels uses the tall tile.
constexpr bool use_tall_tile(std::size_t len) { return len >= 256; }

/// acc[i][v] += sum_c a[i][c] * b[c][v]: kRows input rows (pointers, each read at
/// [0, len)) times packed weights b ([len][kVectors * kLanes], aligned).
template <std::size_t MR, std::size_t NV, class D, class T = hn::TFromD<D>>
HWY_INLINE void tile_rows(D d, const T* const* HWY_RESTRICT a, const T* HWY_RESTRICT b,
                          std::size_t len, hn::Vec<D>* HWY_RESTRICT acc) {
  constexpr std::size_t L = hn::MaxLanes(D());
  const T* rows[MR];
  HWY_UNROLL(MR)
  for (std::size_t i = 0; i < MR; ++i) rows[i] = a[i];
  // A local copy of the accumulators: vectors may alias the float rows read here, so
  // updating acc[] in place would make the compiler store every FMA result to memory.
  hn::Vec<D> sum[MR * NV];
  HWY_UNROLL(MR * NV)
  for (std::size_t i = 0; i < MR * NV; ++i) sum[i] = acc[i];
  HWY_UNROLL(4)
  for (std::size_t c = 0; c < len; ++c, b += NV * L) {
    hn::Vec<D> bv[NV];
    HWY_UNROLL(NV)
    for (std::size_t v = 0; v < NV; ++v) bv[v] = hn::Load(d, b + v * L);
    HWY_UNROLL(MR)
    for (std::size_t i = 0; i < MR; ++i) {
      const auto av = hn::Set(d, rows[i][c]);
      HWY_UNROLL(NV)
      for (std::size_t v = 0; v < NV; ++v) sum[i * NV + v] = hn::MulAdd(av, bv[v], sum[i * NV + v]);
    }
  }
  HWY_UNROLL(MR * NV)
  for (std::size_t i = 0; i < MR * NV; ++i) acc[i] = sum[i];
}

/// acc[i][v] += sum_q x[q*xstep + i] * dy[q*dystep + v*L], for `count` pixels q.
template <std::size_t MR, std::size_t NV, bool kFull, class D, class T = hn::TFromD<D>>
HWY_INLINE void tile_pixels(D d, const T* HWY_RESTRICT x, std::size_t xstep,
                            const T* HWY_RESTRICT dy, std::size_t dystep, std::size_t count,
                            std::size_t width, hn::Vec<D>* HWY_RESTRICT acc) {
  constexpr std::size_t L = hn::MaxLanes(D());
  hn::Vec<D> sum[MR * NV];  // local copy: see tile_rows
  HWY_UNROLL(MR * NV)
  for (std::size_t i = 0; i < MR * NV; ++i) sum[i] = acc[i];
  for (std::size_t q = 0; q < count; ++q, x += xstep, dy += dystep) {
    hn::Vec<D> bv[NV];
    HWY_UNROLL(NV)
    for (std::size_t v = 0; v < NV; ++v) {
      if constexpr (kFull) {
        bv[v] = hn::LoadU(d, dy + v * L);
      } else {
        bv[v] = v * L < width ? load_n(d, dy + v * L, std::min(L, width - v * L)) : hn::Zero(d);
      }
    }
    HWY_UNROLL(MR)
    for (std::size_t i = 0; i < MR; ++i) {
      const auto av = hn::Set(d, x[i]);
      HWY_UNROLL(NV)
      for (std::size_t v = 0; v < NV; ++v) sum[i * NV + v] = hn::MulAdd(av, bv[v], sum[i * NV + v]);
    }
  }
  HWY_UNROLL(MR * NV)
  for (std::size_t i = 0; i < MR * NV; ++i) acc[i] = sum[i];
}

/// This thread's scratch buffer of at least n elements, grown when needed and kept, so that
/// after the first step no task allocates (a packed chunk gradient, a block's gathered
/// patches). A task runs no other task inside it, so one buffer per thread is enough; every
/// caller fills what it reads.
template <class T>
T* packed_scratch(std::size_t n) {
  thread_local hwy::AlignedFreeUniquePtr<T[]> buffer;
  thread_local std::size_t capacity = 0;
  if (capacity < n) {
    buffer = hwy::AllocateAligned<T>(n);
    capacity = n;
  }
  return buffer.get();
}

/// Loads (or stores) kRows x kVectors accumulators from (to) rows[i] + [0, width), where
/// width may be less than a whole tile (a channel count that is not a multiple of the
/// tile): the missing lanes read as zero and are not written.
template <std::size_t MR, std::size_t NV, class D, class T = hn::TFromD<D>>
HWY_INLINE void load_rows(D d, T* const* rows, std::size_t nrows, std::size_t width,
                          hn::Vec<D>* acc) {
  constexpr std::size_t L = hn::MaxLanes(D());
  for (std::size_t i = 0; i < MR; ++i) {
    for (std::size_t v = 0; v < NV; ++v) {
      if (i >= nrows || v * L >= width) {
        acc[i * NV + v] = hn::Zero(d);
      } else if ((v + 1) * L <= width) {
        acc[i * NV + v] = hn::LoadU(d, rows[i] + v * L);
      } else {
        acc[i * NV + v] = load_n(d, rows[i] + v * L, width - v * L);
      }
    }
  }
}

template <std::size_t MR, std::size_t NV, class D, class T = hn::TFromD<D>>
HWY_INLINE void store_rows(D d, const hn::Vec<D>* acc, T* const* rows, std::size_t nrows,
                           std::size_t width) {
  constexpr std::size_t L = hn::MaxLanes(D());
  for (std::size_t i = 0; i < nrows; ++i) {
    for (std::size_t v = 0; v < NV && v * L < width; ++v) {
      if ((v + 1) * L <= width) {
        hn::StoreU(acc[i * NV + v], d, rows[i] + v * L);
      } else {
        store_n(d, acc[i * NV + v], rows[i] + v * L, width - v * L);
      }
    }
  }
}

/// One vector of a ConvEpilogue: its scale and shift at output channels [k, k + count).
template <class D, class T = hn::TFromD<D>>
struct EpilogueLanes {
  hn::Vec<D> scale, shift;
  const T* residual;  // the epilogue's residual, or null
  bool relu;
  std::size_t count;

  EpilogueLanes(D d, const ConvEpilogue<T>& ep, std::size_t k, std::size_t n)
      : scale(load_n(d, ep.scale + k, n)), shift(load_n(d, ep.shift + k, n)), residual(ep.residual),
        relu(ep.relu), count(n) {}

  /// The epilogue of the outputs v at `offset` (an element index into y, of channel k).
  HWY_INLINE hn::Vec<D> operator()(D d, hn::Vec<D> v, std::size_t offset) const {
    v = hn::MulAdd(v, scale, shift);
    if (residual) v = hn::Add(v, load_n(d, residual + offset, count));
    return relu ? hn::Max(v, hn::Zero(d)) : v;
  }
};

}  // namespace odyssey::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // ODYSSEY_KERNELS_CONV_INL_H_
