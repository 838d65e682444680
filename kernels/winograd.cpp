// Winograd F(2x2, 3x3) convolution on channels-last activations (Lavin & Gray, 2015).
//
// Every 2x2 output tile is Y = A^T [ U (.) V ] A, with V = B^T d B the transformed 4x4 input
// patch d (one per channel) and U = G g G^T the transformed 3x3 kernel g (one per channel
// pair). The element-wise product summed over input channels is, for each of the 16
// positions xi of the 4x4 transformed tile, a GEMM [tiles x C] x [C x K]: 16 x C x K
// multiply-adds per 2x2 outputs where the direct convolution spends 36 x C x K, 2.25x fewer.
//
//   B^T = | 1  0 -1  0 |     G = |  1    0    0  |     A^T = | 1  1  1  0 |
//         | 0  1  1  0 |         | 1/2  1/2  1/2 |           | 0  1 -1 -1 |
//         | 0 -1  1  0 |         | 1/2 -1/2  1/2 |
//         | 0  1  0 -1 |         |  0    0    1  |
//
// The transforms only add and subtract (G's halves are exact), so rounding grows little:
// float results stay within 1e-4 relative of double (tests/kernels/conv_test.cpp).
//
// Backward-data of a stride-1 3x3 convolution is itself one: dx = conv(dy, w') with padding
// 2 - pad and w'[c][k][r][s] = w[k][c][2-r][2-s], so both passes run the code below.
//
// A call splits the output tiles into blocks (at most kWinogradBlockBudget transformed input
// elements each). Per block: transform the input patches of all its tiles into the slot's
// buffer V [tile][xi][channel]; then for each group of output channels run the 16 GEMMs
// (the micro-kernel of the direct convolution, conv-inl.h) into a buffer M, and transform M
// into the 2x2 outputs. M holds one register tile of kRows tiles (all 16 xi, in L1), or, where
// a group's transformed weights outgrow L2, the whole block (one xi at a time, so each xi's
// weights are read once per block). Worker loops (one per slot) take blocks from a shared counter; each
// output is computed by exactly one block, so results do not depend on the thread count.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "winograd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <initializer_list>

#include "common.h"
#include "conv-inl.h"
#include "weight_parts.h"
#include "winograd.h"

