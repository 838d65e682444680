// Winograd convolution on channels-last activations (Lavin & Gray, 2015): F(2x2, 3x3) and
// F(4x4, 3x3), each for all three passes, and stride-2 forms for the three passes of
// stride-2 3x3 convolutions.
//
// Every MxM output tile is Y = A^T [ U (.) V ] A, with V = B^T d B the transformed (M+2)x(M+2)
// input patch d (one per channel) and U = G g G^T the transformed 3x3 kernel g (one per
// channel pair). The element-wise product summed over input channels is, for each of the
// (M+2)^2 positions xi of the transformed tile, a GEMM [tiles x C] x [C x K]. Multiplies per
// output against the direct convolution's 9: F(2x2, 3x3) 16/4 = 4 (2.25x fewer), F(4x4, 3x3)
// 36/16 = 2.25 (4x fewer).
//
// F(2x2, 3x3), interpolation points 0, 1, -1:
//   B^T = | 1  0 -1  0 |     G = |  1    0    0  |     A^T = | 1  1  1  0 |
//         | 0  1  1  0 |         | 1/2  1/2  1/2 |           | 0  1 -1 -1 |
//         | 0 -1  1  0 |         | 1/2 -1/2  1/2 |
//         | 0  1  0 -1 |         |  0    0    1  |
// Its transforms only add and subtract (G's halves are exact), so rounding grows little:
// float results stay within 1e-4 relative of double (tests/kernels/conv_test.cpp).
//
// F(4x4, 3x3), points 0, 1, -1, 2, -2:
//   B^T = | 4  0 -5  0  1  0 |   G = |  1/4     0     0  |   A^T = | 1  1  1  1  1  0 |
//         | 0 -4 -4  1  1  0 |       | -1/6  -1/6  -1/6 |         | 0  1 -1  2 -2  0 |
//         | 0  4 -4 -1  1  0 |       | -1/6   1/6  -1/6 |         | 0  1  1  4  4  0 |
//         | 0 -2 -1  2  1  0 |       | 1/24  1/12   1/6 |         | 0  1 -1  8 -8  1 |
//         | 0  2 -1 -2  1  0 |       | 1/24 -1/12   1/6 |
//         | 0  4  0 -5  0  1 |       |   0     0     1  |
// Its larger coefficients cost precision: the float error against double is 10-20x
// F(2x2, 3x3)'s and 4-7x the direct convolution's (tests/kernels/conv_test.cpp, DESIGN.md).
//
// A stride-2 3x3 forward pass with 4x4 output tiles splits each tile's 9x9 input patch d by
// the parity of its rows and columns (E: patch rows/columns 0, 2, .., 8; O: 1, 3, 5, 7). The
// taps of the kernel's even rows (0, 2) meet only E rows, two adjacent ones, so along that
// axis they are a 2-tap stride-1 correlation of 5 values, F(4, 2) below; the middle row meets
// only O rows, one each (no transform). Likewise for the columns, so a tile is the sum of
//   EE: F(4x4, 2x2) of d[E][E] with g[{0,2}][{0,2}]   25 products
//   EO: F(4, 2) down the columns of d[E][O] with g[{0,2}][1]   5 x 4 products
//   OE: F(4, 2) along the rows of d[O][E] with g[1][{0,2}]     4 x 5 products
//   OO: d[O][O] times g[1][1]                                  16 products
// 81 products per tile (xi), 5.06 multiplies per output against the direct convolution's 9,
// from 36 distinct transformed weights (U rows) per channel pair. F(4, 2), points 0, 1, -1, 2:
//   B^T = | 2 -1 -2  1  0 |   G = | 1/2    0  |   A^T = | 1  1  1  1  0 |
//         | 0  2  1 -1  0 |       | 1/2   1/2 |         | 0  1 -1  2  0 |
//         | 0 -2  3 -1  0 |       | 1/6  -1/6 |         | 0  1  1  4  0 |
//         | 0 -1  0  1  0 |       | 1/6   1/3 |         | 0  1 -1  8  1 |
//         | 0  2 -1 -2  1 |       |  0     1  |
// (interpolation points 0, 1, -1, 2 and infinity; B^T's rows scaled to integers, G's by the
// inverse). Y = A^T (M_EE A + M_EO) + M_OE A + M_OO.
//
// Its backward-data form is the transpose, per 8x8 tile of dx (template tile M = 8): dx row
// i receives dy row oh through tap r where i + pad = 2 oh + r, so the rows with i + pad even
// take taps 2 and 0 of two adjacent dy rows (F(4, 2) with the kernel turned) and the others
// tap 1 of one. The tile's four 4x4 phases all read one 5x5 patch d of dy, with the same
// EE / EO / OE / OO split (the one-tap rows and columns at offset Patches::odd in it): 81
// products, the forward form's 36 weights of the turned kernel, and four 4x4 outputs
// A^T M_EE A, A^T M_EO, M_OE A, M_OO written to their rows and columns of dx. No two tiles
// write the same dx pixel.
//
// Its weight gradient differentiates the forward form: per 4x4 tile of dy (dY), the
// gradients of the four products are A dY A^T (EE, 5x5), A dY (EO, 5x4), dY A^T (OE, 4x5)
// and dY (OO), each multiplied by the same xi of the forward form's input transform; the
// products of one U row (all 4 of an EO or OE row, all 16 of OO) sum into one dU row, and
// G^T takes the 36 rows back to the nine taps (see kernel_gradient).
//
// Backward-data of a stride-1 3x3 convolution is itself one: dx = conv(dy, w') with padding
// 2 - pad and w'[c][k][r][s] = w[k][c][2-r][2-s], so both passes run the code below.
//
// A call splits the output tiles into blocks (at most kWinogradBlockBudget transformed input
// elements each). Per block: transform the input patches of all its tiles into the slot's
// buffer V [tile][xi][channel]; then for each group of output channels run the GEMMs (the
// micro-kernel of the direct convolution, conv-inl.h) into a buffer M, and transform M into
// the MxM outputs. M holds one register tile of kRows tiles (all xi, in L1), or, where a
// group's transformed weights outgrow L2, the whole block (one xi at a time, so each xi's
// weights are read once per block). Worker loops (one per slot) take blocks from a shared
// counter; each output is computed by exactly one block, so results do not depend on the
// thread count.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "winograd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "common.h"
#include "conv-inl.h"
#include "weight_parts.h"
#include "winograd-inl.h"
#include "winograd.h"

