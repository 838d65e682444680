// Convolution forward and backward-data on channels-last activations.
//
// Both are "gather" implicit GEMMs: every output pixel sums, over a list of kernel taps, a
// row of source channels times a packed weight slice. Forward: source x, taps (r, s),
// output y. Backward-data: source dy, output dx; for stride > 1 the dx pixels are split
// into stride x stride phases (ih % stride, iw % stride), and each phase gathers only the
// taps that reach it, so no multiply is spent on the zeros a transposed convolution would
// insert between dy pixels.
//
// Loop nest per block of kBlockTiles * kRows output pixels (a parallel task): output-channel
// group (kGroup channels) > source-channel chunk (its packed weights, R*S*chunk*kGroup
// values, at most the 1 MiB L2) > register tiles of kRows pixels > taps > channels.
// Measured at ResNet-18's 3x3 shapes (batch 128, 2 threads, Zen 5): slabs of 16/64/256/512
// KiB/unlimited gave 243-266/281-313/328-364/345-390/341-386 GFLOP/s, so the chunk only
// guards very wide layers; the accumulators reloaded per chunk cost more than L2 misses.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "conv.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "common.h"
#include "conv-inl.h"
#include "odyssey/kernels/conv.h"
#include "weight_parts.h"
#include "winograd.h"

