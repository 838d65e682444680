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

/// The MxM output tiles of a batch (M = `m`, 2 or 4): tile t covers output rows m*row +
/// [0, m) and columns m*col + [0, m) of image n, clipped to the out_h x out_w output.
struct Grid {
  std::size_t out_h, out_w, m, tiles_h, tiles_w;
  Grid(std::size_t h, std::size_t w, std::size_t tile)
      : out_h(h), out_w(w), m(tile), tiles_h(detail::ceil_div(h, tile)), tiles_w(detail::ceil_div(w, tile)) {}
  struct Tile {
    std::size_t n, oh, ow, rows, cols;  // image, top-left output pixel, valid rows and columns
  };
  [[nodiscard]] Tile at(std::size_t tile) const {
    const std::size_t per_image = tiles_h * tiles_w, t = tile % per_image;
    const std::size_t oh = m * (t / tiles_w), ow = m * (t % tiles_w);
    return {tile / per_image, oh, ow, std::min(m, out_h - oh), std::min(m, out_w - ow)};
  }
  [[nodiscard]] std::size_t tiles(std::size_t n) const { return n * tiles_h * tiles_w; }
  /// Offset of output pixel (n, oh, ow) in channels-last data with `channels` per pixel.
  [[nodiscard]] std::size_t offset(std::size_t n, std::size_t oh, std::size_t ow, std::size_t channels) const {
    return ((n * out_h + oh) * out_w + ow) * channels;
  }
};

/// Where the (M+2)x(M+2) input patches come from: the patch of a tile whose outputs start at
/// (oh, ow) covers source rows oh - pad + [0, M+2) and the same for columns.
template <class T>
struct Patches {
  const T* src;  // [n][h][w][len]
  std::size_t h, w, len;
  std::ptrdiff_t pad;
  const T* zero;  // a row of zeros read in place of pixels outside the image
  Grid grid;      // the output tiles
  // The stride-2 backward-data form: where its one-tap (O) rows and columns start in a
  // patch (0 or 1), and 1 - where the two-tap ones start in a tile of dx.
  std::size_t odd = 0;
};

// The forms, by output tile M and stride S: F(2x2, 3x3) (2, 1), F(4x4, 3x3) (4, 1), the
// stride-2 forward form (4, 2: 4x4 outputs from a 9x9 patch) and the stride-2 backward-data
// form (8, 2: an 8x8 tile of dx from a 5x5 patch of dy). Per form: source pixels per side of
// a tile's patch, products per tile and channel pair (xi), and distinct transformed weights
// per channel pair (U rows).
template <std::size_t M, std::size_t S>
inline constexpr std::size_t kSide = S == 1 ? M + 2 : M == 4 ? 9 : 5;
template <std::size_t M, std::size_t S>
inline constexpr std::size_t kXi = S == 1 ? (M + 2) * (M + 2) : 81;
template <std::size_t M, std::size_t S>
inline constexpr std::size_t kURows = S == 1 ? kXi<M, S> : 36;
/// The U row product xi multiplies: itself, or for the stride-2 form EE xi -> xi, EO (e, j)
/// -> 25 + e, OE (i, f) -> 30 + f, OO -> 35 (the layout of transform_input).
template <std::size_t M, std::size_t S>
constexpr std::size_t u_row(std::size_t xi) {
  static_assert(S == 1 || M == 4 || M == 8);
  if constexpr (S == 1) {
    return xi;
  } else {
    return xi < 25 ? xi : xi < 45 ? 25 + (xi - 25) / 4 : xi < 65 ? 30 + (xi - 45) % 5 : 35;
  }
}

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

/// Pointers to the kSide^2 source pixels of `tile`'s patch (`zero` outside the image),
/// offset to channel c_begin, row-major.
template <std::size_t M, std::size_t S, class T>
HWY_INLINE void patch_pixels(const Patches<T>& pt, std::size_t tile, std::size_t c_begin, const T** p) {
  constexpr std::size_t A = kSide<M, S>;
  const Grid::Tile at = pt.grid.at(tile);
  // A patch starts at S*oh - pad; for the backward-data form, at oh/2 - pad.
  constexpr std::size_t kMul = S == 2 && M == 8 ? 1 : S, kDiv = S == 2 && M == 8 ? 2 : 1;
  const std::ptrdiff_t u0 = static_cast<std::ptrdiff_t>(kMul * at.oh / kDiv) - pt.pad;
  const std::ptrdiff_t v0 = static_cast<std::ptrdiff_t>(kMul * at.ow / kDiv) - pt.pad;
  const T* image = pt.src + at.n * pt.h * pt.w * pt.len + c_begin;
  for (std::size_t a = 0; a < A; ++a)
    for (std::size_t b = 0; b < A; ++b) {
      const std::ptrdiff_t u = u0 + static_cast<std::ptrdiff_t>(a), w = v0 + static_cast<std::ptrdiff_t>(b);
      const bool inside = u >= 0 && u < static_cast<std::ptrdiff_t>(pt.h) && w >= 0 &&
                          w < static_cast<std::ptrdiff_t>(pt.w);
      p[a * A + b] = inside ? image + static_cast<std::size_t>(u * static_cast<std::ptrdiff_t>(pt.w) + w) * pt.len
                            : pt.zero;
    }
}

/// r = B^T x for one line x of 6 values of an F(4x4, 3x3) input patch.
template <class D, class V = hn::Vec<D>>
HWY_INLINE void input_line_6(D d, const V* HWY_RESTRICT x, V* HWY_RESTRICT r) {
  using T = hn::TFromD<D>;
  const V two = hn::Set(d, T(2)), four = hn::Set(d, T(4)), five = hn::Set(d, T(5));
  const V a = hn::NegMulAdd(four, x[2], x[4]);  // x4 - 4 x2
  const V b = hn::NegMulAdd(four, x[1], x[3]);  // x3 - 4 x1
  const V c = hn::Sub(x[4], x[2]);
  const V e = hn::Mul(two, hn::Sub(x[3], x[1]));
  r[0] = hn::MulAdd(four, x[0], hn::NegMulAdd(five, x[2], x[4]));
  r[1] = hn::Add(a, b);
  r[2] = hn::Sub(a, b);
  r[3] = hn::Add(c, e);
  r[4] = hn::Sub(c, e);
  r[5] = hn::MulAdd(four, x[1], hn::NegMulAdd(five, x[3], x[5]));
}

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

