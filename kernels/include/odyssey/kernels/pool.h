// Pooling on channels-last activations.
//
// Global average: x [N,H*W,C] -> y [N,C], y = mean over the H*W pixels.
// Windowed average (no padding, as ResNet variants use it): x [N,H,W,C] -> y [N,P,Q,C],
//   P = (H - kernel)/stride + 1, each output the mean of its kernel x kernel window.
// Max (PyTorch's F.max_pool2d, padding counted as -inf): x [N,H,W,C] -> y [N,P,Q,C],
//   P = (H + 2*pad - kernel)/stride + 1, each output the largest element of its window.
#pragma once
#include <cstddef>
#include <cstdint>

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

struct MaxPool2dShape {
  std::size_t n, c, h, w;
  std::size_t kernel, stride, pad;
  [[nodiscard]] constexpr std::size_t p() const { return (h + 2 * pad - kernel) / stride + 1; }
  [[nodiscard]] constexpr std::size_t q() const { return (w + 2 * pad - kernel) / stride + 1; }
  [[nodiscard]] constexpr std::size_t x_size() const { return n * h * w * c; }
  [[nodiscard]] constexpr std::size_t y_size() const { return n * p() * q() * c; }
};

/// y[n][p][q][c] = max of x[n][ih][iw][c] over the window's pixels inside the image, and
/// argmax[n][p][q][c] = ih * w + iw of the element chosen (the index PyTorch returns). Ties go
/// to the first element in row-major window order; a NaN wins over any number, as in
/// PyTorch's CPU kernel (`val > max || isnan(val)`), so NaNs propagate.
/// Throws std::invalid_argument unless kernel >= 1, stride >= 1, pad <= kernel/2, the padded
/// input is at least kernel wide and high, and h*w fits an int32.
void maxpool2d_forward(const MaxPool2dShape& shape, const float* x, float* y, std::int32_t* argmax);
void maxpool2d_forward(const MaxPool2dShape& shape, const double* x, double* y, std::int32_t* argmax);

/// dx (overwritten) = for each input pixel, the sum of dy over the outputs whose argmax is
/// that pixel (zero if none), added in output (row-major window) order: the same sums for any
/// thread count.
void maxpool2d_backward(const MaxPool2dShape& shape, const float* dy, const std::int32_t* argmax, float* dx);
void maxpool2d_backward(const MaxPool2dShape& shape, const double* dy, const std::int32_t* argmax, double* dx);

}  // namespace odyssey::kernels
