// The permutation between odyssey's channels-last activations and PyTorch's flatten order.
//
// torch.flatten(x, 1) of an NCHW tensor orders each image's features channel-major
// (feature k*HW + p is channel k at pixel p); odyssey keeps x [N,H*W,C] with c contiguous.
// A Linear layer after a spatial feature map needs PyTorch's order for its weights to be
// PyTorch's.
#pragma once
#include <cstddef>

namespace odyssey::kernels {

/// y[n][k*hw + p] = x[n][p*c + k]: x [N,HW,C] -> y [N,C*HW] (overwritten).
void flatten_nhwc_to_nchw(std::size_t n, std::size_t c, std::size_t hw, const float* x, float* y);
void flatten_nhwc_to_nchw(std::size_t n, std::size_t c, std::size_t hw, const double* x, double* y);

/// The inverse, for backward: dx[n][p*c + k] = dy[n][k*hw + p] (overwritten).
void unflatten_nchw_to_nhwc(std::size_t n, std::size_t c, std::size_t hw, const float* dy, float* dx);
void unflatten_nchw_to_nhwc(std::size_t n, std::size_t c, std::size_t hw, const double* dy, double* dx);

}  // namespace odyssey::kernels
