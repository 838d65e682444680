// Convolution backward-weights on channels-last activations:
//   dw[k][c][r][s] += sum over (n, p, q) of dy[n][p][q][k] * x[n][p*stride-pad+r][q*stride-pad+s][c]
//   db[k] += sum over (n, p, q) of dy[n][p][q][k]
//
// For each tap this is a GEMM whose reduction runs over pixels. A register tile holds
// kRows input channels by kVectors vectors of output channels; per pixel it loads the
// kVectors dy vectors once and broadcasts kRows x values.
//
// Determinism: the output rows are cut into detail::weight_parts contiguous parts (a count
// that depends on the shape only). A task owns one output-channel group of one part, all
// input channels and taps, and sums its rows in order, in chunks of about kChunkPixels
// pixels, into that part's partial result; the partials are then added in part order. So
// the result is the same for any thread count. The chunk keeps dy (kChunkPixels x kGroup)
// and the x rows it needs in L1/L2 while every tap and channel tile of the task passes over it.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "conv_weights.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/cache_control.h>

#include <algorithm>
#include <cstddef>
#include <utility>

#include "common.h"
#include "conv-inl.h"
#include "odyssey/kernels/conv.h"
#include "weight_parts.h"
#include "winograd.h"

HWY_BEFORE_NAMESPACE();
namespace odyssey::kernels::HWY_NAMESPACE {

constexpr std::size_t kChunkPixels = 256;
/// On AVX-512 an AMD core's tile prefetches the x pixels of the row kAhead rows on, which sit
/// a pixel's stride apart (1-2 KB at layers 3 and 4) and so defeat its hardware prefetcher.
/// Measured (kernels_bench, alternating pairs, median ms): on Zen 5 AVX3 l2_proj 2.7 -> 2.1,
/// l3_proj 2.0 -> 1.7, l4_proj 1.6 -> 1.5, l4_down 15.4 -> 14.1; on AVX2 it made l4_down
/// slower (27-31 -> 32-41), and on the Xeons (models 207 and 167) every direct shape 2-15%
/// slower on AVX3 too (model 207: l3_down 23.3 -> 27.3, l4_proj 3.83 -> 4.17). Highway 1.0.3's
/// targets do not tell Zen 5 from a Xeon, so the choice is made at run time; it changes no
/// arithmetic.
constexpr bool kPrefetchTarget = HWY_TARGET <= HWY_AVX3;
constexpr std::size_t kAhead = 2;

/// Output gradients of one group over one chunk of rows: pixel i's channels at data + i*stride.
template <class T>
struct ChunkGradient {
  const T* data;
  std::size_t stride;
};
/// Pixel strides of dy from which weights_task copies a chunk's gradient (see there). AVX-512's
/// wide tile reads 4 lines per pixel, so conflicts set in later: measured on the model-167
/// Xeon, K = 256 gained 10-14% on AVX2 and nothing on AVX3, K = 512 17-19% and 2-7%.
constexpr std::size_t kPackGradientBytes = HWY_TARGET <= HWY_AVX3 ? 2048 : 1024;

template <class T>
struct WeightsJob {
  const Conv2dShape* sh;
  const T* x;
  const T* dy;
  std::size_t kp, rows_per_chunk;
  const T* xp;  // x packed for a 1x1 convolution (packs_x), or null
};

/// One channel tile (MR input channels, one output group) of one tap over one chunk of rows,
/// added to the part's result `part_acc` ([R*S][C][Kp]) or, for the part's first chunk
/// (`first`), stored there.
template <class Tile, std::size_t MR, bool kFull, class T>
HWY_INLINE void weights_tile(const WeightsJob<T>& j, const ChunkGradient<T>& dyc, T* part_acc, bool first,
                             std::size_t grp, std::size_t width, std::size_t rs, std::size_t c0, std::size_t row0,
                             std::size_t row1) {
  const typename Tile::D d;
  constexpr std::size_t NV = Tile::kVectors, G = Tile::kGroup, L = Tile::kLanes;
  const Conv2dShape& sh = *j.sh;
  const std::size_t P = sh.p(), Q = sh.q(), r = rs / sh.s, s = rs % sh.s;
  const std::ptrdiff_t pad = static_cast<std::ptrdiff_t>(sh.pad);
  // Columns q whose input column q*stride - pad + s lies inside [0, W).
  const std::ptrdiff_t lo_num = pad - static_cast<std::ptrdiff_t>(s);
  const std::size_t q_lo =
      lo_num > 0 ? detail::ceil_div(static_cast<std::size_t>(lo_num), sh.stride) : 0;
  const std::ptrdiff_t hi_num = static_cast<std::ptrdiff_t>(sh.w) - 1 + pad - static_cast<std::ptrdiff_t>(s);
  const std::size_t q_hi =
      hi_num < 0 ? 0 : std::min(Q, static_cast<std::size_t>(hi_num) / sh.stride + 1);
  if (q_lo >= q_hi && !first) return;  // nothing to add to this tile

  T* out = part_acc + (rs * sh.c + c0) * j.kp + grp * G;
  hn::Vec<decltype(d)> acc[MR * NV];
  for (std::size_t i = 0; i < MR; ++i)
    for (std::size_t v = 0; v < NV; ++v)
      acc[i * NV + v] = first ? hn::Zero(d) : hn::Load(d, out + i * j.kp + v * L);
  if (q_lo < q_hi) {
    const bool prefetch = kPrefetchTarget && detail::amd_cpu();
    const std::size_t iw = q_lo * sh.stride + s - sh.pad;
    // The first x pixel of output row p of image n at this tap and channel tile, or null
    // where the tap reads the padding above or below the image.
    const auto x_row = [&](std::size_t n, std::size_t p) -> const T* {
      const std::ptrdiff_t ih = static_cast<std::ptrdiff_t>(p * sh.stride + r) - pad;
      if (ih < 0 || ih >= static_cast<std::ptrdiff_t>(sh.h)) return nullptr;
      return j.x + ((n * sh.h + static_cast<std::size_t>(ih)) * sh.w + iw) * sh.c + c0;
    };
    // n and p step along with the row rather than a division per row, which rows of 4-8
    // pixels notice (model-167 Xeon AVX3, 5 pairs: l4_proj 2.97 -> 2.74 ms, stem 2.35 -> 2.20).
    std::size_t n = row0 / P, p = row0 % P;
    for (std::size_t row = row0; row < row1; ++row, p = p + 1 == P ? 0 : p + 1, n += p == 0) {
      const T* xr = x_row(n, p);
      if (!xr) continue;
      const T* dyr = dyc.data + ((row - row0) * Q + q_lo) * dyc.stride;
      if (prefetch && row + kAhead < row1) {
        if (const T* xa = x_row((row + kAhead) / P, (row + kAhead) % P))
          for (std::size_t q = q_lo; q < q_hi; ++q, xa += sh.stride * sh.c) hwy::Prefetch(xa);
      }
      tile_pixels<MR, NV, kFull>(d, xr, sh.stride * sh.c, dyr, dyc.stride, q_hi - q_lo, width, acc);
    }
  }
  for (std::size_t i = 0; i < MR; ++i)
    for (std::size_t v = 0; v < NV; ++v) hn::Store(acc[i * NV + v], d, out + i * j.kp + v * L);
}

template <class Tile, std::size_t MR, class T>
HWY_INLINE void weights_tile_any(const WeightsJob<T>& j, const ChunkGradient<T>& dyc, T* part_acc, bool first,
                                 std::size_t grp, std::size_t width, std::size_t rs, std::size_t c0,
                                 std::size_t row0, std::size_t row1) {
  if (width == Tile::kGroup) {
    weights_tile<Tile, MR, true>(j, dyc, part_acc, first, grp, width, rs, c0, row0, row1);
  } else {
    weights_tile<Tile, MR, false>(j, dyc, part_acc, first, grp, width, rs, c0, row0, row1);
  }
}

/// Channel tiles narrower than kRows (the last one when C is not a multiple) get their own
/// instantiation, so no tile reads past its channels.
template <class Tile, class T, std::size_t... I>
HWY_INLINE void weights_tile_rows(std::size_t mr, const WeightsJob<T>& j, const ChunkGradient<T>& dyc,
                                  T* part_acc, bool first, std::size_t grp, std::size_t width, std::size_t rs,
                                  std::size_t c0, std::size_t row0, std::size_t row1, std::index_sequence<I...>) {
  ((mr == I + 1 ? weights_tile_any<Tile, I + 1>(j, dyc, part_acc, first, grp, width, rs, c0, row0, row1)
                : void()),
   ...);
}

/// A 1x1 convolution without padding reads, per output pixel, the one x pixel at (p*stride,
/// q*stride): every pixel of a chunk is there, and they lie stride*C elements apart (512 B at
/// l2_proj, 2 KB at l4_proj), so the MR channels a tile broadcasts per pixel fall into a few
/// of L1's 64 sets and miss to L2 on every pass (perf annotate of l4_proj on Zen 3: most of
/// the samples on the FMAs that wait for those broadcasts). The call first copies every x
/// pixel it reads to [channel tile][pixels][MR] (zeros past C) in the workspace, and every
/// tile then reads MR * 4 bytes per pixel in sequence. A copy per task and chunk instead read
/// x once per 64 output channels and took 28% of l4_proj's samples (perf/README.md v15d). The
/// products and their order are the same.
/// Measured on Zen 3 (AVX2, perf/README.md v15b): l2_proj 5.51 -> 4.92 ms, l3_proj 5.09 ->
/// 4.35, l4_proj 5.75 -> 4.39. On Zen 5's AVX-512 (perf/README.md v20; 10 alternating pairs,
/// median ratio) l3_proj 1.96 -> 1.72 ms and l4_proj 1.81 -> 1.52, but l2_proj, whose pixels
/// lie 512 B apart (and which the AMD x prefetch of weights_tile sped up 1.3x, v11), 2.36 ->
/// 2.98. So AVX-512 targets pack where the pixels lie at least 1 KB apart; AVX2 always.
constexpr std::size_t kPackXMinStrideBytes = HWY_TARGET <= HWY_AVX3 ? 1024 : 0;
template <class T>
constexpr bool packs_x(const Conv2dShape& sh) {
  return sh.r == 1 && sh.s == 1 && sh.pad == 0 && sh.stride * sh.c * sizeof(T) >= kPackXMinStrideBytes;
}

/// x of output rows [row0, row1) of a 1x1 convolution to xp[tile][pixel][MR] (M pixels per
/// tile, pixel = row * Q + q, tile = channel / MR).
/// In runs of kPackRun pixels, tile by tile: pixel by pixel, each pixel's writes went to C / MR
/// places M * MR elements apart (the copy took 8% of l4_proj's samples), while tile by tile over
/// a whole block read every x pixel's lines on C / 16 separate passes.
template <std::size_t MR, class T>
void pack_x_rows(const Conv2dShape& sh, const T* x, std::size_t row0, std::size_t row1, T* HWY_RESTRICT xp) {
  constexpr std::size_t kPackRun = 16;
  const std::size_t P = sh.p(), Q = sh.q(), M = sh.n * P * Q, tiles = detail::ceil_div(sh.c, MR);
  const T* src[kPackRun];
  std::size_t count = 0, px0 = row0 * Q;
  auto flush = [&] {
    for (std::size_t t = 0; t < tiles; ++t) {
      const std::size_t c0 = t * MR, mr = std::min(MR, sh.c - c0);
      T* dst = xp + (t * M + px0) * MR;
      for (std::size_t i = 0; i < count; ++i, dst += MR) {
        if (mr == MR) {
          std::copy_n(src[i] + c0, MR, dst);
        } else {
          std::copy_n(src[i] + c0, mr, dst);
          std::fill(dst + mr, dst + MR, T(0));
        }
      }
    }
    px0 += count;
    count = 0;
  };
  std::size_t n = row0 / P, p = row0 % P;
  for (std::size_t row = row0; row < row1; ++row, p = p + 1 == P ? 0 : p + 1, n += p == 0) {
    const T* s = x + (n * sh.h + p * sh.stride) * sh.w * sh.c;
    for (std::size_t q = 0; q < Q; ++q, s += sh.stride * sh.c) {
      src[count++] = s;
      if (count == kPackRun) flush();
    }
  }
  if (count > 0) flush();
}

/// One channel tile (mr <= MR input channels, one output group) of a 1x1 convolution over a
/// chunk of npx pixels whose x is packed (xt: the tile's [pixels][MR]); as weights_tile.
template <class Tile, bool kFull, class T>
HWY_INLINE void weights_tile_packed(const T* xt, std::size_t npx, const ChunkGradient<T>& dyc, T* out,
                                    std::size_t kp, bool first, std::size_t mr, std::size_t width) {
  const typename Tile::D d;
  constexpr std::size_t MR = Tile::kRows, NV = Tile::kVectors, L = Tile::kLanes;
  hn::Vec<decltype(d)> acc[MR * NV];
  // Rows past mr multiply the packed zeros: computed, never loaded or stored.
  for (std::size_t i = 0; i < MR; ++i)
    for (std::size_t v = 0; v < NV; ++v)
      acc[i * NV + v] = first || i >= mr ? hn::Zero(d) : hn::Load(d, out + i * kp + v * L);
  tile_pixels<MR, NV, kFull>(d, xt, MR, dyc.data, dyc.stride, npx, width, acc);
  for (std::size_t i = 0; i < mr; ++i)
    for (std::size_t v = 0; v < NV; ++v) hn::Store(acc[i * NV + v], d, out + i * kp + v * L);
}

/// Output groups [grp_begin, grp_end), every input channel and tap, over output rows
/// [rows_begin, rows_end) (at least one), into `part_acc`.
template <class Tile, class T>
HWY_NOINLINE void weights_task(const WeightsJob<T>& j, T* part_acc, std::size_t grp_begin, std::size_t grp_end,
                               std::size_t rows_begin, std::size_t rows_end) {
  constexpr std::size_t MR = Tile::kRows, G = Tile::kGroup;
  const Conv2dShape& sh = *j.sh;
  const std::size_t RS = sh.r * sh.s, Q = sh.q();
  // Where a pixel's output-gradient channels lie 1 KB or more apart in y (K >= 256 floats),
  // the chunk's pixels fall into at most four of L1's 64 sets and evict each other between the
  // tiles that reuse them, so the chunk's gradient of the task's groups is copied to
  // [group][pixels][G] first (zeros past `width`, so every tile takes the full-width loads). Below
  // kPackGradientBytes the copy costs more than it saves (perf/README.md v12). The products
  // and their order are the same either way.
  const bool pack = sh.k * sizeof(T) >= kPackGradientBytes;
  T* packed = pack ? packed_scratch<T>(j.rows_per_chunk * Q * G * (grp_end - grp_begin)) : nullptr;
  const std::size_t x_tiles = detail::ceil_div(sh.c, MR), M = sh.n * sh.p() * Q;
  // The groups take turns within each chunk, so the chunk's x, read by every group, is still
  // in L2 when the next group reads it.
  for (std::size_t row0 = rows_begin; row0 < rows_end; row0 += j.rows_per_chunk) {
    const std::size_t row1 = std::min(rows_end, row0 + j.rows_per_chunk), npx = (row1 - row0) * Q;
    if (pack) {
      // Every group of the task at once, to [group][pixels][G], by vectors: a pixel's channels
      // of the task are contiguous lines, fetched together, and the pixels kAhead on are
      // prefetched (they lie K floats apart, 2 KB at l4_proj, so every other one starts a new
      // page, where the hardware's stride prefetch stops). A copy per group waited on one line
      // per pixel at a time: 11% of l4_proj's task samples. (A std::copy_n per pixel called
      // memmove for 64 bytes: 5% of them.)
      const typename Tile::D d;
      constexpr std::size_t L = Tile::kLanes, kAhead = 4, kLine = 64 / sizeof(T);
      const T* chunk = j.dy + row0 * Q * sh.k;
      const std::size_t k_begin = grp_begin * G, k_end = std::min(sh.k, grp_end * G);
      for (std::size_t px = 0; px < npx; ++px) {
        if (px + kAhead < npx)
          for (std::size_t k = k_begin; k < k_end; k += kLine) hwy::Prefetch(chunk + (px + kAhead) * sh.k + k);
        for (std::size_t grp = grp_begin; grp < grp_end; ++grp) {
          const std::size_t width = std::min(G, sh.k - grp * G);
          const T* src = chunk + px * sh.k + grp * G;
          T* dst = packed + ((grp - grp_begin) * npx + px) * G;
          HWY_UNROLL(Tile::kVectors)
          for (std::size_t v = 0; v < Tile::kVectors; ++v) {
            const std::size_t off = v * L;
            hn::Store(off < width ? load_n(d, src + off, width - off) : hn::Zero(d), d, dst + off);
          }
        }
      }
    }
    for (std::size_t grp = grp_begin; grp < grp_end; ++grp) {
      const std::size_t width = std::min(G, sh.k - grp * G);
      ChunkGradient<T> dyc{j.dy + row0 * Q * sh.k + grp * G, sh.k};
      if (pack) dyc = {packed + (grp - grp_begin) * npx * G, G};
      const std::size_t tile_width = pack ? G : width;
      if (j.xp) {
        for (std::size_t t = 0; t < x_tiles; ++t) {
          T* out = part_acc + t * MR * j.kp + grp * G;
          const T* xt = j.xp + (t * M + row0 * Q) * MR;
          const std::size_t mr = std::min(MR, sh.c - t * MR);
          if (tile_width == G) {
            weights_tile_packed<Tile, true>(xt, npx, dyc, out, j.kp, row0 == rows_begin, mr, G);
          } else {
            weights_tile_packed<Tile, false>(xt, npx, dyc, out, j.kp, row0 == rows_begin, mr, tile_width);
          }
        }
        continue;
      }
      for (std::size_t rs = 0; rs < RS; ++rs)
        for (std::size_t c0 = 0; c0 < sh.c; c0 += MR)
          weights_tile_rows<Tile>(std::min(MR, sh.c - c0), j, dyc, part_acc, row0 == rows_begin, grp, tile_width,
                                  rs, c0, row0, row1, std::make_index_sequence<MR>());
    }
  }
}

template <class T, class Tile>
void conv_backward_weights(const Conv2dShape& sh, const T* x, const T* dy, T* dw, T* db, T* ws) {
  constexpr std::size_t G = Tile::kGroup;
  const std::size_t groups = detail::ceil_div(sh.k, G), kp = groups * G, RS = sh.r * sh.s;
  const std::size_t rows = sh.n * sh.p(), parts = detail::conv_weight_parts(sh);
  const std::size_t stride = detail::conv_weight_partial_size(sh);  // between the parts' results
  T* xp = packs_x<T>(sh) ? ws + parts * stride : nullptr;  // after the parts' results
  if (xp) {
    constexpr std::size_t kPackRows = 64;
    detail::parallel_items(detail::ceil_div(rows, kPackRows), [&](std::size_t b) {
      pack_x_rows<Tile::kRows>(sh, x, b * kPackRows, std::min(rows, b * kPackRows + kPackRows), xp);
    });
  }
  const WeightsJob<T> job{&sh, x, dy, kp, std::max<std::size_t>(1, kChunkPixels / sh.q()), xp};
  // A task owns 64 output channels on every target (weight_parts counts tasks that way): one
  // register group on AVX-512, four on AVX2, which then share each chunk's x. With a task per
  // 16-channel group AVX2 streamed x from memory K/16 times (perf/README.md v13c).
  constexpr std::size_t kTaskGroups = G >= 64 ? 1 : 64 / G;
  const std::size_t task_groups = detail::ceil_div(groups, kTaskGroups);
  detail::parallel_items(task_groups * parts, [&](std::size_t item) {
    const std::size_t tg = item % task_groups, part = item / task_groups;
    weights_task<Tile>(job, ws + part * stride, tg * kTaskGroups, std::min(groups, (tg + 1) * kTaskGroups),
                       detail::part_begin(rows, part, parts), detail::part_begin(rows, part + 1, parts));
  });
  // The parts' results ([R*S][C][Kp] each) added in part order, then dw (PyTorch's
  // [K][C][R][S]) += their sum.
  detail::sum_parts(ws, RS * sh.c * kp, parts, stride);
  // Each task reads one line of 16 output channels per (c, rs) and adds it into 16 rows of dw,
  // each written in order. With the loop over k outermost the shape was reloaded through the
  // closure for every element (5% of l4_proj's samples).
  const std::size_t C = sh.c, K = sh.k;
  detail::parallel_items(detail::ceil_div(K, 16), [dw, ws, C, K, RS, kp](std::size_t kb) {
    const std::size_t k0 = kb * 16, kn = std::min<std::size_t>(16, K - k0);
    T* HWY_RESTRICT out = dw + k0 * C * RS;
    const T* HWY_RESTRICT in = ws + k0;
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t rs = 0; rs < RS; ++rs) {
        const T* src = in + (rs * C + c) * kp;
        for (std::size_t j = 0; j < kn; ++j) out[(j * C + c) * RS + rs] += src[j];
      }
  });
  if (db) detail::add_bias_gradient(dy, sh.n * sh.p() * sh.q(), sh.k, db);
}