HWY_BEFORE_NAMESPACE();
namespace odyssey::kernels::HWY_NAMESPACE {

constexpr std::size_t kBlockTiles = 16;       // register tiles per parallel task
constexpr std::size_t kSlabBytes = 1024 << 10;  // packed weights per channel chunk (the L2 size)
/// A dx of at least this many bytes gets the zeros of the phases no tap reaches (three of four
/// for a 1x1 stride-2 kernel) by streaming stores, which skip the read-for-ownership of every
/// line a plain store pays: non-accumulating backward-data at batch 128, l2_proj 6.65 -> 4.31
/// ms, l3_proj 4.22 -> 3.16, l4_proj 3.39 -> 2.87 (Zen 4, AVX3; perf/README.md v13a). A smaller
/// dx is likely still in cache when the next layer reads it, so it keeps the plain stores.
constexpr std::size_t kStreamZerosBytes = 8 << 20;

/// A gather convolution: out[pixel][j] = sum_taps sum_c src_row(pixel, tap)[c] * wp[tap][c][j].
template <class T>
struct Gather {
  const T* src;            // [images][src_h][src_w][len]
  std::size_t src_h, src_w, len;
  const T* wp;             // packed [groups][taps_total][len][kGroup]
  std::size_t taps_total;  // taps per group in wp
  T* out;                  // rows of out_width channels
  std::size_t out_width, groups;
  const T* bias;           // packed [groups * kGroup] or null
  const T* zero;           // len zeros: the row of a tap that falls in the padding
  bool accumulate;         // add to out instead of overwriting it
  std::size_t chunk;       // source channels per weight slab
  const ConvEpilogue<T>* ep = nullptr;  // applied as the last chunk is stored (forward only)
  bool stream_zeros = false;  // pixels no tap reaches get their zeros by streaming stores
};

/// Where pixel m of a block reads and writes: its source image, the source coordinates of
/// tap offset (0, 0), and its output row.
template <class T>
struct PixelRef {
  const T* image;
  std::ptrdiff_t u0, v0;
  T* out;
};

/// The taps one set of pixels uses: source offsets (du, dv) and the packed-weight tap.
struct TapList {
  std::ptrdiff_t du[64], dv[64];
  std::size_t wtap[64];
  std::size_t count = 0;
};

/// Zeros in output groups [grp_begin, grp_end) of the npx pixels, written past the caches
/// where the vectors are aligned (a backward-data phase no tap reaches, in a large dx).
template <class Tile, class T>
HWY_INLINE void stream_zeros(const Gather<T>& g, const PixelRef<T>* px, std::size_t npx, std::size_t grp_begin,
                             std::size_t grp_end) {
  const typename Tile::D d;
  constexpr std::size_t L = Tile::kLanes, G = Tile::kGroup;
  const auto z = hn::Zero(d);
  const std::size_t begin = grp_begin * G, end = std::min(g.out_width, grp_end * G);
  for (std::size_t i = 0; i < npx; ++i) {
    T* row = px[i].out;
    std::size_t c = begin;
    for (; c + L <= end; c += L) {
      if (reinterpret_cast<std::uintptr_t>(row + c) % (L * sizeof(T)) == 0) hn::Stream(z, d, row + c);
      else hn::StoreU(z, d, row + c);
    }
    if (c < end) store_n(d, z, row + c, end - c);
  }
  hwy::FlushStream();
}

/// A register tile's accumulators before its first chunk: output group grp's bias, or zeros.
template <class Tile, class T, class V>
HWY_INLINE void start_tile(const Gather<T>& g, std::size_t grp, V* acc) {
  const typename Tile::D d;
  constexpr std::size_t MR = Tile::kRows, NV = Tile::kVectors, G = Tile::kGroup, L = Tile::kLanes;
  if (g.bias) {
    for (std::size_t v = 0; v < NV; ++v) {
      const auto b = hn::Load(d, g.bias + grp * G + v * L);
      for (std::size_t i = 0; i < MR; ++i) acc[i * NV + v] = b;
    }
  } else {
    for (std::size_t i = 0; i < MR * NV; ++i) acc[i] = hn::Zero(d);
  }
}

/// Stores a register tile's nrows output rows of group grp, after the epilogue when `last`
/// (its reduction is complete) and the call has one.
template <class Tile, class T, class V>
HWY_INLINE void finish_tile(const Gather<T>& g, std::size_t grp, std::size_t width, T* const* orow,
                            std::size_t nrows, bool last, V* acc) {
  const typename Tile::D d;
  constexpr std::size_t MR = Tile::kRows, NV = Tile::kVectors, G = Tile::kGroup, L = Tile::kLanes;
  if (g.ep && last) {
    for (std::size_t v = 0; v < NV && v * L < width; ++v) {
      const EpilogueLanes<decltype(d)> ep(d, *g.ep, grp * G + v * L, std::min(L, width - v * L));
      for (std::size_t i = 0; i < nrows; ++i)
        acc[i * NV + v] = ep(d, acc[i * NV + v], static_cast<std::size_t>(orow[i] - g.out) + v * L);
    }
  }
  store_rows<MR, NV>(d, acc, orow, nrows, width);
}

/// A forward convolution over fewer channels than this (the stem: 3 channels, 1 for
/// Fashion-MNIST) gathers each pixel's R*S*C patch values into one row first.
constexpr std::size_t kPatchRowChannels = 8;

/// The forward pass of a convolution over few channels: per tap, the gather kernel would
/// reduce over only C values, with a register tile's row pointers and padding checks redone
/// for each of the R*S taps. The block's pixels first get their patches copied to rows of
/// R*S*C values ([tap][c], zeros where a tap falls in the padding), in the packed weights'
/// [tap][c] order, so each register tile runs one reduction of R*S*C.
template <class Tile, class T>
HWY_NOINLINE void gather_block_patches(const Gather<T>& g, std::size_t R, std::size_t S, const PixelRef<T>* px,
                                       std::size_t npx, std::size_t grp_begin, std::size_t grp_end) {
  const typename Tile::D d;
  constexpr std::size_t MR = Tile::kRows, NV = Tile::kVectors, G = Tile::kGroup, L = Tile::kLanes;
  const std::ptrdiff_t H = static_cast<std::ptrdiff_t>(g.src_h), W = static_cast<std::ptrdiff_t>(g.src_w);
  const std::ptrdiff_t SS = static_cast<std::ptrdiff_t>(S);
  const std::size_t C = g.len, seg = S * C, len = R * seg;
  T* patches = packed_scratch<T>(npx * len);
  for (std::size_t i = 0; i < npx; ++i) {
    const PixelRef<T>& p = px[i];
    const bool inside_cols = p.v0 >= 0 && p.v0 + SS <= W;
    for (std::size_t r = 0; r < R; ++r) {
      // Tap row r: S*C values, contiguous in x where every column is inside the image.
      T* HWY_RESTRICT dst = patches + i * len + r * seg;
      const std::ptrdiff_t u = p.u0 + static_cast<std::ptrdiff_t>(r);
      if (u < 0 || u >= H) {
        std::fill_n(dst, seg, T(0));
        continue;
      }
      if (inside_cols) {
        const T* HWY_RESTRICT src = p.image + static_cast<std::size_t>(u * W + p.v0) * C;
        std::size_t j = 0;
        for (; j + L <= seg; j += L) hn::StoreU(hn::LoadU(d, src + j), d, dst + j);
        for (; j < seg; ++j) dst[j] = src[j];
        continue;
      }
      for (std::ptrdiff_t s = 0; s < SS; ++s, dst += C) {
        const std::ptrdiff_t v = p.v0 + s;
        if (v >= 0 && v < W) {
          std::copy_n(p.image + static_cast<std::size_t>(u * W + v) * C, C, dst);
        } else {
          std::fill_n(dst, C, T(0));
        }
      }
    }
  }
  for (std::size_t grp = grp_begin; grp < grp_end; ++grp) {
    const std::size_t width = std::min(G, g.out_width - grp * G);
    for (std::size_t t = 0; t < npx; t += MR) {
      const std::size_t nrows = std::min(MR, npx - t);
      T* orow[MR];
      const T* rows[MR];
      // Rows past nrows repeat the last pixel: computed, never stored.
      for (std::size_t i = 0; i < MR; ++i) {
        orow[i] = px[t + std::min(i, nrows - 1)].out + grp * G;
        rows[i] = patches + (t + std::min(i, nrows - 1)) * len;
      }
      hn::Vec<decltype(d)> acc[MR * NV];
      start_tile<Tile>(g, grp, acc);
      tile_rows<MR, NV>(d, rows, g.wp + grp * g.taps_total * C * G, len, acc);
      finish_tile<Tile>(g, grp, width, orow, nrows, true, acc);
    }
  }
}

template <class Tile, class T>
HWY_NOINLINE void gather_block(const Gather<T>& g, const TapList& taps, const PixelRef<T>* px,
                               std::size_t npx, std::size_t grp_begin, std::size_t grp_end) {
  const typename Tile::D d;
  constexpr std::size_t MR = Tile::kRows, NV = Tile::kVectors, G = Tile::kGroup,
                        L = Tile::kLanes;
  const std::ptrdiff_t H = static_cast<std::ptrdiff_t>(g.src_h),
                       W = static_cast<std::ptrdiff_t>(g.src_w);
  // A backward-data phase no tap reaches (a 1x1 kernel with stride 2 reaches one phase of
  // four) adds nothing: with `accumulate` its pixels stay as they are, otherwise they are
  // written as zeros (streamed in a large dx, below otherwise).
  if (taps.count == 0 && g.accumulate) return;
  if (taps.count == 0 && g.stream_zeros) return stream_zeros<Tile>(g, px, npx, grp_begin, grp_end);
  for (std::size_t grp = grp_begin; grp < grp_end; ++grp) {
    const std::size_t width = std::min(G, g.out_width - grp * G);
    for (std::size_t c0 = 0; c0 < g.len; c0 += g.chunk) {
      const std::size_t clen = std::min(g.chunk, g.len - c0);
      for (std::size_t t = 0; t < npx; t += MR) {
        const std::size_t nrows = std::min(MR, npx - t);
        T* orow[MR];
        for (std::size_t i = 0; i < MR; ++i) orow[i] = px[t + std::min(i, nrows - 1)].out + grp * G;
        hn::Vec<decltype(d)> acc[MR * NV];
        if (c0 > 0 || g.accumulate) {
          load_rows<MR, NV>(d, orow, nrows, width, acc);
        } else {
          start_tile<Tile>(g, grp, acc);
        }
        for (std::size_t k = 0; k < taps.count; ++k) {
          const T* rows[MR];
          for (std::size_t i = 0; i < MR; ++i) {
            rows[i] = g.zero;
            if (i < nrows) {
              const PixelRef<T>& p = px[t + i];
              const std::ptrdiff_t u = p.u0 + taps.du[k], v = p.v0 + taps.dv[k];
              if (u >= 0 && u < H && v >= 0 && v < W)
                rows[i] = p.image + (static_cast<std::size_t>(u * W + v)) * g.len + c0;
            }
          }
          tile_rows<MR, NV>(d, rows, g.wp + ((grp * g.taps_total + taps.wtap[k]) * g.len + c0) * G,
                            clen, acc);
        }
        finish_tile<Tile>(g, grp, width, orow, nrows, c0 + clen == g.len, acc);
      }
    }
  }
}

/// wp[grp][tap][c][j] = w[o * o_step + c * c_step + tap] for out channel o = grp*G + j (zero
/// past `outs`). Strides rather than an accessor, and loops along the contiguous axis: an
/// accessor lambda over the shape, element by element, took about 3.5% of l4_proj's forward
/// and backward-data time on Zen 3 (perf record), now 1.2% and 1.1%.
template <class Tile, class T>
void pack_weights(std::size_t outs, std::size_t len, std::size_t taps, T* wp, const T* w, std::size_t o_step,
                  std::size_t c_step) {
  constexpr std::size_t G = Tile::kGroup;
  const std::size_t groups = detail::ceil_div(outs, G);
  detail::parallel_items(groups * taps, [=](std::size_t item) {
    const std::size_t grp = item / taps, tap = item % taps, width = std::min(G, outs - grp * G);
    T* HWY_RESTRICT dst = wp + item * len * G;
    const T* HWY_RESTRICT src = w + grp * G * o_step + tap;
    // Along whichever of w's axes is contiguous (backward-data's j, forward's c in a 1x1).
    if (o_step <= c_step) {
      for (std::size_t c = 0; c < len; ++c) {
        const T* HWY_RESTRICT row = src + c * c_step;
        T* HWY_RESTRICT out = dst + c * G;
        if (o_step == 1) {
          std::copy_n(row, width, out);
        } else {
          for (std::size_t j = 0; j < width; ++j) out[j] = row[j * o_step];
        }
        std::fill(out + width, out + G, T(0));
      }
    } else {
      for (std::size_t j = 0; j < width; ++j) {
        const T* HWY_RESTRICT col = src + j * o_step;
        for (std::size_t c = 0; c < len; ++c) dst[c * G + j] = col[c * c_step];
      }
      for (std::size_t c = 0; c < len; ++c) std::fill(dst + c * G + width, dst + (c + 1) * G, T(0));
    }
  });
}

/// Tasks per pixel block: the output-channel groups are cut into this many contiguous
/// ranges so that a call has at least kMinTasks tasks. Layer 4's 2048 output pixels make
/// only 11 blocks, which two threads split 6 : 5 (a 1.13x longer critical path). Every
/// output is computed by the same operations in any split, and the split depends on the
/// shape only.
constexpr std::size_t kMinTasks = 64;
constexpr std::size_t group_splits(std::size_t blocks, std::size_t groups) {
  return std::min(groups, detail::ceil_div(kMinTasks, blocks));
}

template <class Tile>
std::size_t chunk_for(std::size_t len, std::size_t taps) {
  const std::size_t max_chunk =
      std::max<std::size_t>(16, kSlabBytes / (taps * Tile::kGroup * sizeof(typename Tile::value_type)));
  const std::size_t chunks = detail::ceil_div(len, max_chunk);
  return detail::ceil_div(len, chunks);
}

/// The forward pass's packed weights of w [K][C][R][S] (taps in [tap] order).
template <class Tile, class T>
void pack_forward_weights(const Conv2dShape& sh, const T* w, T* wp) {
  const std::size_t RS = sh.r * sh.s;
  pack_weights<Tile>(sh.k, sh.c, RS, wp, w, sh.c * RS, RS);  // w[k][c][tap]
}

/// The forward pass; `prepared`: the packed weights (pack_forward_weights), or null to pack
/// w into the workspace.
template <class T, class Tile>
void conv_forward(const Conv2dShape& sh, const T* x, const T* w, const T* bias, T* y, T* ws,
                  const ConvEpilogue<T>* ep, const T* prepared) {
  constexpr std::size_t G = Tile::kGroup, MR = Tile::kRows;
  const std::size_t RS = sh.r * sh.s, P = sh.p(), Q = sh.q(), groups = detail::ceil_div(sh.k, G);
  T* wp = ws;
  T* zero = wp + groups * G * RS * sh.c;
  T* bias_p = zero + detail::round_up(sh.c, 16);
  std::fill(zero, zero + sh.c, T(0));
  if (!prepared) pack_forward_weights<Tile>(sh, w, wp);
  if (bias) {
    std::fill(bias_p, bias_p + groups * G, T(0));
    std::copy(bias, bias + sh.k, bias_p);
  }
  TapList taps;
  for (std::size_t r = 0; r < sh.r; ++r)
    for (std::size_t s = 0; s < sh.s; ++s) {
      taps.du[taps.count] = static_cast<std::ptrdiff_t>(r);
      taps.dv[taps.count] = static_cast<std::ptrdiff_t>(s);
      taps.wtap[taps.count++] = r * sh.s + s;
    }
  const Gather<T> g{x, sh.h, sh.w, sh.c, prepared ? prepared : wp, RS, y, sh.k, groups, bias ? bias_p : nullptr,
                    zero, false, chunk_for<Tile>(sh.c, RS), ep};
  const std::size_t M = sh.n * P * Q, block = kBlockTiles * MR, blocks = detail::ceil_div(M, block);
  const std::size_t splits = group_splits(blocks, groups);
  // Every tap, in the packed weights' order, and one chunk: a patch row lines up with them.
  const bool patch_rows = sh.c < kPatchRowChannels && g.chunk >= sh.c;
  detail::parallel_items(blocks * splits, [&](std::size_t item) {
    const std::size_t b = item / splits, split = item % splits;
    PixelRef<T> px[kBlockTiles * MR];
    const std::size_t m0 = b * block, npx = std::min(block, M - m0);
    for (std::size_t i = 0; i < npx; ++i) {
      const std::size_t m = m0 + i, n = m / (P * Q), pq = m % (P * Q);
      px[i] = {x + n * sh.h * sh.w * sh.c,
               static_cast<std::ptrdiff_t>((pq / Q) * sh.stride) - static_cast<std::ptrdiff_t>(sh.pad),
               static_cast<std::ptrdiff_t>((pq % Q) * sh.stride) - static_cast<std::ptrdiff_t>(sh.pad),
               y + m * sh.k};
    }
    if (patch_rows) {
      gather_block_patches<Tile>(g, sh.r, sh.s, px, npx, detail::part_begin(groups, split, splits),
                                 detail::part_begin(groups, split + 1, splits));
    } else {
      gather_block<Tile>(g, taps, px, npx, detail::part_begin(groups, split, splits),
                         detail::part_begin(groups, split + 1, splits));
    }
  });
}

template <class T, class Tile>
void conv_backward_data(const Conv2dShape& sh, const T* dy, const T* w, T* dx, T* ws,
                        bool accumulate) {
  constexpr std::size_t G = Tile::kGroup, MR = Tile::kRows;
  const std::size_t RS = sh.r * sh.s, P = sh.p(), Q = sh.q(), groups = detail::ceil_div(sh.c, G);
  const std::ptrdiff_t stride = static_cast<std::ptrdiff_t>(sh.stride),
                       pad = static_cast<std::ptrdiff_t>(sh.pad);
  T* wp = ws;
  T* zero = wp + groups * G * RS * sh.k;
  std::fill(zero, zero + sh.k, T(0));
  // Transposed weights: output channels of this pass are the input channels c.
  pack_weights<Tile>(sh.c, sh.k, RS, wp, w, RS, sh.c * RS);
  const Gather<T> g{dy, P, Q, sh.k, wp, RS, dx, sh.c, groups, nullptr, zero, accumulate,
                    chunk_for<Tile>(sh.k, RS), nullptr, sh.x_size() * sizeof(T) >= kStreamZerosBytes};

  // Phase (ph, pw) holds the dx pixels ih = ph + a*stride, iw = pw + b*stride. Tap r reaches
  // it when (ph + pad - r) is a multiple of the stride, from dy row oh = a + (ph + pad - r)/stride.
  // Phases are numbered ph * stride + pw; each is cut into blocks of `block` pixels.
  const std::size_t block = kBlockTiles * MR, nphases = sh.stride * sh.stride;
  auto phase_extent = [&](std::size_t phase, std::size_t& rows, std::size_t& cols) {
    const std::size_t ph = phase / sh.stride, pw = phase % sh.stride;
    rows = ph < sh.h ? detail::ceil_div(sh.h - ph, sh.stride) : 0;
    cols = pw < sh.w ? detail::ceil_div(sh.w - pw, sh.stride) : 0;
  };
  std::size_t total_blocks = 0;
  for (std::size_t f = 0; f < nphases; ++f) {
    std::size_t rows, cols;
    phase_extent(f, rows, cols);
    total_blocks += detail::ceil_div(sh.n * rows * cols, block);
  }
  const std::size_t splits = group_splits(total_blocks, groups);
  detail::parallel_items(total_blocks * splits, [&](std::size_t item) {
    std::size_t b = item / splits, phase = 0, rows = 0, cols = 0;
    const std::size_t split = item % splits;
    for (;; ++phase) {
      phase_extent(phase, rows, cols);
      const std::size_t blocks = detail::ceil_div(sh.n * rows * cols, block);
      if (b < blocks) break;
      b -= blocks;
    }
    const std::size_t ph = phase / sh.stride, pw = phase % sh.stride;
    TapList taps;
    for (std::size_t r = 0; r < sh.r; ++r) {
      const std::ptrdiff_t er = static_cast<std::ptrdiff_t>(ph) + pad - static_cast<std::ptrdiff_t>(r);
      if (((er % stride) + stride) % stride != 0) continue;
      for (std::size_t s = 0; s < sh.s; ++s) {
        const std::ptrdiff_t es = static_cast<std::ptrdiff_t>(pw) + pad - static_cast<std::ptrdiff_t>(s);
        if (((es % stride) + stride) % stride != 0) continue;
        taps.du[taps.count] = er / stride;  // exact division
        taps.dv[taps.count] = es / stride;
        taps.wtap[taps.count++] = r * sh.s + s;
      }
    }
    PixelRef<T> px[kBlockTiles * MR];
    const std::size_t per_image = rows * cols, total = sh.n * per_image;
    const std::size_t m0 = b * block, npx = std::min(block, total - m0);
    for (std::size_t i = 0; i < npx; ++i) {
      const std::size_t m = m0 + i, n = m / per_image, ab = m % per_image;
      const std::size_t a = ab / cols, bb = ab % cols;
      const std::size_t ih = ph + a * sh.stride, iw = pw + bb * sh.stride;
      px[i] = {dy + n * P * Q * sh.k, static_cast<std::ptrdiff_t>(a), static_cast<std::ptrdiff_t>(bb),
               dx + ((n * sh.h + ih) * sh.w + iw) * sh.c};
    }
    gather_block<Tile>(g, taps, px, npx, detail::part_begin(groups, split, splits),
                       detail::part_begin(groups, split + 1, splits));
  });
}

template <class T>
void conv_forward_any(const Conv2dShape& sh, const T* x, const T* w, const T* b, T* y, T* ws,
                      const ConvEpilogue<T>* ep, const T* prepared) {
  if (use_tall_tile(sh.c)) conv_forward<T, ConvTile<T, true>>(sh, x, w, b, y, ws, ep, prepared);
  else conv_forward<T, ConvTile<T, false>>(sh, x, w, b, y, ws, ep, prepared);
}
template <class T>
void pack_forward_weights_any(const Conv2dShape& sh, const T* w, T* wp) {
  if (use_tall_tile(sh.c)) pack_forward_weights<ConvTile<T, true>>(sh, w, wp);
  else pack_forward_weights<ConvTile<T, false>>(sh, w, wp);
}
template <class T>
void conv_backward_data_any(const Conv2dShape& sh, const T* dy, const T* w, T* dx, T* ws, bool acc) {
  if (use_tall_tile(sh.k)) conv_backward_data<T, ConvTile<T, true>>(sh, dy, w, dx, ws, acc);
  else conv_backward_data<T, ConvTile<T, false>>(sh, dy, w, dx, ws, acc);
}

void conv_forward_f32(const Conv2dShape& sh, const float* x, const float* w, const float* b,
                      float* y, float* ws, const ConvEpilogue<float>* ep, const float* prepared) {
  conv_forward_any(sh, x, w, b, y, ws, ep, prepared);
}
void conv_forward_f64(const Conv2dShape& sh, const double* x, const double* w, const double* b,
                      double* y, double* ws, const ConvEpilogue<double>* ep, const double* prepared) {
  conv_forward_any(sh, x, w, b, y, ws, ep, prepared);
}
void pack_forward_weights_f32(const Conv2dShape& sh, const float* w, float* wp) { pack_forward_weights_any(sh, w, wp); }
void pack_forward_weights_f64(const Conv2dShape& sh, const double* w, double* wp) {
  pack_forward_weights_any(sh, w, wp);
}
/// The target whose layout prepared weights take here (their header records it).
std::uint64_t prepared_weights_target() { return static_cast<std::uint64_t>(HWY_TARGET); }
void conv_backward_data_f32(const Conv2dShape& sh, const float* dy, const float* w, float* dx,
                            float* ws, bool acc) {
  conv_backward_data_any(sh, dy, w, dx, ws, acc);
}
void conv_backward_data_f64(const Conv2dShape& sh, const double* dy, const double* w,
                            double* dx, double* ws, bool acc) {
  conv_backward_data_any(sh, dy, w, dx, ws, acc);
}

/// The tiles x channels from which the automatic weight gradient takes F(4x4, 3x3) on this
/// target (winograd.h).
std::size_t winograd_weight_work4() {
  return HWY_TARGET <= HWY_AVX3 ? detail::kWinogradWeightWork4 : detail::kWinogradWeightWork4Avx2;
}

}  // namespace odyssey::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <array>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace odyssey::kernels {

