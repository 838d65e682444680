// How the weight gradients split their reduction so that their tasks balance on any thread
// count without the result depending on it. Internal to the kernels library; the same for
// every SIMD target, so the workspace sizes (computed once) and the kernels agree.
#pragma once
#include <cstddef>

#include "common.h"
#include "odyssey/kernels/conv.h"

namespace odyssey::kernels::detail {

/// Weight gradients split the reduction over pixels (or Winograd tiles) into this many
/// contiguous parts, each summed by its own tasks into its own partial result; the partials
/// are then added in part order. The count depends on the shape only (never on the thread
/// count, nor on the SIMD target's tile width), so the arithmetic is the same on any machine
/// with the same target:
///   enough parts for kWeightItems tasks with 64-channel output groups (2 threads balance,
///   and a server's cores find work, where one task per output group gave layer 1 one or
///   two tasks);
///   at least `min_units` of reduction per part (whole chunks of it), and
///   partials of at most a quarter of the pass's input and output-gradient elements (their
///   extra writes and reads stay a small share of its memory traffic).
/// `units`: pixels (direct) or tiles (Winograd) of the reduction; `partial`: elements of one
/// partial result; `streamed`: elements of x plus dy.
constexpr std::size_t kWeightItems = 16;
constexpr std::size_t weight_parts(std::size_t k, std::size_t units, std::size_t min_units, std::size_t partial,
                                   std::size_t streamed) {
  const std::size_t want = ceil_div(kWeightItems, ceil_div(k, 64));
  const std::size_t by_units = units / min_units, by_bytes = streamed / (4 * partial);
  std::size_t parts = want < by_units ? want : by_units;
  parts = parts < by_bytes ? parts : by_bytes;
  return parts > 0 ? parts : 1;
}

/// [begin, end) of part `p` of `parts` contiguous parts of [0, count).
constexpr std::size_t part_begin(std::size_t count, std::size_t p, std::size_t parts) { return count * p / parts; }

/// partials[i] += partials[p * stride + i] for p = 1, 2, ..., parts - 1 in that order, for
/// every i < n: the parts' results summed into the first, in parallel over blocks of
/// contiguous elements (a pass the compiler vectorises; reading the partials in the order
/// the result is written out instead strides a cache line per element and cost layer 3's
/// downsampling weight gradient 25%).
template <class T>
void sum_parts(T* partials, std::size_t n, std::size_t parts, std::size_t stride) {
  if (parts < 2) return;
  constexpr std::size_t kBlock = 4096;
  parallel_items(ceil_div(n, kBlock), [&](std::size_t b) {
    T* out = partials + b * kBlock;
    const std::size_t len = n - b * kBlock < kBlock ? n - b * kBlock : kBlock;
    for (std::size_t p = 1; p < parts; ++p) {
      const T* src = out + p * stride;
      for (std::size_t i = 0; i < len; ++i) out[i] += src[i];
    }
  });
}

/// Parts of the direct weight gradient (over output rows n*P; at least 512 pixels each) and
/// the elements of one part's partial result ([R*S][C][K rounded up to 64]).
constexpr std::size_t conv_weight_partial_size(const Conv2dShape& sh) {
  return sh.r * sh.s * sh.c * round_up(sh.k, 64);
}
/// After the parts' results: a 1x1 convolution without padding packs the x pixels it reads,
/// [channel tile][pixels][rows] (conv_weights.cpp), rows 4 or 6 per target, so round_up(C, 12)
/// channels per pixel. Sized for every target; AVX-512 targets pack only where the pixels lie
/// 1 KB or more apart and otherwise never touch it.
constexpr std::size_t conv_weight_packed_x_size(const Conv2dShape& sh) {
  return sh.r == 1 && sh.s == 1 && sh.pad == 0 ? sh.n * sh.p() * sh.q() * round_up(sh.c, 12) : 0;
}
constexpr std::size_t conv_weight_parts(const Conv2dShape& sh) {
  const std::size_t rows_min = sh.q() >= 512 ? 1 : ceil_div(512, sh.q());
  return weight_parts(sh.k, sh.n * sh.p(), rows_min, conv_weight_partial_size(sh),
                      sh.n * (sh.h * sh.w * sh.c + sh.p() * sh.q() * sh.k));
}

/// Parts of the Winograd weight gradient with MxM output tiles (m = 2 or 4; over its tiles, at
/// least 64 each) and the elements of one part's dU ([(m+2)^2][C][K rounded up to 64]).
constexpr std::size_t winograd_weight_partial_size(const Conv2dShape& sh, std::size_t m) {
  return (m + 2) * (m + 2) * sh.c * round_up(sh.k, 64);
}
/// MxM output tiles of a batch (partial tiles at the right and bottom edges count).
constexpr std::size_t winograd_tiles(const Conv2dShape& sh, std::size_t m) {
  return sh.n * ceil_div(sh.p(), m) * ceil_div(sh.q(), m);
}
constexpr std::size_t winograd_weight_parts(const Conv2dShape& sh, std::size_t m) {
  return weight_parts(sh.k, winograd_tiles(sh, m), 64, winograd_weight_partial_size(sh, m),
                      sh.n * (sh.h * sh.w * sh.c + sh.p() * sh.q() * sh.k));
}

}  // namespace odyssey::kernels::detail
