// The Winograd weight gradient: F(2x2, 3x3) and F(4x4, 3x3) for stride-1 3x3 convolutions,
// the stride-2 form for stride-2 ones (the forms, their matrices and the stride-2 split:
// winograd.cpp). A file of its own so the two halves compile in parallel: with three
// Highway targets and every form unrolled, one file took clang 19 140 s (release) and
// 276 s (AddressSanitizer) on a Zen 3.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "winograd_weights.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <algorithm>
#include <cstddef>

#include "common.h"
#include "conv-inl.h"
#include "weight_parts.h"
#include "winograd-inl.h"
#include "winograd.h"

HWY_BEFORE_NAMESPACE();
namespace odyssey::kernels::HWY_NAMESPACE {

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

/// The MR x NV accumulators of dU at `out` (rows kp apart): zeros if `first`, else loaded
/// (rows past mr zero); `body(acc)` adds to them; rows below mr are stored back. Storing and
/// loading a float is exact, so a sum split this way is the same sum.
template <std::size_t MR, std::size_t NV, class D, class T, class Body>
HWY_INLINE void update_du(D d, T* out, std::size_t kp, std::size_t mr, bool first, const Body& body) {
  constexpr std::size_t L = hn::MaxLanes(D());
  hn::Vec<D> acc[MR * NV];
  for (std::size_t i = 0; i < MR; ++i)
    for (std::size_t k = 0; k < NV; ++k) acc[i * NV + k] = first || i >= mr ? hn::Zero(d) : hn::Load(d, out + i * kp + k * L);
  body(acc);
  for (std::size_t i = 0; i < mr; ++i)
    for (std::size_t k = 0; k < NV; ++k) hn::Store(acc[i * NV + k], d, out + i * kp + k * L);
}

/// dU for the output channels [tg*TG, tg*TG + TG) (TG = kWinogradMaxGroup: one or more
/// register groups of G), every input channel and all XU U rows, summed over tiles
/// [t_begin, t_end) (at least one) into `du` ([XU][C][kp]); a U row shared by several
/// products (the stride-2 form) sums their GEMMs in xi order.
template <std::size_t M, std::size_t S, class Tile, class T>
HWY_NOINLINE void winograd_weights_task(const WinoGradJob<T>& j, T* du, std::size_t tg, std::size_t t_begin,
                                        std::size_t t_end, T* slot) {
  const typename Tile::D d;
  constexpr std::size_t MR = Tile::kRows, NV = Tile::kVectors, G = Tile::kGroup;
  constexpr std::size_t TG = detail::kWinogradMaxGroup, XI = kXi<M, S>, XU = kURows<M, S>;
  static_assert(TG % G == 0);
  const Conv2dShape& sh = *j.sh;
  const std::size_t C = sh.c, crow = detail::winograd_row(C), ST = j.sub_tiles;
  const std::size_t k_begin = tg * TG, width = std::min(TG, sh.k - k_begin), subgroups = detail::ceil_div(width, G);
  // [XI][ST][crow] and [XI][ST][TG], each xi an odd number of cache lines apart
  // (winograd_odd_lines).
  const std::size_t vxi = detail::winograd_odd_lines(ST * crow), zxi = detail::winograd_odd_lines(ST * TG);
  T* v = slot;
  T* z = slot + XI * vxi;
  const Patches<T>& pt = j.x;
  for (std::size_t s0 = t_begin; s0 < t_end; s0 += ST) {
    const std::size_t nt = std::min(ST, t_end - s0);
    for (std::size_t t = 0; t < nt; ++t) {
      transform_input<M, S>(d, pt, s0 + t, 0, C, v + t * crow, vxi);
      for (std::size_t sg = 0; sg < subgroups; ++sg)
        transform_grad<M, S, Tile>(j.dy, pt.grid, sh.k, s0 + t, k_begin / G + sg, std::min(G, width - sg * G),
                                   pt.zero, z + t * TG + sg * G, zxi);
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
          // Rows past mr read the slot's padding or the next channels: computed, never stored.
          update_du<MR, NV>(d, du + (r * sh.c + c0) * j.kp + k_begin + sg * G, j.kp, mr, s0 == t_begin, [&](auto* acc) {
            for (std::size_t q = 0; q < run.count; ++q) {
              const std::size_t xi = run.first + q * run.step;
              tile_pixels<MR, NV, true>(d, v + xi * vxi + c0, crow, z + xi * zxi + sg * G, TG, nt, G, acc);
            }
          });
        }
    }
  }
}