HWY_EXPORT(conv_forward_f32);
HWY_EXPORT(conv_forward_f64);
HWY_EXPORT(pack_forward_weights_f32);
HWY_EXPORT(pack_forward_weights_f64);
HWY_EXPORT(prepared_weights_target);
HWY_EXPORT(conv_backward_data_f32);
HWY_EXPORT(conv_backward_data_f64);
HWY_EXPORT(winograd_weight_work4);

namespace {
void check(const Conv2dShape& sh) {
  if (sh.n == 0 || sh.c == 0 || sh.k == 0 || sh.r == 0 || sh.s == 0 || sh.stride == 0 ||
      sh.h + 2 * sh.pad < sh.r || sh.w + 2 * sh.pad < sh.s || sh.r > 64 / sh.s)
    throw std::invalid_argument("conv2d: invalid shape (n " + std::to_string(sh.n) + ", c " +
                                std::to_string(sh.c) + ", h " + std::to_string(sh.h) + ", w " +
                                std::to_string(sh.w) + ", k " + std::to_string(sh.k) +
                                ", kernel " + std::to_string(sh.r) + "x" + std::to_string(sh.s) +
                                ", stride " + std::to_string(sh.stride) + ", pad " +
                                std::to_string(sh.pad) + "); kernels up to 64 taps");
}

// ConvAlgorithm::automatic for the forward and backward-data passes of a stride-2
// convolution: the stride-2 forms (winograd4) where both channel counts reach 16, 81
// products per 4x4 output tile are at most 0.75x the direct convolution's 9 per output
// (0.5625x where the tiles fit exactly, 0.73x at 14x14 and 7x7), and the forward pass has
// at least 128 tiles to amortise the transformed weights (36 per channel pair, 4x the
// kernel, written and read once per call; measured, DESIGN.md); the direct convolution
// elsewhere. The shape alone decides.
ConvAlgorithm automatic_stride2(const Conv2dShape& sh) {
  if (!detail::winograd_stride2_applies(sh) || sh.c < 16 || sh.k < 16 || sh.p() < 2 || sh.q() < 2)
    return ConvAlgorithm::direct;
  const std::size_t t4 = detail::ceil_div(sh.p(), 4) * detail::ceil_div(sh.q(), 4);
  if (81 * t4 * 100 <= 75 * 9 * sh.p() * sh.q() && sh.n * t4 >= 128) return ConvAlgorithm::winograd4;
  return ConvAlgorithm::direct;
}
}  // namespace

