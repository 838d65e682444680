// Average pooling on channels-last activations.
//
// Global: x [N,H*W,C] -> y [N,C], y = mean over the H*W pixels.
// Windowed (no padding, as ResNet variants use it): x [N,H,W,C] -> y [N,P,Q,C],
//   P = (H - kernel)/stride + 1, each output the mean of its kernel x kernel window.
#pragma once
#include <cstddef>

namespace odyssey::kernels {

void global_avgpool_forward(std::size_t n, std::size_t hw, std::size_t c, const float* x, float* y);
void global_avgpool_forward(std::size_t n, std::size_t hw, std::size_t c, const double* x, double* y);

/// dx[n][p][c] = dy[n][c] / hw (overwritten).
void global_avgpool_backward(std::size_t n, std::size_t hw, std::size_t c, const float* dy, float* dx);
void global_avgpool_backward(std::size_t n, std::size_t hw, std::size_t c, const double* dy, double* dx);

struct Pool2dShape {
  std::size_t n, c, h, w;
  std::size_t kernel, stride;
  [[nodiscard]] constexpr std::size_t p() const { return (h - kernel) / stride + 1; }
  [[nodiscard]] constexpr std::size_t q() const { return (w - kernel) / stride + 1; }
};

void avgpool2d_forward(const Pool2dShape& shape, const float* x, float* y);
void avgpool2d_forward(const Pool2dShape& shape, const double* x, double* y);

/// dx (overwritten) gathers, for each input pixel, dy/(kernel^2) of every window holding it,
/// in window order, so overlapping windows give the same sum for any thread count.
void avgpool2d_backward(const Pool2dShape& shape, const float* dy, float* dx);
void avgpool2d_backward(const Pool2dShape& shape, const double* dy, double* dx);

}  // namespace odyssey::kernels
