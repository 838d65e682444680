// Per-target pieces the Winograd passes share: the tile grid, where a tile's input patch
// comes from, and the input transform B^T d B of every form (the forms and their matrices:
// winograd.cpp). Included once per Highway target by winograd.cpp (forward and
// backward-data) and winograd_weights.cpp (the weight gradient), which compile in parallel.
#if defined(ODYSSEY_KERNELS_WINOGRAD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef ODYSSEY_KERNELS_WINOGRAD_INL_H_
#undef ODYSSEY_KERNELS_WINOGRAD_INL_H_
#else
#define ODYSSEY_KERNELS_WINOGRAD_INL_H_
#endif

#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <initializer_list>

#include "common.h"
#include "conv-inl.h"
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

/// Prefetches the cache lines of channels [c_begin, c_begin + count) of the lower right
/// S*M x S*M pixels of `tile`'s patch (kSide per side): the rest of it belongs to the tiles
/// before it in the same row and the row above, prefetched with them. For the forms whose
/// patches start at S*oh - pad: the stride-1 ones and the stride-2 forward form (M = 4).
template <std::size_t M, std::size_t S, class T>
HWY_INLINE void prefetch_patch(const Patches<T>& pt, std::size_t tile, std::size_t c_begin, std::size_t count) {
  static_assert(S == 1 || M == 4);
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

/// v[xi * xi_stride + c'] = (B^T d B)[xi] for channels c_begin + c', c' in [0, count), of the
/// input patch d of `tile` (zero outside the image); for the stride-2 form xi runs over EE
/// (B^T d[E][E] B)[e][f] at e * 5 + f, then EO (B^T d[E][O])[e][j] at 25 + e * 4 + j, OE
/// (d[O][E] B)[i][f] at 45 + i * 5 + f, OO d[O][O][i][j] at 65 + i * 4 + j. Writes whole
/// vectors: the row behind v must have room for count rounded up to the vector length.
template <std::size_t M, std::size_t S, class D, class T>
HWY_INLINE void transform_input(D d, const Patches<T>& pt, std::size_t tile, std::size_t c_begin,
                                std::size_t count, T* HWY_RESTRICT v, std::size_t xi_stride) {
  constexpr std::size_t L = hn::MaxLanes(D()), A = kSide<M, S>;
  const T* pixels[A * A];
  patch_pixels<M, S>(pt, tile, c_begin, pixels);
  // One vector of channels from c; `load` reads it from a pixel (whole vectors, or the last
  // partial one: two copies of the body, so neither tests per load which it is).
  //
  // The stores go through may_alias vector types, so the compiler must assume each one can
  // change anything it reaches through memory: what the stores and loads address (p, out, xs,
  // c) are copied into locals and the lambdas, not referred to (by reference clang reloaded v,
  // xi_stride and c from the closure for every store: 3 loads and a multiply each).
  auto body = [&](std::size_t c, auto load) {
    const T* const* const p = pixels;
    T* const out = v + c;
    const std::size_t xs = xi_stride;
    auto store = [d, out, xs](hn::Vec<D> x, std::size_t xi) { hn::Store(x, d, out + xi * xs); };
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
        store(hn::Sub(t[r + 0], t[r + 2]), r + 0);
        store(hn::Add(t[r + 1], t[r + 2]), r + 1);
        store(hn::Sub(t[r + 2], t[r + 1]), r + 2);
        store(hn::Sub(t[r + 1], t[r + 3]), r + 3);
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
        for (std::size_t b = 0; b < 6; ++b) store(r[b], a * 6 + b);
      }
    }
  };
  std::size_t c = 0;
  for (; c + L <= count; c += L) body(c, [d, c](const T* q) { return hn::LoadU(d, q + c); });
  if (c < count) body(c, [d, c, n = count - c](const T* q) { return load_n(d, q + c, n); });
}


}  // namespace odyssey::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // ODYSSEY_KERNELS_WINOGRAD_INL_H_