std::size_t conv2d_workspace_size(const Conv2dShape& sh) {
  // Sized for the widest tile of any target (64 channels) and 64-byte alignment slack.
  constexpr std::size_t kMaxGroup = 64;
  const std::size_t RS = sh.r * sh.s;
  const std::size_t fwd = detail::round_up(sh.k, kMaxGroup) * RS * sh.c + detail::round_up(sh.c, 16) +
                          detail::round_up(sh.k, kMaxGroup);
  const std::size_t bwd_data = detail::round_up(sh.c, kMaxGroup) * RS * sh.k + sh.k;
  const std::size_t bwd_weights = detail::conv_weight_parts(sh) * detail::conv_weight_partial_size(sh) +
                                  detail::conv_weight_packed_x_size(sh);
  const std::size_t winograd =
      detail::winograd_applies(sh) || detail::winograd_stride2_applies(sh) ? detail::winograd_workspace_size(sh) : 0;
  return std::max({fwd, bwd_data, bwd_weights, winograd}) + 16;
}

bool conv2d_winograd_applies(const Conv2dShape& sh) { return detail::winograd_applies(sh); }
bool conv2d_winograd_stride2_applies(const Conv2dShape& sh) { return detail::winograd_stride2_applies(sh); }

ConvAlgorithm conv2d_automatic_algorithm(const Conv2dShape& sh) {
  if (sh.stride == 2) return automatic_stride2(sh);
  // A 1-pixel-wide output would fill half of every 2x2 tile or less: 16 multiplies per
  // tile for at most 2 outputs, where the direct convolution spends 9 per output. The
  // choice depends on the shape only, never on the machine's thread count, so the same
  // run gives the same weights everywhere.
  if (!detail::winograd_applies(sh) || sh.c < 16 || sh.k < 16 || sh.p() < 2 || sh.q() < 2)
    return ConvAlgorithm::direct;
  // F(4x4, 3x3) where its tiles fit the output well enough that it multiplies at most 0.65x
  // as much as F(2x2, 3x3) (36 products per 4x4 tile against 16 per 2x2; 0.5625x when both
  // tile the output exactly, 0.73x at 14x14), and where the call has at least 128 4x4
  // tiles to amortise its transformed weights (2.25x the size of F(2x2, 3x3)'s, written and
  // read once per call). Measured on AVX3 and AVX2 (DESIGN.md): F(4x4, 3x3) is 1.1-1.5x
  // faster at ResNet-18's 32, 28, 16, 8 and 7 pixel layers at batch 32 and 128 and at
  // 4x4 at batch 128, slower at 14x14 and at 4x4 with 32 tiles.
  const std::size_t t4 = detail::ceil_div(sh.p(), 4) * detail::ceil_div(sh.q(), 4);
  const std::size_t t2 = detail::ceil_div(sh.p(), 2) * detail::ceil_div(sh.q(), 2);
  if (36 * t4 * 100 <= 65 * 16 * t2 && sh.n * t4 >= 128) return ConvAlgorithm::winograd4;
  // F(2x2, 3x3) from 9 tiles. With fewer the call is the weights' traffic, which Winograd
  // makes 1.8x larger (16 transformed values per 9): ResNet-18's batch-1 inference on Zen 3
  // ran 1.24x faster with layer 4 (4 tiles) direct, with its weights prepared, and 1.21x
  // without; layer 3 direct (16 tiles) gained nothing, and at batch 4 (16 tiles) layer 4's
  // forward took 3.2 ms by F(2x2, 3x3) against 4.2 ms direct (perf/README.md v19).
  if (sh.n * t2 <= 8) return ConvAlgorithm::direct;
  return ConvAlgorithm::winograd;
}