HWY_BEFORE_NAMESPACE();
namespace odyssey::kernels::HWY_NAMESPACE {

/// Calls body(item, slot) for every item in [0, items): min(kWinogradSlots, items, arena
/// threads) worker loops, loop `slot` using scratch slot `slot`, take items from a shared
/// counter. Which loop runs an item varies; what an item computes must not depend on it.
template <class Body>
void for_each_item_in_slots(std::size_t items, const Body& body) {
  const std::size_t workers = std::min({detail::kWinogradSlots, items, detail::arena_threads()});
  std::atomic<std::size_t> next{0};
  detail::parallel_items(workers, [&](std::size_t slot) {
    for (std::size_t item = next.fetch_add(1); item < items; item = next.fetch_add(1)) body(item, slot);
  });
}

/// The 2x2 output tiles of a batch: tile t covers output rows 2*row + [0, 2) and columns
/// 2*col + [0, 2) of image n, clipped to the out_h x out_w output.
struct Grid {
  std::size_t out_h, out_w, tiles_h, tiles_w;
  Grid(std::size_t h, std::size_t w) : out_h(h), out_w(w), tiles_h(detail::ceil_div(h, 2)), tiles_w(detail::ceil_div(w, 2)) {}
  struct Tile2x2 {
    std::size_t n, oh, ow, rows, cols;  // image, top-left output pixel, valid rows and columns
  };
  [[nodiscard]] Tile2x2 at(std::size_t tile) const {
    const std::size_t per_image = tiles_h * tiles_w, t = tile % per_image;
    const std::size_t oh = 2 * (t / tiles_w), ow = 2 * (t % tiles_w);
    return {tile / per_image, oh, ow, std::min<std::size_t>(2, out_h - oh), std::min<std::size_t>(2, out_w - ow)};
  }
  [[nodiscard]] std::size_t tiles(std::size_t n) const { return n * tiles_h * tiles_w; }
  /// Offset of output pixel (n, oh, ow) in channels-last data with `channels` per pixel.
  [[nodiscard]] std::size_t offset(std::size_t n, std::size_t oh, std::size_t ow, std::size_t channels) const {
    return ((n * out_h + oh) * out_w + ow) * channels;
  }
};

/// Where the 4x4 input patches come from: the patch of a tile whose outputs start at
/// (oh, ow) covers source rows oh - pad + [0, 4) and the same for columns.
template <class T>
struct Patches {
  const T* src;  // [n][h][w][len]
  std::size_t h, w, len;
  std::ptrdiff_t pad;
  const T* zero;  // a row of zeros read in place of pixels outside the image
  Grid grid;      // the output tiles
};

/// One Winograd convolution: the patches of `in` -> `out` [n][grid.out_h][grid.out_w][outs],
/// out_h = h + 2*pad - 2 (likewise for the width).
template <class T>
struct WinoJob {
  Patches<T> in;
  T* out;
  std::size_t outs;
  const T* u;     // packed [groups][16][len][kGroup]
  const T* bias;  // packed [groups * kGroup] or null
  bool accumulate;
  std::size_t groups, block_tiles, row;
  bool xi_outer;  // the loop order of winograd_block
};

/// v[xi * xi_stride + c'] = (B^T d B)[xi] for channels c_begin + c', c' in [0, count), of the
/// 4x4 input patch d of `tile` (zero outside the image). Writes whole vectors: the row
/// behind v must have room for count rounded up to the vector length.
template <class D, class T>
HWY_INLINE void transform_input(D d, const Patches<T>& pt, std::size_t tile, std::size_t c_begin,
                                std::size_t count, T* HWY_RESTRICT v, std::size_t xi_stride) {
  constexpr std::size_t L = hn::MaxLanes(D());
  const Grid::Tile2x2 at = pt.grid.at(tile);
  const std::ptrdiff_t u0 = static_cast<std::ptrdiff_t>(at.oh) - pt.pad, v0 = static_cast<std::ptrdiff_t>(at.ow) - pt.pad;
  const T* image = pt.src + at.n * pt.h * pt.w * pt.len + c_begin;
  const T* p[16];
  for (std::size_t a = 0; a < 4; ++a)
    for (std::size_t b = 0; b < 4; ++b) {
      const std::ptrdiff_t u = u0 + static_cast<std::ptrdiff_t>(a), w = v0 + static_cast<std::ptrdiff_t>(b);
      const bool inside = u >= 0 && u < static_cast<std::ptrdiff_t>(pt.h) && w >= 0 &&
                          w < static_cast<std::ptrdiff_t>(pt.w);
      p[a * 4 + b] = inside ? image + static_cast<std::size_t>(u * static_cast<std::ptrdiff_t>(pt.w) + w) * pt.len
                            : pt.zero;
    }
  for (std::size_t c = 0; c < count; c += L) {
    const std::size_t lanes = std::min(L, count - c);
    hn::Vec<D> x[16];
    HWY_UNROLL(16)
    for (std::size_t i = 0; i < 16; ++i)
      x[i] = lanes == L ? hn::LoadU(d, p[i] + c) : load_n(d, p[i] + c, lanes);
    hn::Vec<D> t[16];  // B^T d, column by column
    HWY_UNROLL(4)
    for (std::size_t b = 0; b < 4; ++b) {
      t[0 + b] = hn::Sub(x[0 + b], x[8 + b]);
      t[4 + b] = hn::Add(x[4 + b], x[8 + b]);
      t[8 + b] = hn::Sub(x[8 + b], x[4 + b]);
      t[12 + b] = hn::Sub(x[4 + b], x[12 + b]);
    }
    HWY_UNROLL(4)
    for (std::size_t a = 0; a < 4; ++a) {  // (B^T d) B, row by row
      const std::size_t r = a * 4;
      hn::Store(hn::Sub(t[r + 0], t[r + 2]), d, v + (r + 0) * xi_stride + c);
      hn::Store(hn::Add(t[r + 1], t[r + 2]), d, v + (r + 1) * xi_stride + c);
      hn::Store(hn::Sub(t[r + 2], t[r + 1]), d, v + (r + 2) * xi_stride + c);
      hn::Store(hn::Sub(t[r + 1], t[r + 3]), d, v + (r + 3) * xi_stride + c);
    }
  }
}

/// The 2x2 outputs of `tile` for output channels [grp*G, grp*G + width) from
/// m[xi * mstride + channel], plus the bias; added to `out` when accumulating.
template <class Tile, class T>
HWY_INLINE void transform_output(const WinoJob<T>& j, std::size_t tile, const T* HWY_RESTRICT m,
                                 std::size_t mstride, std::size_t grp, std::size_t width) {
  const typename Tile::D d;
  constexpr std::size_t L = Tile::kLanes, G = Tile::kGroup;
  const Grid& grid = j.in.grid;
  const Grid::Tile2x2 at = grid.at(tile);
  T* base = j.out + grid.offset(at.n, at.oh, at.ow, j.outs) + grp * G;
  for (std::size_t v = 0; v * L < width; ++v) {
    const std::size_t count = std::min(L, width - v * L);
    hn::Vec<decltype(d)> x[16];
    HWY_UNROLL(16)
    for (std::size_t i = 0; i < 16; ++i) x[i] = hn::Load(d, m + i * mstride + v * L);
    hn::Vec<decltype(d)> a[8];  // A^T M: two rows of four
    HWY_UNROLL(4)
    for (std::size_t b = 0; b < 4; ++b) {
      a[b] = hn::Add(hn::Add(x[b], x[4 + b]), x[8 + b]);
      a[4 + b] = hn::Sub(hn::Sub(x[4 + b], x[8 + b]), x[12 + b]);
    }
    hn::Vec<decltype(d)> y[4];  // (A^T M) A
    HWY_UNROLL(2)
    for (std::size_t r = 0; r < 2; ++r) {
      y[r * 2 + 0] = hn::Add(hn::Add(a[r * 4 + 0], a[r * 4 + 1]), a[r * 4 + 2]);
      y[r * 2 + 1] = hn::Sub(hn::Sub(a[r * 4 + 1], a[r * 4 + 2]), a[r * 4 + 3]);
    }
    if (j.bias) {
      const auto b = hn::Load(d, j.bias + grp * G + v * L);
      for (auto& e : y) e = hn::Add(e, b);
    }
    for (std::size_t r = 0; r < at.rows; ++r)
      for (std::size_t s = 0; s < at.cols; ++s) {
        T* p = base + (r * grid.out_w + s) * j.outs + v * L;
        auto e = y[r * 2 + s];
        if (count == L) {
          if (j.accumulate) e = hn::Add(e, hn::LoadU(d, p));
          hn::StoreU(e, d, p);
        } else {
          if (j.accumulate) e = hn::Add(e, load_n(d, p, count));
          store_n(d, e, p, count);
        }
      }
  }
}

template <class Tile, class T>
HWY_NOINLINE void winograd_block(const WinoJob<T>& j, std::size_t tile0, std::size_t ntiles, T* slot) {
  const typename Tile::D d;
  constexpr std::size_t MR = Tile::kRows, NV = Tile::kVectors, G = Tile::kGroup, L = Tile::kLanes;
  T* v = slot;                               // [block_tiles][16][row]
  T* m = slot + j.block_tiles * 16 * j.row;  // see below
  const std::size_t len = j.in.len;
  for (std::size_t t = 0; t < ntiles; ++t) transform_input(d, j.in, tile0 + t, 0, len, v + t * 16 * j.row, j.row);
  auto gemm = [&](std::size_t grp, std::size_t xi, std::size_t t0, T* out, std::size_t out_stride) {
    const std::size_t nrows = std::min(MR, ntiles - t0);
    const T* rows[MR];
    for (std::size_t i = 0; i < MR; ++i) rows[i] = v + ((t0 + std::min(i, nrows - 1)) * 16 + xi) * j.row;
    hn::Vec<decltype(d)> acc[MR * NV];
    for (auto& a : acc) a = hn::Zero(d);
    tile_rows<MR, NV>(d, rows, j.u + (grp * 16 + xi) * len * G, len, acc);
    for (std::size_t i = 0; i < MR; ++i)
      for (std::size_t k = 0; k < NV; ++k) hn::Store(acc[i * NV + k], d, out + i * out_stride + k * L);
  };
  for (std::size_t grp = 0; grp < j.groups; ++grp) {
    const std::size_t width = std::min(G, j.outs - grp * G);
    if (j.xi_outer) {
      // One xi at a time over the whole block, so its weights (len x G) are read from L2
      // once per block; the products wait in m [16][block_tiles][G].
      for (std::size_t xi = 0; xi < 16; ++xi)
        for (std::size_t t0 = 0; t0 < ntiles; t0 += MR) gemm(grp, xi, t0, m + (xi * j.block_tiles + t0) * G, G);
      for (std::size_t t = 0; t < ntiles; ++t)
        transform_output<Tile>(j, tile0 + t, m + t * G, j.block_tiles * G, grp, width);
    } else {
      // One register tile at a time through all 16 xi (the group's weights stay in L2);
      // the products wait in m [16][MR][G], in L1.
      for (std::size_t t0 = 0; t0 < ntiles; t0 += MR) {
        for (std::size_t xi = 0; xi < 16; ++xi) gemm(grp, xi, t0, m + xi * MR * G, G);
        for (std::size_t i = 0; i < std::min(MR, ntiles - t0); ++i)
          transform_output<Tile>(j, tile0 + t0 + i, m + i * G, MR * G, grp, width);
      }
    }
  }
}

/// u[grp][xi][c][jj] = (G g G^T)[xi] for g = the 3x3 kernel from source channel c to output
/// channel grp*G + jj (zero past `outs`); `at(o, c, r, s)` reads the untransformed weight.
template <class Tile, class T, class At>
void transform_weights(std::size_t outs, std::size_t len, T* u, const At& at) {
  constexpr std::size_t G = Tile::kGroup, kBlock = 16;
  // Items of one group by kBlock source channels. The 16 xi planes of a group lie len x G
  // apart (64 KiB at layer 4: the same L1 set), so each channel's 16 x G results are
  // gathered in `row` first and then copied out as 16 runs of G.
  const std::size_t blocks = detail::ceil_div(len, kBlock);
  detail::parallel_items(detail::ceil_div(outs, G) * blocks, [&](std::size_t item) {
    const std::size_t grp = item / blocks, c_begin = (item % blocks) * kBlock;
    const std::size_t c_end = std::min(len, c_begin + kBlock);
    T* dst = u + grp * 16 * len * G;
    HWY_ALIGN T row[16 * G];
    for (std::size_t c = c_begin; c < c_end; ++c) {
      for (std::size_t jj = 0; jj < G; ++jj) {
        const std::size_t o = grp * G + jj;
        T t[4][3];  // G g
        for (std::size_t s = 0; s < 3; ++s) {
          const T g0 = o < outs ? at(o, c, 0, s) : T(0), g1 = o < outs ? at(o, c, 1, s) : T(0),
                  g2 = o < outs ? at(o, c, 2, s) : T(0);
          t[0][s] = g0;
          t[1][s] = T(0.5) * (g0 + g1 + g2);
          t[2][s] = T(0.5) * (g0 - g1 + g2);
          t[3][s] = g2;
        }
        for (std::size_t a = 0; a < 4; ++a) {  // (G g) G^T
          row[(a * 4 + 0) * G + jj] = t[a][0];
          row[(a * 4 + 1) * G + jj] = T(0.5) * (t[a][0] + t[a][1] + t[a][2]);
          row[(a * 4 + 2) * G + jj] = T(0.5) * (t[a][0] - t[a][1] + t[a][2]);
          row[(a * 4 + 3) * G + jj] = t[a][2];
        }
      }
      for (std::size_t xi = 0; xi < 16; ++xi)
        std::copy(row + xi * G, row + xi * G + G, dst + (xi * len + c) * G);
    }
  });
}

template <class T, class Tile, class At>
void winograd_run(const T* src, std::size_t n, std::size_t src_h, std::size_t src_w,
                  std::size_t len, T* out, std::size_t outs, std::size_t pad, const At& at,
                  const T* bias, bool accumulate, T* ws) {
  constexpr std::size_t G = Tile::kGroup, MR = Tile::kRows;
  const std::size_t groups = detail::ceil_div(outs, G);
  T* u = ws;
  T* bias_p = u + detail::round_up(outs, detail::kWinogradMaxGroup) * 16 * len;
  T* zero = bias_p + detail::round_up(outs, detail::kWinogradMaxGroup);
  T* slots = zero + detail::winograd_row(len);
  std::fill(zero, slots, T(0));
  transform_weights<Tile>(outs, len, u, at);
  if (bias) {
    std::fill(bias_p, bias_p + groups * G, T(0));
    std::copy(bias, bias + outs, bias_p);
  }
  const Patches<T> in{src, src_h, src_w, len, static_cast<std::ptrdiff_t>(pad), zero,
                      Grid(src_h + 2 * pad - 2, src_w + 2 * pad - 2)};
  WinoJob<T> j{in, out, outs, u, bias ? bias_p : nullptr, accumulate, groups, 0, detail::winograd_row(len),
               16 * len * G * sizeof(T) > detail::kWinogradGroupWeightsL2};
  // Blocks: as large as the budget allows, but at least 16 of them when the tiles allow, so
  // that the worker loops stay balanced on small images (layer 4: 512 tiles at batch 128).
  const std::size_t tiles = in.grid.tiles(n);
  j.block_tiles = std::min(detail::winograd_max_block_tiles(len),
                           std::max(MR, detail::round_up(detail::ceil_div(tiles, 16), MR)));
  const std::size_t slot_size = detail::winograd_slot_size(len);
  for_each_item_in_slots(detail::ceil_div(tiles, j.block_tiles), [&](std::size_t b, std::size_t slot) {
    const std::size_t t0 = b * j.block_tiles;
    winograd_block<Tile>(j, t0, std::min(j.block_tiles, tiles - t0), slots + slot * slot_size);
  });
}

template <class T>
void winograd_forward_t(const Conv2dShape& sh, const T* x, const T* w, const T* bias, T* y, T* ws) {
  auto at = [&](std::size_t k, std::size_t c, std::size_t r, std::size_t s) {
    return w[((k * sh.c + c) * 3 + r) * 3 + s];
  };
  if (use_tall_tile(sh.c)) {
    winograd_run<T, ConvTile<T, true>>(x, sh.n, sh.h, sh.w, sh.c, y, sh.k, sh.pad, at, bias, false, ws);
  } else {
    winograd_run<T, ConvTile<T, false>>(x, sh.n, sh.h, sh.w, sh.c, y, sh.k, sh.pad, at, bias, false, ws);
  }
}

template <class T>
void winograd_backward_data_t(const Conv2dShape& sh, const T* dy, const T* w, T* dx, T* ws, bool acc) {
  // Output channels of this pass are the input channels c; the kernel is turned by 180 degrees.
  auto at = [&](std::size_t c, std::size_t k, std::size_t r, std::size_t s) {
    return w[((k * sh.c + c) * 3 + (2 - r)) * 3 + (2 - s)];
  };
  const std::size_t pad = 2 - sh.pad;
  if (use_tall_tile(sh.k)) {
    winograd_run<T, ConvTile<T, true>>(dy, sh.n, sh.p(), sh.q(), sh.k, dx, sh.c, pad, at, nullptr, acc, ws);
  } else {
    winograd_run<T, ConvTile<T, false>>(dy, sh.n, sh.p(), sh.q(), sh.k, dx, sh.c, pad, at, nullptr, acc, ws);
  }
}

// ---- Weight gradient ------------------------------------------------------------------
//
// With Y = A^T [sum_c U (.) V] A, the gradient of the 4x4 product for output channel k is
// Z = A dY A^T (dY: the tile's 2x2 output gradient, zero past the image), so
//   dU[xi][c][k] = sum over tiles of V[xi][c] * Z[xi][k]   (16 GEMMs reducing over tiles)
//   dw[k][c] += G^T dU[c][k] G.
// A task owns one output-channel group and a range of input channels (all 16 xi), and walks
// all tiles in sub-chunks of a fixed size, transforming the sub-chunk's V (its channels) and
// Z (its group) into its slot: every dU element is summed by one task in one fixed order,
// so the result does not depend on the thread count.

/// Prefetches the cache lines of channels [c_begin, c_begin + count) of the lower right 2x2
/// pixels of `tile`'s 4x4 patch: the rest of it belongs to the tiles before it in the same
/// row and the row above, prefetched with them.
template <class T>
HWY_INLINE void prefetch_patch(const Patches<T>& pt, std::size_t tile, std::size_t c_begin, std::size_t count) {
  const Grid::Tile2x2 at = pt.grid.at(tile);
  const std::ptrdiff_t u0 = static_cast<std::ptrdiff_t>(at.oh) - pt.pad, v0 = static_cast<std::ptrdiff_t>(at.ow) - pt.pad;
  const std::size_t n = at.n;
  constexpr std::size_t kLine = 64 / sizeof(T);
  for (std::ptrdiff_t u = std::max<std::ptrdiff_t>(u0 + 2, 0); u < std::min<std::ptrdiff_t>(u0 + 4, static_cast<std::ptrdiff_t>(pt.h)); ++u)
    for (std::ptrdiff_t w = std::max<std::ptrdiff_t>(v0 + 2, 0); w < std::min<std::ptrdiff_t>(v0 + 4, static_cast<std::ptrdiff_t>(pt.w)); ++w) {
      const T* p = pt.src + ((n * pt.h + static_cast<std::size_t>(u)) * pt.w + static_cast<std::size_t>(w)) * pt.len + c_begin;
      for (std::size_t c = 0; c < count; c += kLine) hwy::Prefetch(p + c);
    }
}

/// Prefetches the cache lines of output channels [k_begin, k_begin + count) of `tile`'s 2x2
/// outputs in dy [n][out_h][out_w][outs].
template <class T>
HWY_INLINE void prefetch_grad(const T* dy, const Grid& grid, std::size_t outs, std::size_t tile,
                              std::size_t k_begin, std::size_t count) {
  const Grid::Tile2x2 at = grid.at(tile);
  constexpr std::size_t kLine = 64 / sizeof(T);
  for (std::size_t r = 0; r < at.rows; ++r)
    for (std::size_t s = 0; s < at.cols; ++s) {
      const T* p = dy + grid.offset(at.n, at.oh + r, at.ow + s, outs) + k_begin;
      for (std::size_t c = 0; c < count; c += kLine) hwy::Prefetch(p + c);
    }
}

/// z[xi * xi_stride + j] = (A dY A^T)[xi] for output channels grp*G + j, j < G (zero past
/// `width`), of `tile` of dy [n][out_h][out_w][outs].
template <class Tile, class T>
HWY_INLINE void transform_grad(const T* dy, const Grid& grid, std::size_t outs, std::size_t tile,
                               std::size_t grp, std::size_t width, const T* zero, T* HWY_RESTRICT z,
                               std::size_t xi_stride) {
  const typename Tile::D d;
  constexpr std::size_t L = Tile::kLanes, NV = Tile::kVectors, G = Tile::kGroup;
  const Grid::Tile2x2 at = grid.at(tile);
  const T* p0 = dy + grid.offset(at.n, at.oh, at.ow, outs) + grp * G;
  const std::size_t below = grid.out_w * outs;
  const T* p[4] = {p0, at.cols > 1 ? p0 + outs : zero, at.rows > 1 ? p0 + below : zero,
                   at.rows > 1 && at.cols > 1 ? p0 + below + outs : zero};
  HWY_UNROLL(NV)
  for (std::size_t v = 0; v < NV; ++v) {
    const std::size_t lanes = v * L < width ? std::min(L, width - v * L) : 0;
    auto load = [&](const T* q) {
      if (lanes == 0) return hn::Zero(d);
      return lanes == L ? hn::LoadU(d, q + v * L) : load_n(d, q + v * L, lanes);
    };
    const auto y00 = load(p[0]), y01 = load(p[1]), y10 = load(p[2]), y11 = load(p[3]);
    // A dY: rows (y0), (y0 + y1), (y0 - y1), (-y1) of the 2x2 tile's two rows y0, y1.
    const hn::Vec<decltype(d)> a0[4] = {y00, hn::Add(y00, y10), hn::Sub(y00, y10), hn::Neg(y10)};
    const hn::Vec<decltype(d)> a1[4] = {y01, hn::Add(y01, y11), hn::Sub(y01, y11), hn::Neg(y11)};
    HWY_UNROLL(4)
    for (std::size_t r = 0; r < 4; ++r) {  // (A dY) A^T, row by row
      T* out = z + r * 4 * xi_stride + v * L;
      hn::Store(a0[r], d, out);
      hn::Store(hn::Add(a0[r], a1[r]), d, out + xi_stride);
      hn::Store(hn::Sub(a0[r], a1[r]), d, out + 2 * xi_stride);
      hn::Store(hn::Neg(a1[r]), d, out + 3 * xi_stride);
    }
  }
}

template <class T>
struct WinoGradJob {
  const Conv2dShape* sh;
  Patches<T> x;   // zero: winograd_row(max(C, K)) zeros, also read for dy outside the output
  const T* dy;
  std::size_t kp, sub_tiles;
};

/// dU for output group `grp`, every input channel and all 16 xi, summed over tiles
/// [t_begin, t_end) (at least one) into `du` ([16][C][kp]).
template <class Tile, class T>
HWY_NOINLINE void winograd_weights_task(const WinoGradJob<T>& j, T* du, std::size_t grp, std::size_t t_begin,
                                        std::size_t t_end, T* slot) {
  const typename Tile::D d;
  constexpr std::size_t MR = Tile::kRows, NV = Tile::kVectors, G = Tile::kGroup, L = Tile::kLanes;
  const Conv2dShape& sh = *j.sh;
  const std::size_t C = sh.c, crow = detail::winograd_row(C), S = j.sub_tiles;
  const std::size_t width = std::min(G, sh.k - grp * G);
  T* v = slot;                  // [16][S][crow]
  T* z = slot + 16 * S * crow;  // [16][S][G]
  const Patches<T>& pt = j.x;
  for (std::size_t s0 = t_begin; s0 < t_end; s0 += S) {
    const std::size_t nt = std::min(S, t_end - s0);
    for (std::size_t t = 0; t < nt; ++t) {
      transform_input(d, pt, s0 + t, 0, C, v + t * crow, S * crow);
      transform_grad<Tile>(j.dy, pt.grid, sh.k, s0 + t, grp, width, pt.zero, z + t * G, S * G);
    }
    // The GEMMs below are compute-bound and touch only the slot; meanwhile, prefetch what
    // the next sub-chunk's transforms read (a burst of loads with little arithmetic, which
    // otherwise waits on memory), a few tiles per xi.
    const std::size_t next = s0 + S, next_end = std::min(t_end, next + S);
    const std::size_t per_xi = detail::ceil_div(S, 16);
    for (std::size_t xi = 0; xi < 16; ++xi) {
      for (std::size_t t = next + xi * per_xi; t < std::min(next_end, next + (xi + 1) * per_xi); ++t) {
        prefetch_patch(pt, t, 0, C);
        prefetch_grad(j.dy, pt.grid, sh.k, t, grp * G, width);
      }
      for (std::size_t c0 = 0; c0 < C; c0 += MR) {
        const std::size_t mr = std::min(MR, C - c0);
        T* out = du + (xi * sh.c + c0) * j.kp + grp * G;
        hn::Vec<decltype(d)> acc[MR * NV];
        for (std::size_t i = 0; i < MR; ++i)
          for (std::size_t k = 0; k < NV; ++k)
            acc[i * NV + k] = s0 == t_begin || i >= mr ? hn::Zero(d) : hn::Load(d, out + i * j.kp + k * L);
        // Rows past mr read the slot's padding or the next channels: computed, never stored.
        tile_pixels<MR, NV, true>(d, v + xi * S * crow + c0, crow, z + xi * S * G, G, nt, G, acc);
        for (std::size_t i = 0; i < mr; ++i)
          for (std::size_t k = 0; k < NV; ++k) hn::Store(acc[i * NV + k], d, out + i * j.kp + k * L);
      }
    }
  }
}

template <class T>
void winograd_backward_weights_t(const Conv2dShape& sh, const T* x, const T* dy, T* dw, T* db, T* ws) {
  using Tile = ConvTile<T>;
  constexpr std::size_t G = Tile::kGroup;
  const std::size_t groups = detail::ceil_div(sh.k, G), kp = groups * G;
  // The tiles are cut into `parts` (by the shape alone: weight_parts.h); each part's dU goes
  // to its own partial, `stride` elements apart, and the partials are added in part order.
  const std::size_t parts = detail::winograd_weight_parts(sh), stride = detail::winograd_weight_partial_size(sh);
  T* du = ws;
  T* zero = du + parts * stride;
  T* slots = zero + detail::winograd_row(std::max(sh.c, sh.k));
  std::fill(zero, slots, T(0));
  const Patches<T> patches{x, sh.h, sh.w, sh.c, static_cast<std::ptrdiff_t>(sh.pad), zero, Grid(sh.p(), sh.q())};
  const WinoGradJob<T> job{&sh, patches, dy, kp, detail::kWinogradGradSubTiles};
  const std::size_t tiles = patches.grid.tiles(sh.n), slot_size = detail::winograd_grad_slot_size(sh.c);
  for_each_item_in_slots(groups * parts, [&](std::size_t item, std::size_t slot) {
    const std::size_t grp = item % groups, part = item / groups;
    winograd_weights_task<Tile>(job, du + part * stride, grp, detail::part_begin(tiles, part, parts),
                                detail::part_begin(tiles, part + 1, parts), slots + slot * slot_size);
  });
  detail::sum_parts(du, 16 * sh.c * kp, parts, stride);  // the parts' dU, added in part order
  // dw[k][c] += G^T dU[c][k] G, in blocks of 16 output channels: for each c, the block's
  // 16 values of every dU[xi][c] are one cache line.
  detail::parallel_items(detail::ceil_div(sh.k, 16), [&](std::size_t kb) {
    const std::size_t k_end = std::min(sh.k, kb * 16 + 16);
    for (std::size_t c = 0; c < sh.c; ++c)
      for (std::size_t k = kb * 16; k < k_end; ++k) {
        T u[4][4];
        for (std::size_t xi = 0; xi < 16; ++xi) u[xi / 4][xi % 4] = du[(xi * sh.c + c) * kp + k];
        T t[3][4];  // G^T dU
        for (std::size_t b = 0; b < 4; ++b) {
          t[0][b] = u[0][b] + T(0.5) * (u[1][b] + u[2][b]);
          t[1][b] = T(0.5) * (u[1][b] - u[2][b]);
          t[2][b] = T(0.5) * (u[1][b] + u[2][b]) + u[3][b];
        }
        T* out = dw + (k * sh.c + c) * 9;
        for (std::size_t r = 0; r < 3; ++r) {  // (G^T dU) G
          out[r * 3 + 0] += t[r][0] + T(0.5) * (t[r][1] + t[r][2]);
          out[r * 3 + 1] += T(0.5) * (t[r][1] - t[r][2]);
          out[r * 3 + 2] += T(0.5) * (t[r][1] + t[r][2]) + t[r][3];
        }
      }
  });
  if (db) detail::add_bias_gradient(dy, sh.n * sh.p() * sh.q(), sh.k, db);
}

void winograd_forward_f32(const Conv2dShape& sh, const float* x, const float* w, const float* b,
                          float* y, float* ws) {
  winograd_forward_t(sh, x, w, b, y, ws);
}
void winograd_forward_f64(const Conv2dShape& sh, const double* x, const double* w,
                          const double* b, double* y, double* ws) {
  winograd_forward_t(sh, x, w, b, y, ws);
}
void winograd_backward_data_f32(const Conv2dShape& sh, const float* dy, const float* w,
                                float* dx, float* ws, bool acc) {
  winograd_backward_data_t(sh, dy, w, dx, ws, acc);
}
void winograd_backward_data_f64(const Conv2dShape& sh, const double* dy, const double* w,
                                double* dx, double* ws, bool acc) {
  winograd_backward_data_t(sh, dy, w, dx, ws, acc);
}
void winograd_backward_weights_f32(const Conv2dShape& sh, const float* x, const float* dy,
                                   float* dw, float* db, float* ws) {
  winograd_backward_weights_t(sh, x, dy, dw, db, ws);
}
void winograd_backward_weights_f64(const Conv2dShape& sh, const double* x, const double* dy,
                                   double* dw, double* db, double* ws) {
  winograd_backward_weights_t(sh, x, dy, dw, db, ws);
}

}  // namespace odyssey::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace odyssey::kernels::detail {

