// Element-wise kernels over flat arrays of n elements: ReLU, the residual join (add, and
// add fused with ReLU), gradient accumulation, and the SGD update.
#pragma once
#include <cstddef>

namespace odyssey::kernels {

/// y = max(x, 0)
void relu_forward(std::size_t n, const float* x, float* y);
void relu_forward(std::size_t n, const double* x, double* y);

/// dx = dy where y > 0, else 0 (y is the forward output; dx may alias dy).
void relu_backward(std::size_t n, const float* y, const float* dy, float* dx);
void relu_backward(std::size_t n, const double* y, const double* dy, double* dx);

/// y = a + b
void add_forward(std::size_t n, const float* a, const float* b, float* y);
void add_forward(std::size_t n, const double* a, const double* b, double* y);

/// y = max(a + b, 0); its backward is relu_backward on y, and the gradient goes to both inputs.
void add_relu_forward(std::size_t n, const float* a, const float* b, float* y);
void add_relu_forward(std::size_t n, const double* a, const double* b, double* y);

/// y += x
void accumulate(std::size_t n, const float* x, float* y);
void accumulate(std::size_t n, const double* x, double* y);

/// PyTorch's SGD, for one parameter tensor, with the gradient zeroed after use:
///   g += weight_decay * w;  v = momentum * v + g;
///   w -= lr * (nesterov ? g + momentum * v : v);  g = 0
/// (A zero-initialised v gives PyTorch's first step, where v starts as g.)
struct SgdParams {
  double lr = 0.01;
  double momentum = 0.9;
  double weight_decay = 0;
  bool nesterov = false;
};
void sgd_update(std::size_t n, float* w, float* grad, float* velocity, const SgdParams& p);
void sgd_update(std::size_t n, double* w, double* grad, double* velocity, const SgdParams& p);

}  // namespace odyssey::kernels