ConvAlgorithm conv2d_automatic_weight_algorithm(const Conv2dShape& sh) {
  // Stride 2: the same rule as the other passes. Measured on Zen 3 (AVX2, perf/README.md v15):
  // the stride-2 form's weight gradient is 1.2-1.5x faster than direct at l2/l3/l4_down at
  // batch 128 and at l2/l3_down at batch 32 (512 and 128 tiles).
  if (sh.stride == 2) return automatic_stride2(sh);
  if (!detail::winograd_applies(sh)) return ConvAlgorithm::direct;
  const ConvAlgorithm a = conv2d_automatic_algorithm(sh);
  if (a == ConvAlgorithm::direct) return a;
  // F(4x4, 3x3) where its tiles fit the output as for the other passes and the reduction
  // over tiles is long beside the transformed gradient it sums into ([36][C][K], 2.25x
  // F(2x2, 3x3)'s): tiles x channels at least the SIMD target's threshold
  // (kWinogradWeightWork4 and kWinogradWeightWork4Avx2, winograd.h).
  const std::size_t t4 = detail::ceil_div(sh.p(), 4) * detail::ceil_div(sh.q(), 4);
  const std::size_t t2 = detail::ceil_div(sh.p(), 2) * detail::ceil_div(sh.q(), 2);
  if (36 * t4 * 100 <= 65 * 16 * t2 &&
      sh.n * t4 * std::min(sh.c, sh.k) >= HWY_DYNAMIC_DISPATCH(winograd_weight_work4)())
    return ConvAlgorithm::winograd4;
  return ConvAlgorithm::winograd;
}

