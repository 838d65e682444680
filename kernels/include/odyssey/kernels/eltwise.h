// Element-wise kernels over flat arrays of n elements: ReLU, the residual join (add, and
// add fused with ReLU), gradient accumulation, dropout, and the SGD and AdamW updates.
#pragma once
#include <cstddef>
#include <cstdint>

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

/// Inverted dropout with a counter-based mask: element i's fate depends only on
/// (seed, stream, i), never on the thread count, the SIMD target or how the array is split,
/// so a run is reproducible and backward can recompute or reuse the mask. Use a different
/// stream (or seed) per layer and per step. The hash, in 64-bit unsigned arithmetic:
///   mix(z)  = SplitMix64's finaliser: z ^= z >> 30; z *= 0xBF58476D1CE4E5B9;
///             z ^= z >> 27; z *= 0x94D049BB133111EB; z ^= z >> 31
///   G       = 0x9E3779B97F4A7C15 (SplitMix64's increment)
///   key     = mix(seed ^ mix(stream + G))
///   bits(i) = mix(key + (i + 1) * G)      (output i of a SplitMix64 generator seeded with key)
///   u(i)    = (bits(i) >> 11) * 2^-53     (uniform in [0, 1))
///   keep(i) = u(i) >= p
struct DropoutParams {
  double p;  // drop probability, in [0, 1)
  std::uint64_t seed;
  std::uint64_t stream;
};

/// y = keep ? x / (1 - p) : 0 and mask[i] = keep (1 or 0); y may alias x. p == 0 gives y = x and
/// a mask of ones. Throws std::invalid_argument unless 0 <= p < 1.
void dropout_forward(std::size_t n, const float* x, float* y, std::uint8_t* mask, const DropoutParams& p);
void dropout_forward(std::size_t n, const double* x, double* y, std::uint8_t* mask, const DropoutParams& p);

/// dx = mask ? dy / (1 - p) : 0 (overwritten; dx may alias dy; a nonzero mask byte is kept).
/// Throws std::invalid_argument unless 0 <= p < 1.
void dropout_backward(std::size_t n, const float* dy, const std::uint8_t* mask, double p, float* dx);
void dropout_backward(std::size_t n, const double* dy, const std::uint8_t* mask, double p, double* dx);

/// torch.optim.AdamW (PyTorch 1.13, amsgrad off, single-tensor path) for one parameter
/// tensor, with the gradient zeroed after use:
///   w *= 1 - lr * weight_decay
///   m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g * g
///   w -= (lr / (1 - beta1^step)) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps);  g = 0
/// m and v start at zero; step is the 1-based count of this update (PyTorch's state "step"
/// after its increment). Throws std::invalid_argument for step < 1, a negative lr, eps or
/// weight_decay, or a beta outside [0, 1), as torch.optim.AdamW does.
struct AdamWParams {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.01;
  std::int64_t step = 1;
};
void adamw_update(std::size_t n, float* w, float* grad, float* exp_avg, float* exp_avg_sq, const AdamWParams& p);
void adamw_update(std::size_t n, double* w, double* grad, double* exp_avg, double* exp_avg_sq,
                  const AdamWParams& p);

}  // namespace odyssey::kernels
