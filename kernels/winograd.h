// Winograd convolution, F(2x2, 3x3) and F(4x4, 3x3): the entry points conv.cpp dispatches
// to for 3x3 stride-1 layers, and the workspace they need. Internal to the kernels library.
#pragma once
#include <cstddef>

#include "common.h"
#include "odyssey/kernels/conv.h"
#include "weight_parts.h"

namespace odyssey::kernels::detail {

// Workspace layout, the same for every SIMD target (sized for the largest of them).
// Forward and backward-data (len source channels, outs output channels, xi = (M+2)^2 = 16
// for F(2x2, 3x3) and 36 for F(4x4, 3x3), 81 for the stride-2 forms; U rows us = xi, or 36
// for the stride-2 forms):
//   U: transformed weights [groups][us][len][group width], round_up(outs, 64) * us * len
//   bias: round_up(outs, 64); a row of winograd_row(len) zeros
//   kWinogradSlots slots of: transformed input [block tiles][xi][row], then the GEMM
//   results, [xi][block tiles][group width] (when one group's transformed weights exceed
//   kWinogradGroupWeightsL2 bytes) or [xi][rows * group width] of one register tile.
constexpr std::size_t kWinogradMaxGroup = 64;
constexpr std::size_t kWinogradMaxTile = 384;
/// Transformed-input elements per block: 48 Ki (192 KiB of float) keeps a block's input in
/// L2 next to the weights while every output-channel group passes over it.
constexpr std::size_t kWinogradBlockBudget = 288 * 1024;

/// Elements per transformed-input row of `len` channels (whole 64-byte lines).
constexpr std::size_t winograd_row(std::size_t len) { return round_up(len, 16); }
/// `n` elements (a multiple of 16) rounded up to an odd number of 64-byte lines of float.
/// Transforms store a tile's XI values a fixed stride apart, all in one burst, and the output
/// transforms read them back so; at an even number of lines the stride puts them in a few of
/// L1's 64 sets (F(4x4, 3x3) at 512 channels: 32 lines, 2 sets; 128 tiles x 512 channels in
/// the whole path, or F(2x2, 3x3)'s weight-gradient sub-chunk of 64 tiles x 64 channels: one
/// set) and nearly every access misses. An odd number of lines is coprime with the 64 sets.
constexpr std::size_t winograd_odd_lines(std::size_t n) { return n / 16 % 2 == 0 ? n + 16 : n; }
/// Row stride of a block's transformed input [tile][xi][row] (forward and backward-data).
constexpr std::size_t winograd_block_row(std::size_t len) { return winograd_odd_lines(winograd_row(len)); }
/// Tiles per block: a multiple of 12 (so of every target's register-tile rows), 12 to 96.
constexpr std::size_t winograd_max_block_tiles(std::size_t len, std::size_t xi) {
  const std::size_t t = kWinogradBlockBudget / (xi * winograd_block_row(len)) / 12 * 12;
  return t < 12 ? 12 : (t > 96 ? 96 : t);
}
/// The most tiles of a block that streams its weights (xi_outer, below), and so of any block.
constexpr std::size_t kWinogradOuterTiles = 96;
constexpr std::size_t winograd_slot_size(std::size_t len, std::size_t xi) {
  const std::size_t t = kWinogradOuterTiles, one_tile = xi * kWinogradMaxTile;
  const std::size_t block = xi * winograd_odd_lines(t * kWinogradMaxGroup);
  return round_up(t * xi * winograd_block_row(len) + (block > one_tile ? block : one_tile), 16);
}
/// Above this many bytes of transformed weights per output-channel group (xi x len x group
/// width), forward and backward-data take one xi at a time over a block rather than one
/// register tile at a time through all xi.
constexpr std::size_t kWinogradGroupWeightsL2 = 256 * 1024;

/// Worker loops of one call, each with its own scratch slot in the workspace; a call uses
/// min(kWinogradSlots, threads of the task arena) of them. 64, so a 64-core server keeps
/// every core busy; the workspace is allocated uninitialised, so slots no thread uses never
/// become resident (2 threads touch 2 of them). Which loop runs which item never changes a
/// result, so the algorithm and the arithmetic do not depend on the thread count.
constexpr std::size_t kWinogradSlots = 64;

/// 3x3 kernel, stride 1, padding at most 2 (backward-data runs as a forward convolution
/// with padding 2 - pad).
constexpr bool winograd_applies(const Conv2dShape& sh) {
  return sh.r == 3 && sh.s == 3 && sh.stride == 1 && sh.pad <= 2;
}
/// 3x3 kernel, stride 2, padding at most 2: all three passes by the stride-2 forms
/// (winograd.cpp), with 4x4 output tiles only.
constexpr bool winograd_stride2_applies(const Conv2dShape& sh) {
  return sh.r == 3 && sh.s == 3 && sh.stride == 2 && sh.pad <= 2;
}

// Weight gradient with MxM tiles (XI = (M+2)^2 = 16 or 36 products per tile, each its own U
// row; the stride-2 form 81 products into 36 U rows): winograd_weight_parts(sh, M) partial
// dU [36 or 16][C][round_up(K, 64)] (one per part of the tiles, weight_parts.h), a zero
// row, then kWinogradSlots slots of one task's transformed input [XI][sub-chunk tiles][row]
// and output gradient [XI][sub-chunk tiles][64] for a sub-chunk of
// winograd_grad_sub_tiles(M, stride) tiles. A task owns 64 output channels (kWinogradMaxGroup) on every target: one register
// group on AVX-512, four on AVX2, which share the task's input transform (with a task per
// 16-channel register group AVX2 transformed every input patch K/16 times: 1.5-1.7x slower).
//
// The sub-chunk trades the transforms' footprint (XI values per tile and channel, which
// should stay in L2 for the GEMMs that read them) against reloading the task's dU
// accumulators once per sub-chunk. Measured for F(2x2, 3x3) at batch 128 (ms, layers
// 1/2/3/4): sub-chunks sized to 4 MiB of transforms 28.6/20.0/18.6/20.5 (layer 1's spill out
// of L2), to 192 KiB 21.3/18.2/18.2/32.2 (layer 4 reloads 2 MiB of dU every 5 tiles), 32
// tiles for every layer 23.7/17.4/18.2/20.2. After the weight-gradient parts (model-167
// Xeon, AVX3): 16 tiles 22.4/44.2/36.3/36.2, 32 22.5/29.4/26.4/28.0, 64 20.8/22.7/20.1/23.8,
// 96 22.4/23.8/22.9/28.9, 128 22.3/23.7/23.5/27.0; AVX2 32 72.8/60.9/63.1/71.4, 48
// 63.1/57.6/59.1/73.0, 64 63.7/56.6/61.4/64.8. F(4x4, 3x3) keeps about the same footprint
// (XI x tiles: 36 x 28 against 16 x 64). The stride-2 form (81 products into 36 U rows)
// takes 24 tiles: after the odd-line strides (winograd_odd_lines), Zen 3 AVX2 batch 128, ms
// l2_down / l3_down, medians of 6 alternating rounds: 6 tiles about 40 / 37, 12 34.0 / 34.6,
// 18 35.3 / 33.4, 24 30.1 / 28.7. For the stride-1 forms the sub-chunk never changes a sum
// (the accumulators carry over). A stride-2 U row of several products (EO, OE, OO) adds each
// product's tiles of one sub-chunk in turn, so there the sub-chunk sets the order of the
// additions: the rounding, not the math (the tile counts are constants, so the order still
// depends on the shape only). `make train` on Zen 3 read 90.40% at 12 tiles, 90.22% at 24.
constexpr std::size_t kWinogradGradSubTiles = 64, kWinogradGradSubTiles4 = 28, kWinogradGradSubTilesS2 = 24;
/// A weight gradient with one part (weight_parts.h) whose transforms of every tile, input
/// [XI][tiles][row] and output gradient [XI][tiles][round_up(K, 64)], take at most this many
/// elements (48 MiB of float) transforms them all once, then runs each U row's GEMMs over all
/// the tiles, 64 output channels per task, in blocks of tiles whose V stays in L2 (the
/// accumulators go to dU between blocks): layers 3 and 4 of ResNet-18 at batch 128, where
/// a reduction of 128-512 tiles beside a dU of 4-16 MiB made the sub-chunked tasks reload
/// dU every sub-chunk and transform each input patch once per 64 output channels. The
/// sums run over the tiles in the same order either way, so the result is the same.
constexpr std::size_t kWinogradWholeBudget = 12 * 1024 * 1024;
/// Products per tile and channel pair of the weight gradient's form: (m+2)^2 for stride 1, 81
/// for the stride-2 form (whose 36 U rows make the same partial size as F(4x4, 3x3)'s).
constexpr std::size_t winograd_weight_xi(const Conv2dShape& sh, std::size_t m) {
  return sh.stride == 2 ? 81 : (m + 2) * (m + 2);
}
/// Row strides of the whole path's transforms, input [XI][tiles][winograd_whole_row(C)] and
/// output gradient [XI][tiles][winograd_whole_row(round_up(K, 64))]: whole 64-byte lines, one
/// more where the row is a multiple of 512 bytes (C or K of 128, 256, 512). A GEMM walks one
/// xi's tiles at that stride, 6 channels per tile; at 1-2 KB the tiles' lines fell into 2-4 of
/// L1's 64 sets and missed on every pass, and one extra line spreads them over all 64.
constexpr std::size_t winograd_whole_row(std::size_t len) {
  const std::size_t row = round_up(len, 16);
  return row % 128 == 0 ? row + 16 : row;
}
constexpr std::size_t winograd_whole_size(const Conv2dShape& sh, std::size_t m) {
  return winograd_weight_xi(sh, m) * winograd_tiles(sh, m) *
         (winograd_whole_row(sh.c) + winograd_whole_row(round_up(sh.k, kWinogradMaxGroup)));
}
constexpr bool winograd_weights_whole(const Conv2dShape& sh, std::size_t m) {
  return winograd_weight_parts(sh, m) == 1 && winograd_whole_size(sh, m) <= kWinogradWholeBudget;
}

/// Forward and backward-data run "whole" where the transformed weights (xi x len x outs)
/// exceed this many elements (16 MiB of float; ResNet-18's layer 4 with F(4x4, 3x3) has 37.7 MB)
/// and the transforms of every tile fit kWinogradWholeBudget: first every tile's input
/// transform V [xi][tiles][row], then each (xi, output group)'s GEMM over all the tiles into M
/// [groups][xi][tiles][G], then the output transforms. The blocks would each stream all of the
/// weights from memory (layer 4 at batch 128: four blocks, 151 MB); here they are read once,
/// and the work splits into xi x groups items, not into blocks of which two threads get 3 and
/// 1 or 2 and 2 of unequal size. Each output's sums are the ones the blocks compute, in the
/// same order, so the results are the same either way.
constexpr std::size_t kWinogradWholeRunWeights = 4 * 1024 * 1024;
/// `us`: the transformed weights per channel pair (xi, or 36 for the stride-2 form).
constexpr std::size_t winograd_run_whole_size(std::size_t len, std::size_t outs, std::size_t tiles, std::size_t xi,
                                              std::size_t us) {
  const std::size_t u = us * len * round_up(outs, kWinogradMaxGroup);
  // v [xi][tiles][row] and m [groups][xi][tiles][G], each xi an odd number of lines apart
  const std::size_t size = xi * (winograd_odd_lines(tiles * winograd_block_row(len)) + tiles * round_up(outs, kWinogradMaxGroup) +
                                 16 * ceil_div(outs, 16));
  return u > kWinogradWholeRunWeights && size <= kWinogradWholeBudget ? size : 0;
}

/// ConvAlgorithm::automatic's weight gradient takes F(4x4, 3x3) where 4x4 tiles x channels
/// (min(C, K)) reach this (conv2d_automatic_weight_algorithm): F(4x4, 3x3) saves GEMM work,
/// which per transformed value grows with the channels, and costs a dU 2.25x larger, which
/// the tiles amortise. Measured at batch 128 (ms, F(2x2, 3x3) -> F(4x4, 3x3), model-167
/// Xeon, sub-chunked tasks): AVX3 layer 1 (8192 tiles x 64) 21.2 -> 14.0, layer 2 (2048 x
/// 128) 22.9 -> 17.3, layer 3 (512 x 256) 22.2 -> 20.4, layer 4 (128 x 512) 27.6 -> 28.3;
/// AVX2 39.3 -> 23.0, 39.0 -> 26.5, 39.9 -> 29.5, 47.9 -> 51.0. With the whole-transform
/// path (model-207 Xeon, medians of 3) layer 4 went F(4x4, 3x3)'s way: AVX3 28.4 -> 24.7,
/// AVX2 53.8 -> 40.5; at batch 32 layer 3 at 7x7 (128 x 256) AVX3 5.5 -> 6.3 (AVX2 11.9 ->
/// 9.0), layer 4 at 4x4 (32 x 512) 10.0 -> 15.2 and 15.7 -> 20.1; Fashion-MNIST's layer 1
/// (1568 x 64) 3.9 -> 3.1 and 7.0 -> 4.9 (model 167). That is the AVX-512 threshold.
constexpr std::size_t kWinogradWeightWork4 = 65536;
/// AVX2 (and the emulated targets) take F(4x4, 3x3) from half as much work: on Zen 3 (AVX2,
/// perf/README.md v17, two runs each, ms F(2x2, 3x3) -> F(4x4, 3x3)) layer 3 at batch 32
/// (128 4x4 tiles x 256: 8x8 10.5, 11.0 -> 5.9, 7.1; 7x7 10.8 -> 6.5) and layer 4 at batch 64
/// (64 x 512: 20.6, 22.3 -> 16.3, 17.2) are faster with F(4x4, 3x3), layer 4 at batch 32
/// (32 x 512: 10.3, 9.9 -> 12.2, 12.3) slower. The model-207 Xeon's AVX2 agreed at 7x7 (11.9
/// -> 9.0) where its AVX3 did not (5.5 -> 6.3).
constexpr std::size_t kWinogradWeightWork4Avx2 = 32768;
constexpr std::size_t winograd_grad_sub_tiles(std::size_t m, std::size_t stride) {
  return stride == 2 ? kWinogradGradSubTilesS2 : m == 4 ? kWinogradGradSubTiles4 : kWinogradGradSubTiles;
}
/// One weight-gradient task's slot for `sh`'s form with MxM tiles (the transforms of
/// a sub-chunk, each xi an odd number of lines apart); + kWinogradMaxTile: the last register
/// tile of channels may read past the rows.
constexpr std::size_t winograd_grad_slot_size(const Conv2dShape& sh, std::size_t m) {
  const std::size_t tiles = winograd_grad_sub_tiles(m, sh.stride);
  return round_up(winograd_weight_xi(sh, m) * (winograd_odd_lines(tiles * winograd_row(sh.c)) +
                                               winograd_odd_lines(tiles * kWinogradMaxGroup)) +
                      kWinogradMaxTile,
                  16);
}

/// The Winograd output tile a forward or backward-data call with `algorithm` runs for `sh`:
/// 2 (F(2x2, 3x3)), 4 (F(4x4, 3x3), or the stride-2 forms) or 0 (the direct convolution); automatic: what
/// conv2d_automatic_algorithm says. Throws std::invalid_argument when Winograd is asked for
/// and does not apply.
std::size_t winograd_tile(const Conv2dShape& sh, ConvAlgorithm algorithm);
/// The same for the weight gradient, which automatic chooses by its own rule
/// (conv2d_automatic_weight_algorithm).
std::size_t winograd_weight_tile(const Conv2dShape& sh, ConvAlgorithm algorithm);

/// Elements (of the scalar type) every Winograd pass needs for `sh`, with either tile (for
/// stride 2: the forward pass of the stride-2 form).
std::size_t winograd_workspace_size(const Conv2dShape& sh);

/// Forward and backward-data with output tiles of m x m (2 or 4); with stride 2 they run
/// the stride-2 forms (m = 4). With `prepared` (winograd_prepare_weights, same m), the
/// forward pass reads its transformed weights from there instead of transforming w.
void winograd_forward(const Conv2dShape& sh, std::size_t m, const float* x, const float* w,
                      const float* bias, float* y, float* ws, const ConvEpilogue<float>* epilogue = nullptr,
                      const float* prepared = nullptr);
void winograd_forward(const Conv2dShape& sh, std::size_t m, const double* x, const double* w,
                      const double* bias, double* y, double* ws, const ConvEpilogue<double>* epilogue = nullptr,
                      const double* prepared = nullptr);
/// The forward pass's transformed weights of w with tile m: [K rounded up to the target's
/// group][U rows][C] x group, as winograd_forward computes them at the start of its workspace.
void winograd_prepare_weights(const Conv2dShape& sh, std::size_t m, const float* w, float* u);
void winograd_prepare_weights(const Conv2dShape& sh, std::size_t m, const double* w, double* u);
void winograd_backward_data(const Conv2dShape& sh, std::size_t m, const float* dy, const float* w,
                            float* dx, float* ws, bool accumulate);
void winograd_backward_data(const Conv2dShape& sh, std::size_t m, const double* dy, const double* w,
                            double* dx, double* ws, bool accumulate);
void winograd_backward_weights(const Conv2dShape& sh, std::size_t m, const float* x, const float* dy,
                               float* dw, float* db, float* ws);
void winograd_backward_weights(const Conv2dShape& sh, std::size_t m, const double* x, const double* dy,
                               double* dw, double* db, double* ws);

}  // namespace odyssey::kernels::detail