namespace {
std::size_t winograd_tile_of(const Conv2dShape& sh, ConvAlgorithm algorithm) {
  if (algorithm == ConvAlgorithm::direct) return 0;
  if (!(detail::winograd_applies(sh) || detail::winograd_stride2_applies(sh)))
    throw std::invalid_argument("conv2d: the Winograd algorithm needs a 3x3 kernel, stride 1 (or 2, with winograd4) "
                                "and padding <= 2 (got " + std::to_string(sh.r) + "x" + std::to_string(sh.s) +
                                ", stride " + std::to_string(sh.stride) + ", pad " + std::to_string(sh.pad) + ")");
  if (sh.stride == 2 && algorithm != ConvAlgorithm::winograd4)
    throw std::invalid_argument("conv2d: a stride-2 convolution runs Winograd with 4x4 output tiles only "
                                "(ConvAlgorithm::winograd4)");
  return algorithm == ConvAlgorithm::winograd4 ? 4 : 2;
}
}  // namespace

std::size_t detail::winograd_tile(const Conv2dShape& sh, ConvAlgorithm algorithm) {
  return winograd_tile_of(sh, algorithm == ConvAlgorithm::automatic ? conv2d_automatic_algorithm(sh) : algorithm);
}
std::size_t detail::winograd_weight_tile(const Conv2dShape& sh, ConvAlgorithm algorithm) {
  return winograd_tile_of(sh, algorithm == ConvAlgorithm::automatic ? conv2d_automatic_weight_algorithm(sh) : algorithm);
}

