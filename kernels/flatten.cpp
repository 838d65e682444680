// The channels-last <-> PyTorch flatten permutation: a per-image transpose of a [HW][C]
// matrix. A permutation moves bytes and computes nothing, so this is plain C++ (no SIMD
// dispatch); what matters is the access pattern. Parallel over images.
#include "odyssey/kernels/flatten.h"

#include <algorithm>
#include <cstddef>

#include "common.h"

namespace odyssey::kernels {
namespace {

/// Tile edge of the blocked transpose: a 32 x 32 tile of doubles is 8 KiB read and 8 KiB
/// written, well inside L1 (32-48 KiB on this machine kind). The strided side of the
/// transpose then uses every cache line it brings in for all 32 columns of the tile, where an
/// untiled loop over a large image fetches a line per element and finds it evicted by the
/// time the next column wants it.
constexpr std::size_t kTile = 32;

/// out[k*rows + r] = in[r*cols + k] for r < rows, k < cols (one image).
template <class T>
void transpose(const T* in, std::size_t rows, std::size_t cols, T* out) {
  for (std::size_t r0 = 0; r0 < rows; r0 += kTile)
    for (std::size_t k0 = 0; k0 < cols; k0 += kTile) {
      const std::size_t r1 = std::min(rows, r0 + kTile), k1 = std::min(cols, k0 + kTile);
      for (std::size_t k = k0; k < k1; ++k)
        for (std::size_t r = r0; r < r1; ++r) out[k * rows + r] = in[r * cols + k];
    }
}

template <class T>
void transpose_images(std::size_t n, std::size_t rows, std::size_t cols, const T* in, T* out) {
  const std::size_t size = rows * cols;
  detail::parallel_items(n, [&](std::size_t i) { transpose(in + i * size, rows, cols, out + i * size); });
}

}  // namespace

void flatten_nhwc_to_nchw(std::size_t n, std::size_t c, std::size_t hw, const float* x, float* y) {
  transpose_images(n, hw, c, x, y);
}
void flatten_nhwc_to_nchw(std::size_t n, std::size_t c, std::size_t hw, const double* x, double* y) {
  transpose_images(n, hw, c, x, y);
}
void unflatten_nchw_to_nhwc(std::size_t n, std::size_t c, std::size_t hw, const float* dy, float* dx) {
  transpose_images(n, c, hw, dy, dx);
}
void unflatten_nchw_to_nhwc(std::size_t n, std::size_t c, std::size_t hw, const double* dy, double* dx) {
  transpose_images(n, c, hw, dy, dx);
}

}  // namespace odyssey::kernels