/// The whole-transform weight gradient (winograd_weights_whole): V [XI][tiles][crow] and Z
/// [XI][tiles][kz] of every tile, transformed in blocks of tiles; then one task per U row and
/// kWinogradMaxGroup output channels (one or more register groups) runs dU[row][c][group] =
/// sum over its products (in xi order) of the sum over all tiles, in order. A task walks each
/// xi's tiles in blocks of about kWholeBlockBytes of V, so that a block's V serves all of the
/// task's register groups from L2 (AVX2 has four per 64 channels; with one task per group,
/// V [xi] was read from L3 or memory K/16 times); the accumulators are stored to dU between
/// blocks and loaded back, which changes no sum or its order.
template <std::size_t M, std::size_t S, class Tile, class T>
void winograd_weights_whole(const WinoGradJob<T>& j, T* du, T* v, std::size_t tiles) {
  const typename Tile::D d;
  constexpr std::size_t MR = Tile::kRows, NV = Tile::kVectors, G = Tile::kGroup;
  constexpr std::size_t XI = kXi<M, S>, XU = kURows<M, S>, TG = detail::kWinogradMaxGroup, kTransformTiles = 16;
  constexpr std::size_t kWholeBlockBytes = 320 * 1024;
  static_assert(TG % G == 0);
  const Conv2dShape& sh = *j.sh;
  const std::size_t C = sh.c, crow = detail::winograd_whole_row(C);
  const std::size_t kz = detail::winograd_whole_row(detail::round_up(sh.k, TG));
  const std::size_t groups = detail::ceil_div(sh.k, G), task_groups = detail::ceil_div(sh.k, TG);
  // Blocks of equal size (within a tile), as few as keep each under kWholeBlockBytes.
  const std::size_t gemm_blocks = detail::ceil_div(tiles * crow * sizeof(T), kWholeBlockBytes);
  const std::size_t gemm_tiles = detail::ceil_div(tiles, gemm_blocks);
  T* z = v + XI * tiles * crow;
  detail::parallel_items(detail::ceil_div(tiles, kTransformTiles), [&](std::size_t b) {
    for (std::size_t t = b * kTransformTiles; t < std::min(tiles, (b + 1) * kTransformTiles); ++t) {
      transform_input<M, S>(d, j.x, t, 0, C, v + t * crow, tiles * crow);
      for (std::size_t g = 0; g < groups; ++g)
        transform_grad<M, S, Tile>(j.dy, j.x.grid, sh.k, t, g, std::min(G, sh.k - g * G), j.x.zero,
                                   z + t * kz + g * G, tiles * kz);
    }
  });
  detail::parallel_items(XU * task_groups, [&](std::size_t item) {
    const std::size_t r = item / task_groups, g_begin = (item % task_groups) * (TG / G);
    const std::size_t g_end = std::min(groups, g_begin + TG / G);
    const XiRun run = xi_of_row<M, S>(r);
    for (std::size_t q = 0; q < run.count; ++q) {
      const std::size_t xi = run.first + q * run.step;
      for (std::size_t t0 = 0; t0 < tiles; t0 += gemm_tiles) {
        const std::size_t nt = std::min(gemm_tiles, tiles - t0);
        const bool first = q == 0 && t0 == 0;
        for (std::size_t g = g_begin; g < g_end; ++g)
          for (std::size_t c0 = 0; c0 < C; c0 += MR)
            // Rows past mr read the row's padding or the next channels: computed, never stored.
            update_du<MR, NV>(d, du + (r * C + c0) * j.kp + g * G, j.kp, std::min(MR, C - c0), first, [&](auto* acc) {
              tile_pixels<MR, NV, true>(d, v + (xi * tiles + t0) * crow + c0, crow, z + (xi * tiles + t0) * kz + g * G,
                                        kz, nt, G, acc);
            });
      }
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
  const std::size_t tiles = patches.grid.tiles(sh.n), slot_size = detail::winograd_grad_slot_size(sh, M);
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

HWY_EXPORT(winograd_backward_weights_f32);
HWY_EXPORT(winograd_backward_weights_f64);

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