// The wide tile only: a tall tile's narrower output groups mean more tasks, each streaming
// all of x and dy (layer-4 downsampling measured 31.7 ms tall against 19.9 wide).
void conv_backward_weights_f32(const Conv2dShape& sh, const float* x, const float* dy, float* dw,
                               float* db, float* ws) {
  conv_backward_weights<float, ConvTile<float>>(sh, x, dy, dw, db, ws);
}
void conv_backward_weights_f64(const Conv2dShape& sh, const double* x, const double* dy,
                               double* dw, double* db, double* ws) {
  conv_backward_weights<double, ConvTile<double>>(sh, x, dy, dw, db, ws);
}

}  // namespace odyssey::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <stdexcept>

namespace odyssey::kernels {

HWY_EXPORT(conv_backward_weights_f32);
HWY_EXPORT(conv_backward_weights_f64);

namespace {
void check(const Conv2dShape& sh) {
  if (sh.n == 0 || sh.c == 0 || sh.k == 0 || sh.stride == 0 || sh.h + 2 * sh.pad < sh.r ||
      sh.w + 2 * sh.pad < sh.s)
    throw std::invalid_argument("conv2d_backward_weights: invalid shape");
}
}  // namespace

void conv2d_backward_weights(const Conv2dShape& sh, const float* x, const float* dy, float* dw,
                             float* db, float* ws, ConvAlgorithm algorithm) {
  check(sh);
  if (const std::size_t m = detail::winograd_weight_tile(sh, algorithm))
    return detail::winograd_backward_weights(sh, m, x, dy, dw, db, ws);
  HWY_DYNAMIC_DISPATCH(conv_backward_weights_f32)(sh, x, dy, dw, db, ws);
}
void conv2d_backward_weights(const Conv2dShape& sh, const double* x, const double* dy,
                             double* dw, double* db, double* ws, ConvAlgorithm algorithm) {
  check(sh);
  if (const std::size_t m = detail::winograd_weight_tile(sh, algorithm))
    return detail::winograd_backward_weights(sh, m, x, dy, dw, db, ws);
  HWY_DYNAMIC_DISPATCH(conv_backward_weights_f64)(sh, x, dy, dw, db, ws);
}

}  // namespace odyssey::kernels
#endif  // HWY_ONCE