HWY_BEFORE_NAMESPACE();
namespace odyssey::kernels::HWY_NAMESPACE {

/// One Winograd convolution: the patches of `in` -> `out` [n][grid.out_h][grid.out_w][outs],
/// out_h = (h + 2*pad - 3) / stride + 1 (likewise for the width).
template <class T>
struct WinoJob {
  Patches<T> in;
  T* out;
  std::size_t outs;
  const T* u;     // packed [groups][xi][len][kGroup]
  const T* bias;  // packed [groups * kGroup] or null
  bool accumulate;
  std::size_t groups, block_tiles, row;
  bool xi_outer;  // the loop order of winograd_block
  const ConvEpilogue<T>* ep = nullptr;  // forward only
};

/// o = A^T m for one line m of 6 values of an F(4x4, 3x3) product tile.
template <class D, class V = hn::Vec<D>>
HWY_INLINE void output_line_6(D d, const V* HWY_RESTRICT m, V* HWY_RESTRICT o) {
  using T = hn::TFromD<D>;
  const V two = hn::Set(d, T(2)), four = hn::Set(d, T(4)), eight = hn::Set(d, T(8));
  const V s12 = hn::Add(m[1], m[2]), d12 = hn::Sub(m[1], m[2]);
  const V s34 = hn::Add(m[3], m[4]), d34 = hn::Sub(m[3], m[4]);
  o[0] = hn::Add(hn::Add(m[0], s12), s34);
  o[1] = hn::MulAdd(two, d34, d12);
  o[2] = hn::MulAdd(four, s34, s12);
  o[3] = hn::Add(hn::MulAdd(eight, d34, d12), m[5]);
}

/// o = A^T m for one line m of 5 values of a stride-2 form product (F(4, 2)).
template <class D, class V = hn::Vec<D>>
HWY_INLINE void output_line_5(D d, const V* HWY_RESTRICT m, V* HWY_RESTRICT o) {
  using T = hn::TFromD<D>;
  const V two = hn::Set(d, T(2)), four = hn::Set(d, T(4)), eight = hn::Set(d, T(8));
  const V s12 = hn::Add(m[1], m[2]), d12 = hn::Sub(m[1], m[2]);
  o[0] = hn::Add(hn::Add(m[0], s12), m[3]);
  o[1] = hn::MulAdd(two, m[3], d12);
  o[2] = hn::MulAdd(four, m[3], s12);
  o[3] = hn::Add(hn::MulAdd(eight, m[3], d12), m[4]);
}

/// The MxM outputs of `tile` for output channels [grp*G, grp*G + width) from
/// m[xi * mstride + channel], plus the bias, then the epilogue when there is one; added to
/// `out` when accumulating.
template <std::size_t M, std::size_t S, class Tile, class T>
HWY_INLINE void transform_output(const WinoJob<T>& j, std::size_t tile, const T* HWY_RESTRICT m,
                                 std::size_t mstride, std::size_t grp, std::size_t width) {
  const typename Tile::D d;
  using V = hn::Vec<decltype(d)>;
  constexpr std::size_t L = Tile::kLanes, G = Tile::kGroup;
  const Grid& grid = j.in.grid;
  const Grid::Tile at = grid.at(tile);
  T* base = j.out + grid.offset(at.n, at.oh, at.ow, j.outs) + grp * G;
  for (std::size_t v = 0; v * L < width; ++v) {
    const std::size_t count = std::min(L, width - v * L);
    V y[M * M];
    auto load = [&](std::size_t xi) { return hn::Load(d, m + xi * mstride + v * L); };
    if constexpr (S == 2 && M == 8) {  // the backward-data form: four 4x4 phases of dx
      const std::size_t o0 = j.in.odd, e0 = 1 - o0;  // first rows (columns) with one tap, two
      auto px = [&](std::size_t r0, std::size_t i, std::size_t c0, std::size_t jj) -> V& {
        return y[(r0 + 2 * i) * 8 + c0 + 2 * jj];
      };
      V a[20];  // A^T M_EE, column by column (a[i * 5 + f])
      HWY_UNROLL(5)
      for (std::size_t f = 0; f < 5; ++f) {
        V col[5], o[4];
        HWY_UNROLL(5)
        for (std::size_t e = 0; e < 5; ++e) col[e] = load(e * 5 + f);
        output_line_5(d, col, o);
        HWY_UNROLL(4)
        for (std::size_t i = 0; i < 4; ++i) a[i * 5 + f] = o[i];
      }
      HWY_UNROLL(4)
      for (std::size_t i = 0; i < 4; ++i) {
        V o[4];
        output_line_5(d, a + i * 5, o);  // (A^T M_EE) A
        HWY_UNROLL(4)
        for (std::size_t jj = 0; jj < 4; ++jj) px(e0, i, e0, jj) = o[jj];
      }
      HWY_UNROLL(4)
      for (std::size_t jj = 0; jj < 4; ++jj) {  // A^T M_EO, column by column
        V col[5], o[4];
        HWY_UNROLL(5)
        for (std::size_t e = 0; e < 5; ++e) col[e] = load(25 + e * 4 + jj);
        output_line_5(d, col, o);
        HWY_UNROLL(4)
        for (std::size_t i = 0; i < 4; ++i) px(e0, i, o0, jj) = o[i];
      }
      HWY_UNROLL(4)
      for (std::size_t i = 0; i < 4; ++i) {  // M_OE A and M_OO, row by row
        V row[5], o[4];
        HWY_UNROLL(5)
        for (std::size_t f = 0; f < 5; ++f) row[f] = load(45 + i * 5 + f);
        output_line_5(d, row, o);
        HWY_UNROLL(4)
        for (std::size_t jj = 0; jj < 4; ++jj) {
          px(o0, i, e0, jj) = o[jj];
          px(o0, i, o0, jj) = load(65 + i * 4 + jj);
        }
      }
    } else if constexpr (S == 2) {
      V p[20];  // M_EE A + M_EO, row by row (p[e * 4 + j])
      HWY_UNROLL(5)
      for (std::size_t e = 0; e < 5; ++e) {
        V row[5];
        HWY_UNROLL(5)
        for (std::size_t f = 0; f < 5; ++f) row[f] = load(e * 5 + f);
        output_line_5(d, row, p + e * 4);
        HWY_UNROLL(4)
        for (std::size_t jj = 0; jj < 4; ++jj) p[e * 4 + jj] = hn::Add(p[e * 4 + jj], load(25 + e * 4 + jj));
      }
      HWY_UNROLL(4)
      for (std::size_t jj = 0; jj < 4; ++jj) {  // A^T (M_EE A + M_EO), column by column
        V col[5] = {p[jj], p[4 + jj], p[8 + jj], p[12 + jj], p[16 + jj]}, o[4];
        output_line_5(d, col, o);
        HWY_UNROLL(4)
        for (std::size_t i = 0; i < 4; ++i) y[i * 4 + jj] = o[i];
      }
      HWY_UNROLL(4)
      for (std::size_t i = 0; i < 4; ++i) {  // + M_OE A + M_OO, row by row
        V row[5], o[4];
        HWY_UNROLL(5)
        for (std::size_t f = 0; f < 5; ++f) row[f] = load(45 + i * 5 + f);
        output_line_5(d, row, o);
        HWY_UNROLL(4)
        for (std::size_t jj = 0; jj < 4; ++jj) y[i * 4 + jj] = hn::Add(y[i * 4 + jj], hn::Add(o[jj], load(65 + i * 4 + jj)));
      }
    } else if constexpr (M == 2) {
      V x[16];
      HWY_UNROLL(16)
      for (std::size_t i = 0; i < 16; ++i) x[i] = load(i);
      V a[8];  // A^T M: two rows of four
      HWY_UNROLL(4)
      for (std::size_t b = 0; b < 4; ++b) {
        a[b] = hn::Add(hn::Add(x[b], x[4 + b]), x[8 + b]);
        a[4 + b] = hn::Sub(hn::Sub(x[4 + b], x[8 + b]), x[12 + b]);
      }
      HWY_UNROLL(2)
      for (std::size_t r = 0; r < 2; ++r) {  // (A^T M) A
        y[r * 2 + 0] = hn::Add(hn::Add(a[r * 4 + 0], a[r * 4 + 1]), a[r * 4 + 2]);
        y[r * 2 + 1] = hn::Sub(hn::Sub(a[r * 4 + 1], a[r * 4 + 2]), a[r * 4 + 3]);
      }
    } else {
      static_assert(M == 4);
      V a[24];  // A^T M: four rows of six
      HWY_UNROLL(6)
      for (std::size_t b = 0; b < 6; ++b) {
        V col[6], o[4];
        HWY_UNROLL(6)
        for (std::size_t i = 0; i < 6; ++i) col[i] = load(i * 6 + b);
        output_line_6(d, col, o);
        HWY_UNROLL(4)
        for (std::size_t r = 0; r < 4; ++r) a[r * 6 + b] = o[r];
      }
      HWY_UNROLL(4)
      for (std::size_t r = 0; r < 4; ++r) output_line_6(d, a + r * 6, y + r * 4);  // (A^T M) A
    }
    if (j.bias) {
      const auto b = hn::Load(d, j.bias + grp * G + v * L);
      for (auto& e : y) e = hn::Add(e, b);
    }
    if (j.ep) {
      const EpilogueLanes<decltype(d)> ep(d, *j.ep, grp * G + v * L, count);
      const std::size_t b0 = static_cast<std::size_t>(base - j.out) + v * L;
      for (std::size_t r = 0; r < at.rows; ++r)
        for (std::size_t s = 0; s < at.cols; ++s) y[r * M + s] = ep(d, y[r * M + s], b0 + (r * grid.out_w + s) * j.outs);
    }
    if (count == L && !j.accumulate && at.rows == M && at.cols == M) {  // the common case, unrolled
      HWY_UNROLL(M)
      for (std::size_t r = 0; r < M; ++r) {
        HWY_UNROLL(M)
        for (std::size_t s = 0; s < M; ++s) hn::StoreU(y[r * M + s], d, base + (r * grid.out_w + s) * j.outs + v * L);
      }
      continue;
    }
    for (std::size_t r = 0; r < at.rows; ++r)
      for (std::size_t s = 0; s < at.cols; ++s) {
        T* p = base + (r * grid.out_w + s) * j.outs + v * L;
        auto e = y[r * M + s];
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

/// The input transform is a burst of loads with little arithmetic between them: in layer 1's
/// forward at batch 128 (32 MB of x) perf annotate on Zen 5 put most of transform_input's
/// samples on its loads. So each tile first prefetches the lines of the patch kPatchAhead
/// tiles on that the tiles before it do not read (prefetch_patch). Measured on Zen 5 (8
/// alternating pairs, median ratio of times): layer-1 forward 0.83x and backward-data 0.87x
/// on AVX3, 0.86x and 0.90x on AVX2; l2/l3_down forward 0.95x; end to end, training at batch
/// 128 1.02x faster (6 pairs). Two tiles ahead did no better. The stride-2 backward-data form
/// (M = 8) is left out: its patches start elsewhere (patch_pixels).
constexpr std::size_t kPatchAhead = 1;
template <std::size_t M, std::size_t S>
inline constexpr bool kPrefetchPatches = S == 1 || M == 4;

template <std::size_t M, std::size_t S, class Tile, class T>
HWY_NOINLINE void winograd_block(const WinoJob<T>& j, std::size_t tile0, std::size_t ntiles, T* slot) {
  const typename Tile::D d;
  constexpr std::size_t MR = Tile::kRows, NV = Tile::kVectors, G = Tile::kGroup, L = Tile::kLanes;
  constexpr std::size_t XI = kXi<M, S>, XU = kURows<M, S>;
  T* v = slot;                               // [block_tiles][XI][row]
  T* m = slot + j.block_tiles * XI * j.row;  // see below
  const std::size_t mxi = detail::winograd_odd_lines(j.block_tiles * G);  // xi_outer's xi stride
  const std::size_t len = j.in.len;
  for (std::size_t t = 0; t < ntiles; ++t) {
    if constexpr (kPrefetchPatches<M, S>) {
      if (t + kPatchAhead < ntiles) prefetch_patch<M, S>(j.in, tile0 + t + kPatchAhead, 0, len);
    }
    transform_input<M, S>(d, j.in, tile0 + t, 0, len, v + t * XI * j.row, j.row);
  }
  auto gemm = [&](std::size_t grp, std::size_t xi, std::size_t t0, T* out, std::size_t out_stride) {
    const std::size_t nrows = std::min(MR, ntiles - t0);
    const T* rows[MR];
    for (std::size_t i = 0; i < MR; ++i) rows[i] = v + ((t0 + std::min(i, nrows - 1)) * XI + xi) * j.row;
    hn::Vec<decltype(d)> acc[MR * NV];
    for (auto& a : acc) a = hn::Zero(d);
    tile_rows<MR, NV>(d, rows, j.u + (grp * XU + u_row<M, S>(xi)) * len * G, len, acc);
    for (std::size_t i = 0; i < MR; ++i)
      for (std::size_t k = 0; k < NV; ++k) hn::Store(acc[i * NV + k], d, out + i * out_stride + k * L);
  };
  for (std::size_t grp = 0; grp < j.groups; ++grp) {
    const std::size_t width = std::min(G, j.outs - grp * G);
    if (j.xi_outer) {
      // One xi at a time over the whole block, so its weights (len x G) are read from L2
      // once per block; the products wait in m [XI][block_tiles][G], each xi mxi apart.
      for (std::size_t xi = 0; xi < XI; ++xi)
        for (std::size_t t0 = 0; t0 < ntiles; t0 += MR) gemm(grp, xi, t0, m + xi * mxi + t0 * G, G);
      for (std::size_t t = 0; t < ntiles; ++t) transform_output<M, S, Tile>(j, tile0 + t, m + t * G, mxi, grp, width);
    } else {
      // One register tile at a time through all xi (the group's weights stay in L2); the
      // products wait in m [XI][MR][G], in L1 (F(2x2, 3x3)) or L2.
      for (std::size_t t0 = 0; t0 < ntiles; t0 += MR) {
        for (std::size_t xi = 0; xi < XI; ++xi) gemm(grp, xi, t0, m + xi * MR * G, G);
        for (std::size_t i = 0; i < std::min(MR, ntiles - t0); ++i)
          transform_output<M, S, Tile>(j, tile0 + t0 + i, m + i * G, MR * G, grp, width);
      }
    }
  }
}

/// A call whose transformed weights are read once (winograd_run_whole_size, winograd.h): every
/// tile's input transform into v [XI][tiles][row], the GEMM of each (xi, group) over all the
/// tiles into m [groups][XI][tiles][G], then every tile's output transform. `buf` holds both.
template <std::size_t M, std::size_t S, class Tile, class T>
void winograd_whole(const WinoJob<T>& j, std::size_t tiles, T* buf) {
  const typename Tile::D d;
  constexpr std::size_t MR = Tile::kRows, NV = Tile::kVectors, G = Tile::kGroup, L = Tile::kLanes;
  constexpr std::size_t XI = kXi<M, S>, XU = kURows<M, S>, kChunk = 8;  // tiles per transform item
  const std::size_t len = j.in.len, row = j.row;
  // Each xi's rows of v and of m an odd number of cache lines apart (winograd_odd_lines).
  const std::size_t vxi = detail::winograd_odd_lines(tiles * row), mxi = detail::winograd_odd_lines(tiles * G);
  T* v = buf;
  T* m = buf + XI * vxi;
  detail::parallel_items(detail::ceil_div(tiles, kChunk), [&](std::size_t item) {
    for (std::size_t t = item * kChunk; t < std::min(tiles, item * kChunk + kChunk); ++t) {
      if constexpr (kPrefetchPatches<M, S>) {
        if (t + kPatchAhead < tiles) prefetch_patch<M, S>(j.in, t + kPatchAhead, 0, len);
      }
      transform_input<M, S>(d, j.in, t, 0, len, v + t * row, vxi);
    }
  });
  // Items xi-major, so the loops that take neighbouring items share the xi's rows of v in L2.
  detail::parallel_items(XI * j.groups, [&](std::size_t item) {
    const std::size_t xi = item / j.groups, grp = item % j.groups;
    const T* vx = v + xi * vxi;
    const T* u = j.u + (grp * XU + u_row<M, S>(xi)) * len * G;
    T* out = m + (grp * XI + xi) * mxi;
    for (std::size_t t0 = 0; t0 < tiles; t0 += MR) {
      const std::size_t nrows = std::min(MR, tiles - t0);
      const T* rows[MR];
      for (std::size_t i = 0; i < MR; ++i) rows[i] = vx + (t0 + std::min(i, nrows - 1)) * row;
      hn::Vec<decltype(d)> acc[MR * NV];
      for (auto& a : acc) a = hn::Zero(d);
      tile_rows<MR, NV>(d, rows, u, len, acc);
      for (std::size_t i = 0; i < nrows; ++i)
        for (std::size_t k = 0; k < NV; ++k) hn::Store(acc[i * NV + k], d, out + (t0 + i) * G + k * L);
    }
  });
  detail::parallel_items(detail::ceil_div(tiles, kChunk), [&](std::size_t item) {
    for (std::size_t t = item * kChunk; t < std::min(tiles, item * kChunk + kChunk); ++t)
      for (std::size_t grp = 0; grp < j.groups; ++grp)
        transform_output<M, S, Tile>(j, t, m + grp * XI * mxi + t * G, mxi, grp,
                                  std::min(G, j.outs - grp * G));
  });
}

/// r = G g for one line g of 3 kernel values: 4 values for F(2x2, 3x3), 6 for F(4x4, 3x3).
template <std::size_t M, class D, class V = hn::Vec<D>>
HWY_INLINE void weight_line(D d, V g0, V g1, V g2, V* HWY_RESTRICT r) {
  using T = hn::TFromD<D>;
  const V half = hn::Set(d, T(0.5));
  if constexpr (M == 2) {
    r[0] = g0;
    r[1] = hn::Mul(half, hn::Add(hn::Add(g0, g1), g2));
    r[2] = hn::Mul(half, hn::Add(hn::Sub(g0, g1), g2));
    r[3] = g2;
  } else {
    static_assert(M == 4);
    // Rows 1/4; -1/6 (1, 1, 1); -1/6 (1, -1, 1); 1/6 (1/4, 1/2, 1); 1/6 (1/4, -1/2, 1); the
    // quarters and halves are exact, so each value is rounded by one multiply by a sixth.
    const V quarter = hn::Set(d, T(0.25)), sixth = hn::Set(d, T(1) / T(6));
    const V even = hn::Add(g0, g2), q = hn::MulAdd(quarter, g0, g2), h = hn::Mul(half, g1);
    r[0] = hn::Mul(quarter, g0);
    r[1] = hn::Neg(hn::Mul(sixth, hn::Add(even, g1)));
    r[2] = hn::Neg(hn::Mul(sixth, hn::Sub(even, g1)));
    r[3] = hn::Mul(sixth, hn::Add(q, h));
    r[4] = hn::Mul(sixth, hn::Sub(q, h));
    r[5] = g2;
  }
}

/// r = G g for one line (g0, g1) of 2 kernel values of the stride-2 form (F(4, 2)): 5 values.
template <class D, class V = hn::Vec<D>>
HWY_INLINE void weight_line_5(D d, V g0, V g1, V* HWY_RESTRICT r) {
  using T = hn::TFromD<D>;
  const V half = hn::Set(d, T(0.5)), sixth = hn::Set(d, T(1) / T(6)), two = hn::Set(d, T(2));
  r[0] = hn::Mul(half, g0);
  r[1] = hn::Mul(half, hn::Add(g0, g1));
  r[2] = hn::Mul(sixth, hn::Sub(g0, g1));
  r[3] = hn::Mul(sixth, hn::MulAdd(two, g1, g0));
  r[4] = g1;
}

/// Where the untransformed 3x3 kernels of a transform_weights call lie: the nine taps of
/// the kernel from source channel c to output channel o start at w + o * o_stride +
/// c * c_stride, in order (r, s) = (t / 3, t % 3), or reversed when `turned` (the backward-
/// data pass's kernel, turned by 180 degrees).
template <class T>
struct KernelTaps {
  const T* w;
  std::size_t o_stride, c_stride;
  bool turned;
  const T* at(std::size_t o, std::size_t c) const { return w + o * o_stride + c * c_stride; }
};

/// u[grp][xi][c][jj] = (G g G^T)[xi] for g = the 3x3 kernel from source channel c to output
/// channel grp*G + jj (zero past `outs`); for the stride-2 form the 36 U rows of u_row: G
/// g[{0,2}][{0,2}] G^T, G g[{0,2}][1], G g[1][{0,2}] and g[1][1]. The nine taps of one o and c
/// lie together in memory, the G output channels of a group far apart (`src`). Per call, so
/// it must be cheap beside the GEMMs even at batch 1 (layer 4 has 262,144 kernels): the G
/// kernels of a group and channel are gathered into g [9][G] and transformed as vectors of
/// output channels.
template <std::size_t M, std::size_t S, class Tile, class T>
void transform_weights(std::size_t outs, std::size_t len, T* u, const KernelTaps<T>& src) {
  const typename Tile::D d;
  using V = hn::Vec<decltype(d)>;
  constexpr std::size_t G = Tile::kGroup, L = Tile::kLanes, kBlock = 16, A = M + 2, XU = kURows<M, S>;
  // Channels gathered at once: kGather * 9 * G values, 9 KB.
  constexpr std::size_t kGather = G < 256 ? 256 / G : 1;
  const std::size_t blocks = detail::ceil_div(len, kBlock);
  detail::parallel_items(detail::ceil_div(outs, G) * blocks, [&](std::size_t item) {
    const std::size_t grp = item / blocks, c_begin = (item % blocks) * kBlock;
    const std::size_t c_end = std::min(len, c_begin + kBlock), o_end = std::min(outs, grp * G + G);
    T* dst = u + grp * XU * len * G;
    // The item's G x kBlock kernels lie in G runs (forward: one per output channel) or
    // kBlock runs (backward-data: one per source channel), 36 x C bytes apart for the
    // convolution's C input channels, which the hardware prefetchers do not follow: every
    // line is requested here, so that their misses overlap. Gathered without it (v21), each
    // output channel's loads waited on their own miss, and transform_weights took a fifth of
    // the l4_down forward pass.
    for (std::size_t o = grp * G; o < o_end; ++o) {
      std::uintptr_t last = 0;
      for (std::size_t c = c_begin; c < c_end; ++c)
        for (const T* p : {src.at(o, c), src.at(o, c) + 8}) {
          const std::uintptr_t line = reinterpret_cast<std::uintptr_t>(p) / 64;
          if (line != last) hwy::Prefetch(p);
          last = line;
        }
    }
    HWY_ALIGN T gathered[kGather * 9 * G];
    for (std::size_t c = c_begin; c < c_end; ++c) {
      // The kernels of kGather channels are gathered in one pass before any is transformed,
      // each output channel's taps read in memory order and stored G apart (a scalar copy:
      // vectorised, the compiler makes it gathers and scatters, which AVX-512 runs slower).
      const std::size_t ci = (c - c_begin) % kGather;
      if (ci == 0) {
        const std::size_t cn = std::min(kGather, c_end - c);
        for (std::size_t jj = 0; jj < G; ++jj) {
          const std::size_t o = grp * G + jj;
          T* to = gathered + jj;
          if (o >= outs) {
            for (std::size_t k = 0; k < cn * 9; ++k) to[k * G] = T(0);
            continue;
          }
          for (std::size_t i = 0; i < cn; ++i) {
            const T* p = src.at(o, c + i);
#pragma clang loop vectorize(disable) unroll(full)
            for (std::size_t t = 0; t < 9; ++t) to[(i * 9 + t) * G] = p[src.turned ? 8 - t : t];
          }
        }
      }
      const T* g = gathered + ci * 9 * G;
      for (std::size_t v = 0; v < G; v += L) {
        auto store = [&](V r, std::size_t row) { hn::Store(r, d, dst + (row * len + c) * G + v); };
        if constexpr (S == 2) {
          auto tap = [&](std::size_t t) { return hn::Load(d, g + t * G + v); };
          V col[10], r[5];  // G g[{0,2}][s] for s = 0, 2: col[a * 2 + s / 2]
          for (std::size_t s = 0; s < 2; ++s) {
            weight_line_5(d, tap(2 * s), tap(6 + 2 * s), r);
            for (std::size_t a = 0; a < 5; ++a) col[a * 2 + s] = r[a];
          }
          for (std::size_t a = 0; a < 5; ++a) {  // (G g) G^T
            weight_line_5(d, col[a * 2], col[a * 2 + 1], r);
            for (std::size_t b = 0; b < 5; ++b) store(r[b], a * 5 + b);
          }
          weight_line_5(d, tap(1), tap(7), r);
          for (std::size_t a = 0; a < 5; ++a) store(r[a], 25 + a);
          weight_line_5(d, tap(3), tap(5), r);
          for (std::size_t b = 0; b < 5; ++b) store(r[b], 30 + b);
          store(tap(4), 35);
        } else {
          V col[A * 3];  // G g: col[a * 3 + s]
          for (std::size_t s = 0; s < 3; ++s) {
            V r[A];
            weight_line<M>(d, hn::Load(d, g + s * G + v), hn::Load(d, g + (3 + s) * G + v),
                           hn::Load(d, g + (6 + s) * G + v), r);
            for (std::size_t a = 0; a < A; ++a) col[a * 3 + s] = r[a];
          }
          for (std::size_t a = 0; a < A; ++a) {  // (G g) G^T
            V r[A];
            weight_line<M>(d, col[a * 3], col[a * 3 + 1], col[a * 3 + 2], r);
            for (std::size_t b = 0; b < A; ++b) store(r[b], a * A + b);
          }
        }
      }
    }
  });
}

/// One call: `src` [n][src_h][src_w][len] -> `out` [n][out_h][out_w][outs]; patches start
/// `pad` pixels before their tile (patch_pixels); `odd`: Patches::odd.
template <std::size_t M, std::size_t S, class T, class Tile>
void winograd_run(const T* src, std::size_t n, std::size_t src_h, std::size_t src_w, std::size_t len, T* out,
                  std::size_t out_h, std::size_t out_w, std::size_t outs, std::size_t pad, std::size_t odd,
                  const KernelTaps<T>& at, const T* bias, bool accumulate, T* ws, const ConvEpilogue<T>* ep = nullptr,
                  const T* prepared = nullptr) {
  constexpr std::size_t G = Tile::kGroup, MR = Tile::kRows, XI = kXi<M, S>, XU = kURows<M, S>;
  const std::size_t groups = detail::ceil_div(outs, G);
  T* u = ws;
  T* bias_p = u + detail::round_up(outs, detail::kWinogradMaxGroup) * XU * len;
  T* zero = bias_p + detail::round_up(outs, detail::kWinogradMaxGroup);
  T* slots = zero + detail::winograd_row(len);
  std::fill(zero, slots, T(0));
  if (!prepared) transform_weights<M, S, Tile>(outs, len, u, at);
  if (bias) {
    std::fill(bias_p, bias_p + groups * G, T(0));
    std::copy(bias, bias + outs, bias_p);
  }
  const Patches<T> in{src, src_h, src_w, len, static_cast<std::ptrdiff_t>(pad), zero, Grid(out_h, out_w, M), odd};
  WinoJob<T> j{in,
               out,
               outs,
               prepared ? prepared : u,
               bias ? bias_p : nullptr,
               accumulate,
               groups,
               0,
               detail::winograd_block_row(len),
               XU * len * G * sizeof(T) > detail::kWinogradGroupWeightsL2,
               ep};
  // Blocks: as large as the budget allows, but at least 16 of them when the tiles allow, so
  // that the worker loops stay balanced on small images (layer 4: 512 tiles at batch 128).
  // Where each block streams all the transformed weights from L3 or memory (xi_outer), the
  // block holds only one xi's rows in L2 at a time, so it may outgrow the budget: up to
  // kWinogradOuterTiles, and two blocks per worker loop where the tiles allow (F(4x4, 3x3) at
  // layer 4, 128 tiles at batch 128, read its 37 MB of weights 11 times in blocks of 12).
  // How the tiles are cut into blocks never changes a result: each tile's sums run the same.
  const std::size_t tiles = in.grid.tiles(n);
  if (detail::winograd_run_whole_size(len, outs, tiles, XI, XU)) return winograd_whole<M, S, Tile>(j, tiles, slots);
  if (j.xi_outer) {
    const std::size_t workers = std::min(detail::kWinogradSlots, detail::arena_threads());
    j.block_tiles = std::min(detail::kWinogradOuterTiles,
                             std::max(MR, detail::round_up(detail::ceil_div(tiles, 2 * workers), MR)));
  } else {
    j.block_tiles = std::min(detail::winograd_max_block_tiles(len, XI),
                             std::max(MR, detail::round_up(detail::ceil_div(tiles, 16), MR)));
  }
  const std::size_t slot_size = detail::winograd_slot_size(len, XI);
  for_each_item_in_slots(detail::ceil_div(tiles, j.block_tiles), [&](std::size_t b, std::size_t slot) {
    const std::size_t t0 = b * j.block_tiles;
    winograd_block<M, S, Tile>(j, t0, std::min(j.block_tiles, tiles - t0), slots + slot * slot_size);
  });
}

/// The forward pass's kernels: w [K][C][3][3].
template <class T>
KernelTaps<T> forward_weight(const Conv2dShape& sh, const T* w) {
  return {w, sh.c * 9, 9, false};
}

template <std::size_t M, std::size_t S, class T>
void winograd_forward_t(const Conv2dShape& sh, const T* x, const T* w, const T* bias, T* y, T* ws,
                        const ConvEpilogue<T>* ep, const T* prepared) {
  const auto at = forward_weight(sh, w);
  if (use_tall_tile(sh.c)) {
    winograd_run<M, S, T, ConvTile<T, true>>(x, sh.n, sh.h, sh.w, sh.c, y, sh.p(), sh.q(), sh.k, sh.pad, 0, at, bias,
                                             false, ws, ep, prepared);
  } else {
    winograd_run<M, S, T, ConvTile<T, false>>(x, sh.n, sh.h, sh.w, sh.c, y, sh.p(), sh.q(), sh.k, sh.pad, 0, at, bias,
                                              false, ws, ep, prepared);
  }
}

/// Forward with tile m (2 or 4) for stride 1, the stride-2 form for stride 2.
template <class T>
void winograd_forward_any(const Conv2dShape& sh, std::size_t m, const T* x, const T* w, const T* b, T* y, T* ws,
                          const ConvEpilogue<T>* ep, const T* prepared) {
  if (sh.stride == 2) return winograd_forward_t<4, 2>(sh, x, w, b, y, ws, ep, prepared);
  m == 4 ? winograd_forward_t<4, 1>(sh, x, w, b, y, ws, ep, prepared)
         : winograd_forward_t<2, 1>(sh, x, w, b, y, ws, ep, prepared);
}

/// What winograd_run's transform_weights writes for the forward pass with tile m.
template <std::size_t M, std::size_t S, class T>
void winograd_prepare_t(const Conv2dShape& sh, const T* w, T* u) {
  if (use_tall_tile(sh.c)) {
    transform_weights<M, S, ConvTile<T, true>>(sh.k, sh.c, u, forward_weight(sh, w));
  } else {
    transform_weights<M, S, ConvTile<T, false>>(sh.k, sh.c, u, forward_weight(sh, w));
  }
}
template <class T>
void winograd_prepare_any(const Conv2dShape& sh, std::size_t m, const T* w, T* u) {
  if (sh.stride == 2) return winograd_prepare_t<4, 2>(sh, w, u);
  m == 4 ? winograd_prepare_t<4, 1>(sh, w, u) : winograd_prepare_t<2, 1>(sh, w, u);
}

template <std::size_t M, class T>
void winograd_backward_data_t(const Conv2dShape& sh, const T* dy, const T* w, T* dx, T* ws, bool acc) {
  // Output channels of this pass are the input channels c; the kernel is turned by 180 degrees.
  const KernelTaps<T> at{w, 9, sh.c * 9, true};
  // Stride 1: a forward convolution of dy with padding 2 - pad. Stride 2: the backward-data
  // form (M = 8), whose two-tap dx rows are those of the parity of pad: with
  // e = pad % 2, a tile's patch of dy starts pad' = 1 - (e + pad) / 2 rows above oh / 2 and
  // its one-tap rows at 1 - e within the patch (winograd.cpp's header).
  constexpr std::size_t S = M == 8 ? 2 : 1;
  const std::size_t e = sh.pad % 2;
  const std::size_t pad = S == 1 ? 2 - sh.pad : 1 - (e + sh.pad) / 2, odd = S == 1 ? 0 : 1 - e;
  if (use_tall_tile(sh.k)) {
    winograd_run<M, S, T, ConvTile<T, true>>(dy, sh.n, sh.p(), sh.q(), sh.k, dx, sh.h, sh.w, sh.c, pad, odd, at,
                                             nullptr, acc, ws);
  } else {
    winograd_run<M, S, T, ConvTile<T, false>>(dy, sh.n, sh.p(), sh.q(), sh.k, dx, sh.h, sh.w, sh.c, pad, odd, at,
                                              nullptr, acc, ws);
  }
}

/// Backward-data with tile m (2 or 4) for stride 1, the stride-2 form for stride 2.
template <class T>
void winograd_backward_data_any(const Conv2dShape& sh, std::size_t m, const T* dy, const T* w, T* dx, T* ws, bool acc) {
  if (sh.stride == 2) return winograd_backward_data_t<8>(sh, dy, w, dx, ws, acc);
  m == 4 ? winograd_backward_data_t<4>(sh, dy, w, dx, ws, acc) : winograd_backward_data_t<2>(sh, dy, w, dx, ws, acc);
}

void winograd_forward_f32(const Conv2dShape& sh, std::size_t m, const float* x, const float* w,
                          const float* b, float* y, float* ws, const ConvEpilogue<float>* ep, const float* prepared) {
  winograd_forward_any(sh, m, x, w, b, y, ws, ep, prepared);
}
void winograd_forward_f64(const Conv2dShape& sh, std::size_t m, const double* x, const double* w,
                          const double* b, double* y, double* ws, const ConvEpilogue<double>* ep,
                          const double* prepared) {
  winograd_forward_any(sh, m, x, w, b, y, ws, ep, prepared);
}
void winograd_prepare_f32(const Conv2dShape& sh, std::size_t m, const float* w, float* u) {
  winograd_prepare_any(sh, m, w, u);
}
void winograd_prepare_f64(const Conv2dShape& sh, std::size_t m, const double* w, double* u) {
  winograd_prepare_any(sh, m, w, u);
}
void winograd_backward_data_f32(const Conv2dShape& sh, std::size_t m, const float* dy, const float* w,
                                float* dx, float* ws, bool acc) {
  winograd_backward_data_any(sh, m, dy, w, dx, ws, acc);
}
void winograd_backward_data_f64(const Conv2dShape& sh, std::size_t m, const double* dy, const double* w,
                                double* dx, double* ws, bool acc) {
  winograd_backward_data_any(sh, m, dy, w, dx, ws, acc);
}
}  // namespace odyssey::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace odyssey::kernels::detail {

HWY_EXPORT(winograd_forward_f32);
HWY_EXPORT(winograd_forward_f64);
HWY_EXPORT(winograd_prepare_f32);
HWY_EXPORT(winograd_prepare_f64);
HWY_EXPORT(winograd_backward_data_f32);
HWY_EXPORT(winograd_backward_data_f64);

std::size_t winograd_workspace_size(const Conv2dShape& sh) {
  // Forward's output tiles cover y, backward-data's dx.
  auto tiles = [&](std::size_t out_h, std::size_t out_w, std::size_t m) {
    return sh.n * ceil_div(out_h, m) * ceil_div(out_w, m);
  };
  auto one = [&](std::size_t len, std::size_t outs, std::size_t xi, std::size_t us, std::size_t t) {
    return round_up(outs, kWinogradMaxGroup) * us * len + round_up(outs, kWinogradMaxGroup) + winograd_row(len) +
           std::max(kWinogradSlots * winograd_slot_size(len, xi), winograd_run_whole_size(len, outs, t, xi, us));
  };
  auto weights = [&](std::size_t m) {
    return winograd_weight_parts(sh, m) * winograd_weight_partial_size(sh, m) + winograd_row(std::max(sh.c, sh.k)) +
           std::max(kWinogradSlots * winograd_grad_slot_size(sh, m),
                    winograd_weights_whole(sh, m) ? winograd_whole_size(sh, m) + kWinogradMaxTile : 0);
  };
  if (sh.stride == 2)
    return std::max({one(sh.c, sh.k, 81, 36, tiles(sh.p(), sh.q(), 4)), one(sh.k, sh.c, 81, 36, tiles(sh.h, sh.w, 8)),
                     weights(4)});
  return std::max({one(sh.c, sh.k, 16, 16, tiles(sh.p(), sh.q(), 2)), one(sh.k, sh.c, 16, 16, tiles(sh.h, sh.w, 2)),
                   one(sh.c, sh.k, 36, 36, tiles(sh.p(), sh.q(), 4)), one(sh.k, sh.c, 36, 36, tiles(sh.h, sh.w, 4)),
                   weights(2), weights(4)});
}

void winograd_forward(const Conv2dShape& sh, std::size_t m, const float* x, const float* w,
                      const float* bias, float* y, float* ws, const ConvEpilogue<float>* epilogue,
                      const float* prepared) {
  HWY_DYNAMIC_DISPATCH(winograd_forward_f32)(sh, m, x, w, bias, y, ws, epilogue, prepared);
}
void winograd_forward(const Conv2dShape& sh, std::size_t m, const double* x, const double* w,
                      const double* bias, double* y, double* ws, const ConvEpilogue<double>* epilogue,
                      const double* prepared) {
  HWY_DYNAMIC_DISPATCH(winograd_forward_f64)(sh, m, x, w, bias, y, ws, epilogue, prepared);
}
void winograd_prepare_weights(const Conv2dShape& sh, std::size_t m, const float* w, float* u) {
  HWY_DYNAMIC_DISPATCH(winograd_prepare_f32)(sh, m, w, u);
}
void winograd_prepare_weights(const Conv2dShape& sh, std::size_t m, const double* w, double* u) {
  HWY_DYNAMIC_DISPATCH(winograd_prepare_f64)(sh, m, w, u);
}
void winograd_backward_data(const Conv2dShape& sh, std::size_t m, const float* dy, const float* w,
                            float* dx, float* ws, bool accumulate) {
  HWY_DYNAMIC_DISPATCH(winograd_backward_data_f32)(sh, m, dy, w, dx, ws, accumulate);
}
void winograd_backward_data(const Conv2dShape& sh, std::size_t m, const double* dy, const double* w,
                            double* dx, double* ws, bool accumulate) {
  HWY_DYNAMIC_DISPATCH(winograd_backward_data_f64)(sh, m, dy, w, dx, ws, accumulate);
}

}  // namespace odyssey::kernels::detail
#endif  // HWY_ONCE
