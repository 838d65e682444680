// Fully connected layer, as PyTorch's Linear.
//   x: [N,I]   w: [O,I] (PyTorch's layout)   b: [O]   y: [N,O]
//   y = x w^T + b
#pragma once
#include <cstddef>

namespace odyssey::kernels {

void linear_forward(std::size_t n, std::size_t in, std::size_t out, const float* x, const float* w,
                    const float* b, float* y);
void linear_forward(std::size_t n, std::size_t in, std::size_t out, const double* x,
                    const double* w, const double* b, double* y);

/// dx = dy w (overwritten).
void linear_backward_data(std::size_t n, std::size_t in, std::size_t out, const float* dy,
                          const float* w, float* dx);
void linear_backward_data(std::size_t n, std::size_t in, std::size_t out, const double* dy,
                          const double* w, double* dx);

/// dw += dy^T x, db += sum over the batch of dy (db may be null); sums in batch order.
void linear_backward_weights(std::size_t n, std::size_t in, std::size_t out, const float* x,
                             const float* dy, float* dw, float* db);
void linear_backward_weights(std::size_t n, std::size_t in, std::size_t out, const double* x,
                             const double* dy, double* dw, double* db);

}  // namespace odyssey::kernels