namespace {
// Prepared weights: a header of eight words that name what they serve (in 16 elements, so
// that the weights after it stay 64-byte aligned), then the packed or transformed weights as
// the forward pass lays them out at the start of its workspace.
constexpr std::uint64_t kPreparedMagic = 0x6f64797373657931;  // "odyssey1"
constexpr std::size_t kPreparedHeaderBytes = 64, kPreparedHeaderElements = 16;

using PreparedHeader = std::array<std::uint64_t, kPreparedHeaderBytes / sizeof(std::uint64_t)>;

// What the forward call of `sh` under `algorithm` on the running target needs its prepared
// weights to hold: the element type, the Winograd tile (0: direct), the shape but its batch,
// and the target.
template <class T>
PreparedHeader prepared_header(const Conv2dShape& sh, ConvAlgorithm algorithm) {
  return {kPreparedMagic,
          sizeof(T),
          detail::winograd_tile(sh, algorithm),
          sh.c,
          sh.k,
          (std::uint64_t{sh.r} << 32) | sh.s,
          (std::uint64_t{sh.stride} << 32) | sh.pad,
          HWY_DYNAMIC_DISPATCH(prepared_weights_target)()};
}

std::size_t prepared_size(const Conv2dShape& sh, ConvAlgorithm algorithm) {
  check(sh);
  const std::size_t m = detail::winograd_tile(sh, algorithm);
  // Winograd: [K rounded up to a group][U rows][C] (16 rows for F(2x2, 3x3), 36 for F(4x4,
  // 3x3) and the stride-2 form); direct: [K rounded up][C][taps].
  const std::size_t rows = m == 0 ? sh.r * sh.s : (m == 4 || sh.stride == 2 ? 36 : 16);
  return kPreparedHeaderElements + detail::round_up(sh.k, detail::kWinogradMaxGroup) * sh.c * rows;
}

template <class T>
bool prepared_match(const Conv2dShape& sh, const T* prepared, ConvAlgorithm algorithm) {
  PreparedHeader header;
  std::memcpy(header.data(), prepared, kPreparedHeaderBytes);
  return header == prepared_header<T>(sh, algorithm);
}

template <class T>
void prepare(const Conv2dShape& sh, const T* w, T* prepared, ConvAlgorithm algorithm) {
  check(sh);
  const PreparedHeader header = prepared_header<T>(sh, algorithm);
  T* body = prepared + kPreparedHeaderElements;
  if (const std::size_t m = detail::winograd_tile(sh, algorithm)) {
    detail::winograd_prepare_weights(sh, m, w, body);
  } else if constexpr (std::is_same_v<T, float>) {
    HWY_DYNAMIC_DISPATCH(pack_forward_weights_f32)(sh, w, body);
  } else {
    HWY_DYNAMIC_DISPATCH(pack_forward_weights_f64)(sh, w, body);
  }
  std::memcpy(prepared, header.data(), kPreparedHeaderBytes);
}

// The body of the prepared weights a forward call reads, or null; checks them.
template <class T>
const T* prepared_body(const Conv2dShape& sh, const T* prepared, ConvAlgorithm algorithm) {
  if (!prepared) return nullptr;
  if (!prepared_match(sh, prepared, algorithm))
    throw std::invalid_argument(
        "conv2d_forward: the prepared weights were made for another shape, algorithm (F(4x4, 3x3) depends on the "
        "batch) or SIMD target; prepare them again (conv2d_prepare_weights)");
  return prepared + kPreparedHeaderElements;
}
}  // namespace