/// r = B^T x for one line x of 5 values of the stride-2 form (F(4, 2)).
template <class D, class V = hn::Vec<D>>
HWY_INLINE void input_line_5(D d, const V* HWY_RESTRICT x, V* HWY_RESTRICT r) {
  using T = hn::TFromD<D>;
  const V two = hn::Set(d, T(2)), three = hn::Set(d, T(3));
  const V s31 = hn::Sub(x[3], x[1]);
  r[0] = hn::MulAdd(two, hn::Sub(x[0], x[2]), s31);
  r[1] = hn::MulAdd(two, x[1], hn::Sub(x[2], x[3]));
  r[2] = hn::MulSub(three, x[2], hn::MulAdd(two, x[1], x[3]));
  r[3] = s31;
  r[4] = hn::NegMulAdd(two, s31, hn::Sub(x[4], x[2]));
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

/// v[xi * xi_stride + c'] = (B^T d B)[xi] for channels c_begin + c', c' in [0, count), of the
/// input patch d of `tile` (zero outside the image); for the stride-2 form xi runs over EE
/// (B^T d[E][E] B)[e][f] at e * 5 + f, then EO (B^T d[E][O])[e][j] at 25 + e * 4 + j, OE
/// (d[O][E] B)[i][f] at 45 + i * 5 + f, OO d[O][O][i][j] at 65 + i * 4 + j. Writes whole
/// vectors: the row behind v must have room for count rounded up to the vector length.
template <std::size_t M, std::size_t S, class D, class T>
HWY_INLINE void transform_input(D d, const Patches<T>& pt, std::size_t tile, std::size_t c_begin,
                                std::size_t count, T* HWY_RESTRICT v, std::size_t xi_stride) {
  constexpr std::size_t L = hn::MaxLanes(D()), A = kSide<M, S>;
  const T* p[A * A];
  patch_pixels<M, S>(pt, tile, c_begin, p);
  // One vector of channels from c; `load` reads it from a pixel (whole vectors, or the last
  // partial one: two copies of the body, so neither tests per load which it is).
  auto body = [&](std::size_t c, auto load) {
    auto store = [&](hn::Vec<D> x, std::size_t xi) { hn::Store(x, d, v + xi * xi_stride + c); };
    if constexpr (S == 2 && M == 8) {  // the backward-data form: a 5x5 patch of dy
      const std::size_t o = pt.odd;
      hn::Vec<D> t[25];  // B^T d, column by column (t[e * 5 + f])
      HWY_UNROLL(5)
      for (std::size_t b = 0; b < 5; ++b) {
        hn::Vec<D> col[5], r[5];
        HWY_UNROLL(5)
        for (std::size_t e = 0; e < 5; ++e) col[e] = load(p[e * 5 + b]);
        input_line_5(d, col, r);
        HWY_UNROLL(5)
        for (std::size_t e = 0; e < 5; ++e) t[e * 5 + b] = r[e];
        if (b >= o && b < o + 4) {  // B^T d[E][O]
          HWY_UNROLL(5)
          for (std::size_t e = 0; e < 5; ++e) store(r[e], 25 + e * 4 + b - o);
        }
      }
      HWY_UNROLL(5)
      for (std::size_t e = 0; e < 5; ++e) {  // (B^T d) B, row by row
        hn::Vec<D> r[5];
        input_line_5(d, t + e * 5, r);
        HWY_UNROLL(5)
        for (std::size_t f = 0; f < 5; ++f) store(r[f], e * 5 + f);
      }
      HWY_UNROLL(4)
      for (std::size_t i = 0; i < 4; ++i) {  // d[O][E] B and d[O][O], row by row
        const T* const* row = p + (o + i) * 5;
        hn::Vec<D> x[5], r[5];
        HWY_UNROLL(5)
        for (std::size_t f = 0; f < 5; ++f) x[f] = load(row[f]);
        input_line_5(d, x, r);
        HWY_UNROLL(5)
        for (std::size_t f = 0; f < 5; ++f) store(r[f], 45 + i * 5 + f);
        HWY_UNROLL(4)
        for (std::size_t jj = 0; jj < 4; ++jj) store(x[o + jj], 65 + i * 4 + jj);
      }
    } else if constexpr (S == 2) {
      hn::Vec<D> t[25];  // B^T d[E][E], column by column (t[e * 5 + f])
      HWY_UNROLL(9)
      for (std::size_t b = 0; b < 9; ++b) {  // B^T down every column of the E rows
        hn::Vec<D> col[5], r[5];
        HWY_UNROLL(5)
        for (std::size_t e = 0; e < 5; ++e) col[e] = load(p[2 * e * 9 + b]);
        input_line_5(d, col, r);
        HWY_UNROLL(5)
        for (std::size_t e = 0; e < 5; ++e) {
          if (b % 2 == 0) {
            t[e * 5 + b / 2] = r[e];
          } else {
            store(r[e], 25 + e * 4 + b / 2);
          }
        }
      }
      HWY_UNROLL(5)
      for (std::size_t e = 0; e < 5; ++e) {  // (B^T d[E][E]) B, row by row
        hn::Vec<D> r[5];
        input_line_5(d, t + e * 5, r);
        HWY_UNROLL(5)
        for (std::size_t f = 0; f < 5; ++f) store(r[f], e * 5 + f);
      }
      HWY_UNROLL(4)
      for (std::size_t i = 0; i < 4; ++i) {  // d[O][E] B and d[O][O], row by row
        const T* const* row = p + (2 * i + 1) * 9;
        hn::Vec<D> x[5], r[5];
        HWY_UNROLL(5)
        for (std::size_t f = 0; f < 5; ++f) x[f] = load(row[2 * f]);
        input_line_5(d, x, r);
        HWY_UNROLL(5)
        for (std::size_t f = 0; f < 5; ++f) store(r[f], 45 + i * 5 + f);
        HWY_UNROLL(4)
        for (std::size_t jj = 0; jj < 4; ++jj) store(load(row[2 * jj + 1]), 65 + i * 4 + jj);
      }
    } else if constexpr (M == 2) {
      hn::Vec<D> x[16];
      HWY_UNROLL(16)
      for (std::size_t i = 0; i < 16; ++i) x[i] = load(p[i]);
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
    } else {
      static_assert(M == 4);
      hn::Vec<D> t[36];  // B^T d, column by column (t[row * 6 + column])
      HWY_UNROLL(6)
      for (std::size_t b = 0; b < 6; ++b) {
        hn::Vec<D> col[6], r[6];
        HWY_UNROLL(6)
        for (std::size_t a = 0; a < 6; ++a) col[a] = load(p[a * 6 + b]);
        input_line_6(d, col, r);
        HWY_UNROLL(6)
        for (std::size_t a = 0; a < 6; ++a) t[a * 6 + b] = r[a];
      }
      HWY_UNROLL(6)
      for (std::size_t a = 0; a < 6; ++a) {  // (B^T d) B, row by row
        hn::Vec<D> r[6];
        input_line_6(d, t + a * 6, r);
        HWY_UNROLL(6)
        for (std::size_t b = 0; b < 6; ++b) hn::Store(r[b], d, v + (a * 6 + b) * xi_stride + c);
      }
    }
  };
  std::size_t c = 0;
  for (; c + L <= count; c += L) body(c, [&](const T* q) { return hn::LoadU(d, q + c); });
  if (c < count) body(c, [&](const T* q) { return load_n(d, q + c, count - c); });
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

template <std::size_t M, std::size_t S, class Tile, class T>
HWY_NOINLINE void winograd_block(const WinoJob<T>& j, std::size_t tile0, std::size_t ntiles, T* slot) {
  const typename Tile::D d;
  constexpr std::size_t MR = Tile::kRows, NV = Tile::kVectors, G = Tile::kGroup, L = Tile::kLanes;
  constexpr std::size_t XI = kXi<M, S>, XU = kURows<M, S>;
  T* v = slot;                               // [block_tiles][XI][row]
  T* m = slot + j.block_tiles * XI * j.row;  // see below
  const std::size_t len = j.in.len;
  for (std::size_t t = 0; t < ntiles; ++t) transform_input<M, S>(d, j.in, tile0 + t, 0, len, v + t * XI * j.row, j.row);
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
      // once per block; the products wait in m [XI][block_tiles][G].
      for (std::size_t xi = 0; xi < XI; ++xi)
        for (std::size_t t0 = 0; t0 < ntiles; t0 += MR) gemm(grp, xi, t0, m + (xi * j.block_tiles + t0) * G, G);
      for (std::size_t t = 0; t < ntiles; ++t)
        transform_output<M, S, Tile>(j, tile0 + t, m + t * G, j.block_tiles * G, grp, width);
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
  T* v = buf;
  T* m = buf + XI * tiles * row;
  detail::parallel_items(detail::ceil_div(tiles, kChunk), [&](std::size_t item) {
    for (std::size_t t = item * kChunk; t < std::min(tiles, item * kChunk + kChunk); ++t)
      transform_input<M, S>(d, j.in, t, 0, len, v + t * row, tiles * row);
  });
  // Items xi-major, so the loops that take neighbouring items share the xi's rows of v in L2.
  detail::parallel_items(XI * j.groups, [&](std::size_t item) {
    const std::size_t xi = item / j.groups, grp = item % j.groups;
    const T* vx = v + xi * tiles * row;
    const T* u = j.u + (grp * XU + u_row<M, S>(xi)) * len * G;
    T* out = m + (grp * XI + xi) * tiles * G;
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
        transform_output<M, S, Tile>(j, t, m + grp * XI * tiles * G + t * G, tiles * G, grp,
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

/// u[grp][xi][c][jj] = (G g G^T)[xi] for g = the 3x3 kernel from source channel c to output
/// channel grp*G + jj (zero past `outs`); for the stride-2 form the 36 U rows of u_row: G
/// g[{0,2}][{0,2}] G^T, G g[{0,2}][1], G g[1][{0,2}] and g[1][1]. `at(o, c, r, s)` reads the untransformed weight
/// (the nine of one o and c lie together in memory, the G output channels of a group far
/// apart). Per call, so it must be cheap beside the GEMMs even at batch 1 (layer 4 has
/// 262,144 kernels): the G kernels of a group and channel are gathered into g [9][G] and
/// transformed as vectors of output channels.
template <std::size_t M, std::size_t S, class Tile, class T, class At>
void transform_weights(std::size_t outs, std::size_t len, T* u, const At& at) {
  const typename Tile::D d;
  using V = hn::Vec<decltype(d)>;
  constexpr std::size_t G = Tile::kGroup, L = Tile::kLanes, kBlock = 16, A = M + 2, XU = kURows<M, S>;
  const std::size_t blocks = detail::ceil_div(len, kBlock);
  detail::parallel_items(detail::ceil_div(outs, G) * blocks, [&](std::size_t item) {
    const std::size_t grp = item / blocks, c_begin = (item % blocks) * kBlock;
    const std::size_t c_end = std::min(len, c_begin + kBlock);
    T* dst = u + grp * XU * len * G;
    HWY_ALIGN T g[9 * G];
    for (std::size_t c = c_begin; c < c_end; ++c) {
      for (std::size_t jj = 0; jj < G; ++jj) {
        const std::size_t o = grp * G + jj;
        for (std::size_t t = 0; t < 9; ++t) g[t * G + jj] = o < outs ? at(o, c, t / 3, t % 3) : T(0);
      }
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
template <std::size_t M, std::size_t S, class T, class Tile, class At>
void winograd_run(const T* src, std::size_t n, std::size_t src_h, std::size_t src_w, std::size_t len, T* out,
                  std::size_t out_h, std::size_t out_w, std::size_t outs, std::size_t pad, std::size_t odd,
                  const At& at, const T* bias, bool accumulate, T* ws, const ConvEpilogue<T>* ep = nullptr) {
  constexpr std::size_t G = Tile::kGroup, MR = Tile::kRows, XI = kXi<M, S>, XU = kURows<M, S>;
  const std::size_t groups = detail::ceil_div(outs, G);
  T* u = ws;
  T* bias_p = u + detail::round_up(outs, detail::kWinogradMaxGroup) * XU * len;
  T* zero = bias_p + detail::round_up(outs, detail::kWinogradMaxGroup);
  T* slots = zero + detail::winograd_row(len);
  std::fill(zero, slots, T(0));
  transform_weights<M, S, Tile>(outs, len, u, at);
  if (bias) {
    std::fill(bias_p, bias_p + groups * G, T(0));
    std::copy(bias, bias + outs, bias_p);
  }
  const Patches<T> in{src, src_h, src_w, len, static_cast<std::ptrdiff_t>(pad), zero, Grid(out_h, out_w, M), odd};
  WinoJob<T> j{in, out, outs, u, bias ? bias_p : nullptr, accumulate, groups, 0, detail::winograd_row(len),
               XU * len * G * sizeof(T) > detail::kWinogradGroupWeightsL2, ep};
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

template <std::size_t M, std::size_t S, class T>
void winograd_forward_t(const Conv2dShape& sh, const T* x, const T* w, const T* bias, T* y, T* ws,
                        const ConvEpilogue<T>* ep) {
  auto at = [&](std::size_t k, std::size_t c, std::size_t r, std::size_t s) {
    return w[((k * sh.c + c) * 3 + r) * 3 + s];
  };
  if (use_tall_tile(sh.c)) {
    winograd_run<M, S, T, ConvTile<T, true>>(x, sh.n, sh.h, sh.w, sh.c, y, sh.p(), sh.q(), sh.k, sh.pad, 0, at, bias,
                                             false, ws, ep);
  } else {
    winograd_run<M, S, T, ConvTile<T, false>>(x, sh.n, sh.h, sh.w, sh.c, y, sh.p(), sh.q(), sh.k, sh.pad, 0, at, bias,
                                              false, ws, ep);
  }
}

/// Forward with tile m (2 or 4) for stride 1, the stride-2 form for stride 2.
template <class T>
void winograd_forward_any(const Conv2dShape& sh, std::size_t m, const T* x, const T* w, const T* b, T* y, T* ws,
                          const ConvEpilogue<T>* ep) {
  if (sh.stride == 2) return winograd_forward_t<4, 2>(sh, x, w, b, y, ws, ep);
  m == 4 ? winograd_forward_t<4, 1>(sh, x, w, b, y, ws, ep) : winograd_forward_t<2, 1>(sh, x, w, b, y, ws, ep);
}

template <std::size_t M, class T>
void winograd_backward_data_t(const Conv2dShape& sh, const T* dy, const T* w, T* dx, T* ws, bool acc) {
  // Output channels of this pass are the input channels c; the kernel is turned by 180 degrees.
  auto at = [&](std::size_t c, std::size_t k, std::size_t r, std::size_t s) {
    return w[((k * sh.c + c) * 3 + (2 - r)) * 3 + (2 - s)];
  };
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

// ---- Weight gradient ------------------------------------------------------------------
//
// With Y = A^T [sum_c U (.) V] A, the gradient of the (M+2)x(M+2) product for output
// channel k is Z = A dY A^T (dY: the tile's MxM output gradient, zero past the image), so
//   dU[xi][c][k] = sum over tiles of V[xi][c] * Z[xi][k]   ((M+2)^2 GEMMs reducing over tiles)
//   dw[k][c] += G^T dU[c][k] G
// (the stride-2 form: 81 GEMMs into its 36 U rows, the header's split).
// A task owns 64 output channels (one or more register groups) for one part of the tiles
// (all input channels, all U rows), and walks its tiles in sub-chunks of a fixed size,
// transforming the sub-chunk's V and Z (its channels) into its slot: every dU element is
// summed by one task in one fixed order, so the result does not depend on the thread count.

/// Prefetches the cache lines of channels [c_begin, c_begin + count) of the lower right
/// S*M x S*M pixels of `tile`'s patch (kSide per side): the rest of it belongs to the tiles
/// before it in the same row and the row above, prefetched with them.
template <std::size_t M, std::size_t S, class T>
HWY_INLINE void prefetch_patch(const Patches<T>& pt, std::size_t tile, std::size_t c_begin, std::size_t count) {
  const Grid::Tile at = pt.grid.at(tile);
  const std::ptrdiff_t u0 = static_cast<std::ptrdiff_t>(S * at.oh) - pt.pad;
  const std::ptrdiff_t v0 = static_cast<std::ptrdiff_t>(S * at.ow) - pt.pad;
  const std::size_t n = at.n;
  constexpr std::size_t kLine = 64 / sizeof(T);
  constexpr std::ptrdiff_t A = kSide<M, S>, kNew = A - static_cast<std::ptrdiff_t>(S * M);
  for (std::ptrdiff_t u = std::max<std::ptrdiff_t>(u0 + kNew, 0); u < std::min<std::ptrdiff_t>(u0 + A, static_cast<std::ptrdiff_t>(pt.h)); ++u)
    for (std::ptrdiff_t w = std::max<std::ptrdiff_t>(v0 + kNew, 0); w < std::min<std::ptrdiff_t>(v0 + A, static_cast<std::ptrdiff_t>(pt.w)); ++w) {
      const T* p = pt.src + ((n * pt.h + static_cast<std::size_t>(u)) * pt.w + static_cast<std::size_t>(w)) * pt.len + c_begin;
      for (std::size_t c = 0; c < count; c += kLine) hwy::Prefetch(p + c);
    }
}

/// Prefetches the cache lines of output channels [k_begin, k_begin + count) of `tile`'s MxM
/// outputs in dy [n][out_h][out_w][outs].
template <class T>
HWY_INLINE void prefetch_grad(const T* dy, const Grid& grid, std::size_t outs, std::size_t tile,
                              std::size_t k_begin, std::size_t count) {
  const Grid::Tile at = grid.at(tile);
  constexpr std::size_t kLine = 64 / sizeof(T);
  for (std::size_t r = 0; r < at.rows; ++r)
    for (std::size_t s = 0; s < at.cols; ++s) {
      const T* p = dy + grid.offset(at.n, at.oh + r, at.ow + s, outs) + k_begin;
      for (std::size_t c = 0; c < count; c += kLine) hwy::Prefetch(p + c);
    }
}

/// r = A y for one line y of 4 values of an F(4x4, 3x3) output gradient (A = (A^T)^T, 6x4:
/// rows (1 0 0 0), (1 1 1 1), (1 -1 1 -1), (1 2 4 8), (1 -2 4 -8), (0 0 0 1)).
template <class D, class V = hn::Vec<D>>
HWY_INLINE void grad_line_6(D d, const V* HWY_RESTRICT y, V* HWY_RESTRICT r) {
  using T = hn::TFromD<D>;
  const V two = hn::Set(d, T(2)), four = hn::Set(d, T(4)), eight = hn::Set(d, T(8));
  const V e = hn::Add(y[0], y[2]), o = hn::Add(y[1], y[3]);
  const V e4 = hn::MulAdd(four, y[2], y[0]), o8 = hn::MulAdd(eight, y[3], hn::Mul(two, y[1]));
  r[0] = y[0];
  r[1] = hn::Add(e, o);
  r[2] = hn::Sub(e, o);
  r[3] = hn::Add(e4, o8);
  r[4] = hn::Sub(e4, o8);
  r[5] = y[3];
}

/// r = A y for one line y of 4 values of a stride-2 form's output gradient (A = (A^T)^T of
/// F(4, 2), 5x4: rows (1 0 0 0), (1 1 1 1), (1 -1 1 -1), (1 2 4 8), (0 0 0 1)).
template <class D, class V = hn::Vec<D>>
HWY_INLINE void grad_line_5(D d, const V* HWY_RESTRICT y, V* HWY_RESTRICT r) {
  using T = hn::TFromD<D>;
  const V two = hn::Set(d, T(2));
  const V e = hn::Add(y[0], y[2]), o = hn::Add(y[1], y[3]);
  r[0] = y[0];
  r[1] = hn::Add(e, o);
  r[2] = hn::Sub(e, o);
  r[3] = hn::MulAdd(two, hn::MulAdd(two, hn::MulAdd(two, y[3], y[2]), y[1]), y[0]);  // y0 + 2 y1 + 4 y2 + 8 y3
  r[4] = y[3];
}

/// z[xi * xi_stride + j] = (A dY A^T)[xi] for output channels grp*G + j, j < G (zero past
/// `width`), of `tile` of dy [n][out_h][out_w][outs] (dY: its MxM output gradient, zero
/// past the output). For the stride-2 form (S = 2, M = 4), Y = A^T (M_EE A + M_EO) + M_OE A
/// + M_OO gives the gradients of its four products in transform_input's layout: EE A dY A^T
/// at e * 5 + f, EO A dY at 25 + e * 4 + j, OE dY A^T at 45 + i * 5 + f, OO dY at 65 + i * 4 + j.
template <std::size_t M, std::size_t S, class Tile, class T>
HWY_INLINE void transform_grad(const T* dy, const Grid& grid, std::size_t outs, std::size_t tile,
                               std::size_t grp, std::size_t width, const T* zero, T* HWY_RESTRICT z,
                               std::size_t xi_stride) {
  const typename Tile::D d;
  using V = hn::Vec<decltype(d)>;
  constexpr std::size_t L = Tile::kLanes, NV = Tile::kVectors, G = Tile::kGroup;
  const Grid::Tile at = grid.at(tile);
  const T* p0 = dy + grid.offset(at.n, at.oh, at.ow, outs) + grp * G;
  const std::size_t below = grid.out_w * outs;
  const T* p[M * M];
  for (std::size_t r = 0; r < M; ++r)
    for (std::size_t s = 0; s < M; ++s) p[r * M + s] = r < at.rows && s < at.cols ? p0 + r * below + s * outs : zero;
  HWY_UNROLL(NV)
  for (std::size_t v = 0; v < NV; ++v) {
    const std::size_t lanes = v * L < width ? std::min(L, width - v * L) : 0;
    auto load = [&](const T* q) {
      if (lanes == 0) return hn::Zero(d);
      return lanes == L ? hn::LoadU(d, q + v * L) : load_n(d, q + v * L, lanes);
    };
    auto store = [&](V x, std::size_t xi) { hn::Store(x, d, z + xi * xi_stride + v * L); };
    if constexpr (S == 2) {
      static_assert(M == 4);
      V t[20];  // A dY, column by column (t[e * 4 + j]): also the EO gradient
      HWY_UNROLL(4)
      for (std::size_t jj = 0; jj < 4; ++jj) {
        V col[4], r[5];
        HWY_UNROLL(4)
        for (std::size_t i = 0; i < 4; ++i) col[i] = load(p[i * 4 + jj]);
        grad_line_5(d, col, r);
        HWY_UNROLL(5)
        for (std::size_t e = 0; e < 5; ++e) {
          t[e * 4 + jj] = r[e];
          store(r[e], 25 + e * 4 + jj);
        }
      }
      HWY_UNROLL(5)
      for (std::size_t e = 0; e < 5; ++e) {  // (A dY) A^T, row by row
        V r[5];
        grad_line_5(d, t + e * 4, r);
        HWY_UNROLL(5)
        for (std::size_t f = 0; f < 5; ++f) store(r[f], e * 5 + f);
      }
      HWY_UNROLL(4)
      for (std::size_t i = 0; i < 4; ++i) {  // dY A^T and dY, row by row
        V row[4], r[5];
        HWY_UNROLL(4)
        for (std::size_t jj = 0; jj < 4; ++jj) row[jj] = load(p[i * 4 + jj]);
        grad_line_5(d, row, r);
        HWY_UNROLL(5)
        for (std::size_t f = 0; f < 5; ++f) store(r[f], 45 + i * 5 + f);
        HWY_UNROLL(4)
        for (std::size_t jj = 0; jj < 4; ++jj) store(row[jj], 65 + i * 4 + jj);
      }
    } else if constexpr (M == 2) {
      const auto y00 = load(p[0]), y01 = load(p[1]), y10 = load(p[2]), y11 = load(p[3]);
      // A dY: rows (y0), (y0 + y1), (y0 - y1), (-y1) of the 2x2 tile's two rows y0, y1.
      const V a0[4] = {y00, hn::Add(y00, y10), hn::Sub(y00, y10), hn::Neg(y10)};
      const V a1[4] = {y01, hn::Add(y01, y11), hn::Sub(y01, y11), hn::Neg(y11)};
      HWY_UNROLL(4)
      for (std::size_t r = 0; r < 4; ++r) {  // (A dY) A^T, row by row
        T* out = z + r * 4 * xi_stride + v * L;
        hn::Store(a0[r], d, out);
        hn::Store(hn::Add(a0[r], a1[r]), d, out + xi_stride);
        hn::Store(hn::Sub(a0[r], a1[r]), d, out + 2 * xi_stride);
        hn::Store(hn::Neg(a1[r]), d, out + 3 * xi_stride);
      }
    } else {
      static_assert(M == 4);
      V t[24];  // A dY, column by column (t[row * 4 + column])
      HWY_UNROLL(4)
      for (std::size_t s = 0; s < 4; ++s) {
        V col[4], r[6];
        HWY_UNROLL(4)
        for (std::size_t a = 0; a < 4; ++a) col[a] = load(p[a * 4 + s]);
        grad_line_6(d, col, r);
        HWY_UNROLL(6)
        for (std::size_t a = 0; a < 6; ++a) t[a * 4 + s] = r[a];
      }
      HWY_UNROLL(6)
      for (std::size_t a = 0; a < 6; ++a) {  // (A dY) A^T, row by row
        V r[6];
        grad_line_6(d, t + a * 4, r);
        HWY_UNROLL(6)
        for (std::size_t b = 0; b < 6; ++b) hn::Store(r[b], d, z + (a * 6 + b) * xi_stride + v * L);
      }
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

/// The products whose weight U row `r` is (u_row's inverse): `count` xi from `first`, `step`
/// apart. Stride 1: xi = r. The stride-2 form: EE r; EO (e, j) for all j; OE (i, f) for all
/// i; OO all 16.
struct XiRun {
  std::size_t first, count, step;
};
template <std::size_t M, std::size_t S>
constexpr XiRun xi_of_row(std::size_t r) {
  if constexpr (S == 1) {
    return {r, 1, 1};
  } else {
    return r < 25 ? XiRun{r, 1, 1} : r < 30 ? XiRun{25 + (r - 25) * 4, 4, 1} : r < 35 ? XiRun{45 + (r - 30), 4, 5} : XiRun{65, 16, 1};
  }
}
/// Every xi lies in the run of its own U row, once.
template <std::size_t M, std::size_t S>
constexpr bool xi_runs_cover() {
  std::size_t seen[kXi<M, S>] = {};
  for (std::size_t r = 0; r < kURows<M, S>; ++r) {
    const XiRun run = xi_of_row<M, S>(r);
    for (std::size_t i = 0; i < run.count; ++i) {
      const std::size_t xi = run.first + i * run.step;
      if (xi >= kXi<M, S> || u_row<M, S>(xi) != r) return false;
      ++seen[xi];
    }
  }
  for (const std::size_t n : seen)
    if (n != 1) return false;
  return true;
}
static_assert(xi_runs_cover<2, 1>() && xi_runs_cover<4, 1>() && xi_runs_cover<4, 2>());

/// dU for the output channels [tg*TG, tg*TG + TG) (TG = kWinogradMaxGroup: one or more
/// register groups of G), every input channel and all XU U rows, summed over tiles
/// [t_begin, t_end) (at least one) into `du` ([XU][C][kp]); a U row shared by several
/// products (the stride-2 form) sums their GEMMs in xi order.
template <std::size_t M, std::size_t S, class Tile, class T>
HWY_NOINLINE void winograd_weights_task(const WinoGradJob<T>& j, T* du, std::size_t tg, std::size_t t_begin,
                                        std::size_t t_end, T* slot) {
  const typename Tile::D d;
  constexpr std::size_t MR = Tile::kRows, NV = Tile::kVectors, G = Tile::kGroup, L = Tile::kLanes;
  constexpr std::size_t TG = detail::kWinogradMaxGroup, XI = kXi<M, S>, XU = kURows<M, S>;
  static_assert(TG % G == 0);
  const Conv2dShape& sh = *j.sh;
  const std::size_t C = sh.c, crow = detail::winograd_row(C), ST = j.sub_tiles;
  const std::size_t k_begin = tg * TG, width = std::min(TG, sh.k - k_begin), subgroups = detail::ceil_div(width, G);
  T* v = slot;                   // [XI][ST][crow]
  T* z = slot + XI * ST * crow;  // [XI][ST][TG]
  const Patches<T>& pt = j.x;
  for (std::size_t s0 = t_begin; s0 < t_end; s0 += ST) {
    const std::size_t nt = std::min(ST, t_end - s0);
    for (std::size_t t = 0; t < nt; ++t) {
      transform_input<M, S>(d, pt, s0 + t, 0, C, v + t * crow, ST * crow);
      for (std::size_t sg = 0; sg < subgroups; ++sg)
        transform_grad<M, S, Tile>(j.dy, pt.grid, sh.k, s0 + t, k_begin / G + sg, std::min(G, width - sg * G),
                                   pt.zero, z + t * TG + sg * G, ST * TG);
    }
    // The GEMMs below are compute-bound and touch only the slot; meanwhile, prefetch what
    // the next sub-chunk's transforms read (a burst of loads with little arithmetic, which
    // otherwise waits on memory), a few tiles per U row.
    const std::size_t next = s0 + ST, next_end = std::min(t_end, next + ST);
    const std::size_t per_row = detail::ceil_div(ST, XU);
    for (std::size_t r = 0; r < XU; ++r) {
      for (std::size_t t = next + r * per_row; t < std::min(next_end, next + (r + 1) * per_row); ++t) {
        prefetch_patch<M, S>(pt, t, 0, C);
        prefetch_grad(j.dy, pt.grid, sh.k, t, k_begin, width);
      }
      const XiRun run = xi_of_row<M, S>(r);
      for (std::size_t sg = 0; sg < subgroups; ++sg)
        for (std::size_t c0 = 0; c0 < C; c0 += MR) {
          const std::size_t mr = std::min(MR, C - c0);
          T* out = du + (r * sh.c + c0) * j.kp + k_begin + sg * G;
          hn::Vec<decltype(d)> acc[MR * NV];
          for (std::size_t i = 0; i < MR; ++i)
            for (std::size_t k = 0; k < NV; ++k)
              acc[i * NV + k] = s0 == t_begin || i >= mr ? hn::Zero(d) : hn::Load(d, out + i * j.kp + k * L);
          // Rows past mr read the slot's padding or the next channels: computed, never stored.
          for (std::size_t q = 0; q < run.count; ++q) {
            const std::size_t xi = run.first + q * run.step;
            tile_pixels<MR, NV, true>(d, v + xi * ST * crow + c0, crow, z + xi * ST * TG + sg * G, TG, nt, G, acc);
          }
          for (std::size_t i = 0; i < mr; ++i)
            for (std::size_t k = 0; k < NV; ++k) hn::Store(acc[i * NV + k], d, out + i * j.kp + k * L);
        }
    }
  }
}

/// The whole-transform weight gradient (winograd_weights_whole): V [XI][tiles][crow] and Z
/// [XI][tiles][kp] of every tile, transformed in blocks of tiles; then one task per U row and
/// register group of output channels runs dU[row][c][group] = sum over its products (in xi
/// order) of the sum over all tiles, in order.
template <std::size_t M, std::size_t S, class Tile, class T>
void winograd_weights_whole(const WinoGradJob<T>& j, T* du, T* v, std::size_t tiles) {
  const typename Tile::D d;
  constexpr std::size_t MR = Tile::kRows, NV = Tile::kVectors, G = Tile::kGroup, L = Tile::kLanes;
  constexpr std::size_t XI = kXi<M, S>, XU = kURows<M, S>, kBlock = 16;
  const Conv2dShape& sh = *j.sh;
  const std::size_t C = sh.c, crow = detail::winograd_whole_row(C);
  const std::size_t kz = detail::winograd_whole_row(detail::round_up(sh.k, detail::kWinogradMaxGroup));
  const std::size_t groups = detail::ceil_div(sh.k, G);
  T* z = v + XI * tiles * crow;
  detail::parallel_items(detail::ceil_div(tiles, kBlock), [&](std::size_t b) {
    for (std::size_t t = b * kBlock; t < std::min(tiles, b * kBlock + kBlock); ++t) {
      transform_input<M, S>(d, j.x, t, 0, C, v + t * crow, tiles * crow);
      for (std::size_t g = 0; g < groups; ++g)
        transform_grad<M, S, Tile>(j.dy, j.x.grid, sh.k, t, g, std::min(G, sh.k - g * G), j.x.zero,
                                   z + t * kz + g * G, tiles * kz);
    }
  });
  detail::parallel_items(XU * groups, [&](std::size_t item) {
    const std::size_t r = item / groups, g = item % groups;
    const XiRun run = xi_of_row<M, S>(r);
    for (std::size_t c0 = 0; c0 < C; c0 += MR) {
      const std::size_t mr = std::min(MR, C - c0);
      hn::Vec<decltype(d)> acc[MR * NV];
      for (auto& a : acc) a = hn::Zero(d);
      // Rows past mr read the row's padding or the next channels: computed, never stored.
      for (std::size_t q = 0; q < run.count; ++q) {
        const std::size_t xi = run.first + q * run.step;
        tile_pixels<MR, NV, true>(d, v + xi * tiles * crow + c0, crow, z + xi * tiles * kz + g * G, kz, tiles, G, acc);
      }
      T* out = du + (r * C + c0) * j.kp + g * G;
      for (std::size_t i = 0; i < mr; ++i)
        for (std::size_t k = 0; k < NV; ++k) hn::Store(acc[i * NV + k], d, out + i * j.kp + k * L);
    }
  });
}

/// r = G^T l for one line l of M+2 transformed values (l[0], l[step], ...): F(2x2, 3x3)'s G
/// has rows (1 0 0), 1/2 (1 1 1), 1/2 (1 -1 1), (0 0 1); F(4x4, 3x3)'s (1/4 0 0), -1/6 (1 1 1),
/// -1/6 (1 -1 1), (1/24 1/12 1/6), (1/24 -1/12 1/6), (0 0 1). On vectors of output channels.
template <std::size_t M, class D, class V = hn::Vec<D>>
HWY_INLINE void kernel_line(D d, const V* l, std::size_t step, V* r) {
  if constexpr (M == 2) {
    const V h = hn::Mul(hn::Set(d, 0.5), hn::Add(l[step], l[2 * step]));
    r[0] = hn::Add(l[0], h);
    r[1] = hn::Mul(hn::Set(d, 0.5), hn::Sub(l[step], l[2 * step]));
    r[2] = hn::Add(h, l[3 * step]);
  } else {
    const V six = hn::Set(d, 6), s12 = hn::Add(l[step], l[2 * step]), d12 = hn::Sub(l[step], l[2 * step]);
    const V s34 = hn::Add(l[3 * step], l[4 * step]), d34 = hn::Sub(l[3 * step], l[4 * step]);
    const V neg_s12_6 = hn::Div(hn::Neg(s12), six);
    r[0] = hn::Add(hn::MulSub(hn::Set(d, 0.25), l[0], hn::Div(s12, six)), hn::Div(s34, hn::Set(d, 24)));
    r[1] = hn::Add(hn::Div(hn::Neg(d12), six), hn::Div(d34, hn::Set(d, 12)));
    r[2] = hn::Add(hn::Add(neg_s12_6, hn::Div(s34, six)), l[5 * step]);
  }
}

/// r = G^T l for one line l of 5 transformed values of the stride-2 form (l[0], l[step], ...;
/// F(4, 2)'s G has rows 1/2 (1 0), 1/2 (1 1), 1/6 (1 -1), 1/6 (1 2), (0 1)): the gradients of
/// its two taps.
template <class D, class V = hn::Vec<D>>
HWY_INLINE void kernel_line_5(D d, const V* l, std::size_t step, V* r) {
  using T = hn::TFromD<D>;
  const V half = hn::Set(d, T(0.5)), two = hn::Set(d, T(2)), six = hn::Set(d, T(6));
  r[0] = hn::MulAdd(half, hn::Add(l[0], l[step]), hn::Div(hn::Add(l[2 * step], l[3 * step]), six));
  r[1] = hn::Add(hn::MulAdd(half, l[step], hn::Div(hn::MulSub(two, l[3 * step], l[2 * step]), six)), l[4 * step]);
}

/// out[(r * 3 + s) * L + lane] = (G^T u G)[r][s] for the transformed kernel gradients of L
/// output channels side by side, u[row * stride + lane] (kURows vectors): dU back to the 3x3
/// kernels. The stride-2 form: taps {0, 2} x {0, 2} from G^T dU_EE G, taps (0, 1) and (2, 1)
/// from G^T dU_EO, (1, 0) and (1, 2) from G^T dU_OE, (1, 1) = dU_OO.
template <std::size_t M, std::size_t S, class D, class T = hn::TFromD<D>>
HWY_INLINE void kernel_gradient(D d, const T* u, std::size_t stride, T* HWY_RESTRICT out) {
  using V = hn::Vec<D>;
  constexpr std::size_t L = hn::MaxLanes(D()), XU = kURows<M, S>;
  V g[XU];
  for (std::size_t r = 0; r < XU; ++r) g[r] = hn::LoadU(d, u + r * stride);
  auto put = [&](std::size_t r, std::size_t s, V x) { hn::Store(x, d, out + (r * 3 + s) * L); };
  if constexpr (S == 2) {
    V t[10];  // G^T dU_EE: t[i * 5 + f]
    for (std::size_t f = 0; f < 5; ++f) {
      V r[2];
      kernel_line_5(d, g + f, 5, r);
      t[f] = r[0];
      t[5 + f] = r[1];
    }
    for (std::size_t i = 0; i < 2; ++i) {  // (G^T dU_EE) G
      V r[2];
      kernel_line_5(d, t + i * 5, 1, r);
      put(2 * i, 0, r[0]);
      put(2 * i, 2, r[1]);
    }
    V r[2];
    kernel_line_5(d, g + 25, 1, r);
    put(0, 1, r[0]);
    put(2, 1, r[1]);
    kernel_line_5(d, g + 30, 1, r);
    put(1, 0, r[0]);
    put(1, 2, r[1]);
    put(1, 1, g[35]);
  } else {
    constexpr std::size_t A = M + 2;
    V t[3 * A];  // G^T dU: t[r * A + b]
    for (std::size_t b = 0; b < A; ++b) {
      V r[3];
      kernel_line<M>(d, g + b, A, r);
      for (std::size_t i = 0; i < 3; ++i) t[i * A + b] = r[i];
    }
    for (std::size_t i = 0; i < 3; ++i) {  // (G^T dU) G
      V r[3];
      kernel_line<M>(d, t + i * A, 1, r);
      for (std::size_t jj = 0; jj < 3; ++jj) put(i, jj, r[jj]);
    }
  }
}

/// The weight gradient: F(2x2, 3x3) (M = 2) and F(4x4, 3x3) (M = 4) for stride 1, the
/// stride-2 form (M = 4, S = 2).
template <std::size_t M, std::size_t S, class T>
void winograd_backward_weights_t(const Conv2dShape& sh, const T* x, const T* dy, T* dw, T* db, T* ws) {
  using Tile = ConvTile<T>;
  constexpr std::size_t G = Tile::kGroup, XU = kURows<M, S>;
  // A task takes kWinogradMaxGroup output channels (several register groups where G is
  // narrower, as on AVX2), so the input transform of a sub-chunk serves all of them.
  const std::size_t groups = detail::ceil_div(sh.k, detail::kWinogradMaxGroup), kp = detail::round_up(sh.k, G);
  // The tiles are cut into `parts` (by the shape alone: weight_parts.h); each part's dU goes
  // to its own partial, `stride` elements apart, and the partials are added in part order.
  const std::size_t parts = detail::winograd_weight_parts(sh, M), stride = detail::winograd_weight_partial_size(sh, M);
  T* du = ws;
  T* zero = du + parts * stride;
  T* slots = zero + detail::winograd_row(std::max(sh.c, sh.k));
  std::fill(zero, slots, T(0));
  const Patches<T> patches{x, sh.h, sh.w, sh.c, static_cast<std::ptrdiff_t>(sh.pad), zero, Grid(sh.p(), sh.q(), M)};
  const WinoGradJob<T> job{&sh, patches, dy, kp, detail::winograd_grad_sub_tiles(M, S)};
  const std::size_t tiles = patches.grid.tiles(sh.n), slot_size = detail::winograd_grad_slot_size(sh.c);
  if (detail::winograd_weights_whole(sh, M)) {
    winograd_weights_whole<M, S, Tile>(job, du, slots, tiles);
  } else {
    for_each_item_in_slots(groups * parts, [&](std::size_t item, std::size_t slot) {
      const std::size_t grp = item % groups, part = item / groups;
      winograd_weights_task<M, S, Tile>(job, du + part * stride, grp, detail::part_begin(tiles, part, parts),
                                        detail::part_begin(tiles, part + 1, parts), slots + slot * slot_size);
    });
    detail::sum_parts(du, XU * sh.c * kp, parts, stride);  // the parts' dU, added in part order
  }
  // dw[k][c] += G^T dU[c][k] G, in blocks of 16 output channels: for each c, the block's
  // 16 values of every dU[row][c] are one cache line.
  // dU rows are kp = round_up(K, G) wide, so whole vectors of L channels can be read.
  const hn::ScalableTag<T> d;
  constexpr std::size_t L = hn::MaxLanes(decltype(d)());
  static_assert(16 % L == 0);
  detail::parallel_items(detail::ceil_div(sh.k, 16), [&](std::size_t kb) {
    const std::size_t k_end = std::min(sh.k, kb * 16 + 16);
    HWY_ALIGN T g[9 * L];
    for (std::size_t c = 0; c < sh.c; ++c)
      for (std::size_t k0 = kb * 16; k0 < k_end; k0 += L) {
        kernel_gradient<M, S>(d, du + c * kp + k0, sh.c * kp, g);
        for (std::size_t k = k0; k < std::min(k_end, k0 + L); ++k)
          for (std::size_t rs = 0; rs < 9; ++rs) dw[(k * sh.c + c) * 9 + rs] += g[rs * L + k - k0];
      }
  });
  if (db) detail::add_bias_gradient(dy, sh.n * sh.p() * sh.q(), sh.k, db);
}

/// The weight gradient with tile m (2 or 4) for stride 1, the stride-2 form for stride 2.
template <class T>
void winograd_backward_weights_any(const Conv2dShape& sh, std::size_t m, const T* x, const T* dy, T* dw, T* db, T* ws) {
  if (sh.stride == 2) return winograd_backward_weights_t<4, 2>(sh, x, dy, dw, db, ws);
  m == 4 ? winograd_backward_weights_t<4, 1>(sh, x, dy, dw, db, ws) : winograd_backward_weights_t<2, 1>(sh, x, dy, dw, db, ws);
}

void winograd_forward_f32(const Conv2dShape& sh, std::size_t m, const float* x, const float* w,
                          const float* b, float* y, float* ws, const ConvEpilogue<float>* ep) {
  winograd_forward_any(sh, m, x, w, b, y, ws, ep);
}
void winograd_forward_f64(const Conv2dShape& sh, std::size_t m, const double* x, const double* w,
                          const double* b, double* y, double* ws, const ConvEpilogue<double>* ep) {
  winograd_forward_any(sh, m, x, w, b, y, ws, ep);
}
void winograd_backward_data_f32(const Conv2dShape& sh, std::size_t m, const float* dy, const float* w,
                                float* dx, float* ws, bool acc) {
  winograd_backward_data_any(sh, m, dy, w, dx, ws, acc);
}
void winograd_backward_data_f64(const Conv2dShape& sh, std::size_t m, const double* dy, const double* w,
                                double* dx, double* ws, bool acc) {
  winograd_backward_data_any(sh, m, dy, w, dx, ws, acc);
}
void winograd_backward_weights_f32(const Conv2dShape& sh, std::size_t m, const float* x, const float* dy,
                                   float* dw, float* db, float* ws) {
  winograd_backward_weights_any(sh, m, x, dy, dw, db, ws);
}
void winograd_backward_weights_f64(const Conv2dShape& sh, std::size_t m, const double* x, const double* dy,
                                   double* dw, double* db, double* ws) {
  winograd_backward_weights_any(sh, m, x, dy, dw, db, ws);
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
           std::max(kWinogradSlots * winograd_grad_slot_size(sh.c),
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
                      const float* bias, float* y, float* ws, const ConvEpilogue<float>* epilogue) {
  HWY_DYNAMIC_DISPATCH(winograd_forward_f32)(sh, m, x, w, bias, y, ws, epilogue);
}
void winograd_forward(const Conv2dShape& sh, std::size_t m, const double* x, const double* w,
                      const double* bias, double* y, double* ws, const ConvEpilogue<double>* epilogue) {
  HWY_DYNAMIC_DISPATCH(winograd_forward_f64)(sh, m, x, w, bias, y, ws, epilogue);
}
void winograd_backward_data(const Conv2dShape& sh, std::size_t m, const float* dy, const float* w,
                            float* dx, float* ws, bool accumulate) {
  HWY_DYNAMIC_DISPATCH(winograd_backward_data_f32)(sh, m, dy, w, dx, ws, accumulate);
}
void winograd_backward_data(const Conv2dShape& sh, std::size_t m, const double* dy, const double* w,
                            double* dx, double* ws, bool accumulate) {
  HWY_DYNAMIC_DISPATCH(winograd_backward_data_f64)(sh, m, dy, w, dx, ws, accumulate);
}

void winograd_backward_weights(const Conv2dShape& sh, std::size_t m, const float* x, const float* dy, float* dw,
                               float* db, float* ws) {
  HWY_DYNAMIC_DISPATCH(winograd_backward_weights_f32)(sh, m, x, dy, dw, db, ws);
}
void winograd_backward_weights(const Conv2dShape& sh, std::size_t m, const double* x, const double* dy,
                               double* dw, double* db, double* ws) {
  HWY_DYNAMIC_DISPATCH(winograd_backward_weights_f64)(sh, m, x, dy, dw, db, ws);
}

}  // namespace odyssey::kernels::detail
#endif  // HWY_ONCE