HWY_EXPORT(winograd_forward_f32);
HWY_EXPORT(winograd_forward_f64);
HWY_EXPORT(winograd_backward_data_f32);
HWY_EXPORT(winograd_backward_data_f64);
HWY_EXPORT(winograd_backward_weights_f32);
HWY_EXPORT(winograd_backward_weights_f64);

std::size_t winograd_workspace_size(const Conv2dShape& sh) {
  auto one = [](std::size_t len, std::size_t outs) {
    return round_up(outs, kWinogradMaxGroup) * 16 * len + round_up(outs, kWinogradMaxGroup) +
           winograd_row(len) + kWinogradSlots * winograd_slot_size(len);
  };
  const std::size_t weights = winograd_weight_parts(sh) * winograd_weight_partial_size(sh) +
                              winograd_row(std::max(sh.c, sh.k)) + kWinogradSlots * winograd_grad_slot_size(sh.c);
  return std::max({one(sh.c, sh.k), one(sh.k, sh.c), weights});
}

void winograd_forward(const Conv2dShape& sh, const float* x, const float* w, const float* bias,
                      float* y, float* ws) {
  HWY_DYNAMIC_DISPATCH(winograd_forward_f32)(sh, x, w, bias, y, ws);
}
void winograd_forward(const Conv2dShape& sh, const double* x, const double* w,
                      const double* bias, double* y, double* ws) {
  HWY_DYNAMIC_DISPATCH(winograd_forward_f64)(sh, x, w, bias, y, ws);
}
void winograd_backward_data(const Conv2dShape& sh, const float* dy, const float* w, float* dx,
                            float* ws, bool accumulate) {
  HWY_DYNAMIC_DISPATCH(winograd_backward_data_f32)(sh, dy, w, dx, ws, accumulate);
}
void winograd_backward_data(const Conv2dShape& sh, const double* dy, const double* w,
                            double* dx, double* ws, bool accumulate) {
  HWY_DYNAMIC_DISPATCH(winograd_backward_data_f64)(sh, dy, w, dx, ws, accumulate);
}

void winograd_backward_weights(const Conv2dShape& sh, const float* x, const float* dy, float* dw,
                               float* db, float* ws) {
  HWY_DYNAMIC_DISPATCH(winograd_backward_weights_f32)(sh, x, dy, dw, db, ws);
}
void winograd_backward_weights(const Conv2dShape& sh, const double* x, const double* dy,
                               double* dw, double* db, double* ws) {
  HWY_DYNAMIC_DISPATCH(winograd_backward_weights_f64)(sh, x, dy, dw, db, ws);
}

}  // namespace odyssey::kernels::detail
#endif  // HWY_ONCE