std::size_t conv2d_prepared_weights_size(const Conv2dShape& sh, ConvAlgorithm algorithm) {
  return prepared_size(sh, algorithm);
}
void conv2d_prepare_weights(const Conv2dShape& sh, const float* w, float* prepared, ConvAlgorithm algorithm) {
  prepare(sh, w, prepared, algorithm);
}
void conv2d_prepare_weights(const Conv2dShape& sh, const double* w, double* prepared, ConvAlgorithm algorithm) {
  prepare(sh, w, prepared, algorithm);
}
bool conv2d_prepared_weights_match(const Conv2dShape& sh, const float* prepared, std::size_t size,
                                   ConvAlgorithm algorithm) {
  return prepared && size >= prepared_size(sh, algorithm) && prepared_match(sh, prepared, algorithm);
}
bool conv2d_prepared_weights_match(const Conv2dShape& sh, const double* prepared, std::size_t size,
                                   ConvAlgorithm algorithm) {
  return prepared && size >= prepared_size(sh, algorithm) && prepared_match(sh, prepared, algorithm);
}

void conv2d_forward(const Conv2dShape& sh, const float* x, const float* w, const float* bias,
                    float* y, float* ws, ConvAlgorithm algorithm, const ConvEpilogue<float>* epilogue,
                    const float* prepared) {
  check(sh);
  if (epilogue && (!epilogue->scale || !epilogue->shift))
    throw std::invalid_argument("conv2d_forward: an epilogue needs its scale and shift");
  const float* weights = prepared_body(sh, prepared, algorithm);
  if (const std::size_t m = detail::winograd_tile(sh, algorithm))
    return detail::winograd_forward(sh, m, x, w, bias, y, ws, epilogue, weights);
  HWY_DYNAMIC_DISPATCH(conv_forward_f32)(sh, x, w, bias, y, ws, epilogue, weights);
}
void conv2d_forward(const Conv2dShape& sh, const double* x, const double* w, const double* bias,
                    double* y, double* ws, ConvAlgorithm algorithm, const ConvEpilogue<double>* epilogue,
                    const double* prepared) {
  check(sh);
  if (epilogue && (!epilogue->scale || !epilogue->shift))
    throw std::invalid_argument("conv2d_forward: an epilogue needs its scale and shift");
  const double* weights = prepared_body(sh, prepared, algorithm);
  if (const std::size_t m = detail::winograd_tile(sh, algorithm))
    return detail::winograd_forward(sh, m, x, w, bias, y, ws, epilogue, weights);
  HWY_DYNAMIC_DISPATCH(conv_forward_f64)(sh, x, w, bias, y, ws, epilogue, weights);
}
void conv2d_backward_data(const Conv2dShape& sh, const float* dy, const float* w, float* dx,
                          float* ws, bool accumulate, ConvAlgorithm algorithm) {
  check(sh);
  if (const std::size_t m = detail::winograd_tile(sh, algorithm))
    return detail::winograd_backward_data(sh, m, dy, w, dx, ws, accumulate);
  HWY_DYNAMIC_DISPATCH(conv_backward_data_f32)(sh, dy, w, dx, ws, accumulate);
}
void conv2d_backward_data(const Conv2dShape& sh, const double* dy, const double* w, double* dx,
                          double* ws, bool accumulate, ConvAlgorithm algorithm) {
  check(sh);
  if (const std::size_t m = detail::winograd_tile(sh, algorithm))
    return detail::winograd_backward_data(sh, m, dy, w, dx, ws, accumulate);
  HWY_DYNAMIC_DISPATCH(conv_backward_data_f64)(sh, dy, w, dx, ws, accumulate);
}

}  // namespace odyssey::kernels
#endif  // HWY_ONCE
