// Batch normalisation over channels-last activations, as PyTorch's BatchNorm2d.
//
// Legend: M = N*H*W rows (pixels), C channels; x, y, dy, dx: [M,C]; gamma, beta, means,
// variances: [C].
//   training:  mean = sum(x)/M, var = sum((x-mean)^2)/M (biased), rstd = 1/sqrt(var+eps),
//              y = (x-mean)*rstd*gamma + beta; running_mean/var move by `momentum` towards
//              mean and the unbiased var*M/(M-1); mean and rstd are saved for backward.
//   inference: y = (x-running_mean)/sqrt(running_var+eps)*gamma + beta.
// Backward (training) is the full chain rule through mean and variance:
//   dx = gamma*rstd * (dy - sum(dy)/M - xhat*sum(dy*xhat)/M),  xhat = (x-mean)*rstd
// and dgamma += sum(dy*xhat), dbeta += sum(dy) in both modes.
// Sums run over fixed chunks of rows combined in a fixed order (in double), so results do
// not depend on the thread count.
// The forward passes can finish ResNet's blocks in the same pass over memory: with
// `residual` (same shape as y) y = bn(x) + residual, and with `relu` y = max(., 0).
#pragma once
#include <cstddef>

namespace odyssey::kernels {

struct BatchNormShape {
  std::size_t m;  // rows: batch * height * width
  std::size_t c;  // channels
};

/// Elements of double-precision scratch (64-byte aligned) the batchnorm functions need.
std::size_t batchnorm_workspace_size(const BatchNormShape& shape);

/// Training-mode forward. Throws std::invalid_argument when m == 1 (no variance to
/// estimate, as PyTorch).
void batchnorm_forward_training(const BatchNormShape& shape, const float* x, const float* gamma,
                                const float* beta, float* y, float* save_mean, float* save_rstd,
                                float* running_mean, float* running_var, double momentum,
                                double eps, double* workspace, const float* residual = nullptr,
                                bool relu = false);
void batchnorm_forward_training(const BatchNormShape& shape, const double* x,
                                const double* gamma, const double* beta, double* y,
                                double* save_mean, double* save_rstd, double* running_mean,
                                double* running_var, double momentum, double eps,
                                double* workspace, const double* residual = nullptr,
                                bool relu = false);

void batchnorm_forward_inference(const BatchNormShape& shape, const float* x, const float* gamma,
                                 const float* beta, const float* running_mean,
                                 const float* running_var, double eps, float* y,
                                 const float* residual = nullptr, bool relu = false);
void batchnorm_forward_inference(const BatchNormShape& shape, const double* x,
                                 const double* gamma, const double* beta,
                                 const double* running_mean, const double* running_var,
                                 double eps, double* y, const double* residual = nullptr,
                                 bool relu = false);

/// Training-mode backward from the saved mean and rstd. dx is overwritten (it may be dy:
/// the pass is in place safe); dgamma and dbeta are accumulated.
void batchnorm_backward_training(const BatchNormShape& shape, const float* x, const float* dy,
                                 const float* gamma, const float* save_mean,
                                 const float* save_rstd, float* dx, float* dgamma, float* dbeta,
                                 double* workspace);
void batchnorm_backward_training(const BatchNormShape& shape, const double* x, const double* dy,
                                 const double* gamma, const double* save_mean,
                                 const double* save_rstd, double* dx, double* dgamma,
                                 double* dbeta, double* workspace);

/// Inference-mode backward: dx = dy*gamma/sqrt(running_var+eps) (overwritten; may be dy).
void batchnorm_backward_inference(const BatchNormShape& shape, const float* x, const float* dy,
                                  const float* gamma, const float* running_mean,
                                  const float* running_var, double eps, float* dx, float* dgamma,
                                  float* dbeta, double* workspace);
void batchnorm_backward_inference(const BatchNormShape& shape, const double* x, const double* dy,
                                  const double* gamma, const double* running_mean,
                                  const double* running_var, double eps, double* dx,
                                  double* dgamma, double* dbeta, double* workspace);

/// The training-mode passes in halves, for batch norm over the shards of a data-parallel
/// batch (SyncBatchNorm): each process computes its shard's moments, the caller merges them
/// over the processes, and every process normalises its shard with the merged statistics;
/// backward alike with the per-channel sums. Over one process, moments then
/// forward_with_moments (count = m) is batchnorm_forward_training bit for bit, and
/// gradient_sums then backward_with_sums (count = m) its backward.
///
/// out[0, C): the per-channel mean of x over its m rows; out[C, 2C): the sum of squared
/// deviations from it (M2). m may be 1.
void batchnorm_moments(const BatchNormShape& shape, const float* x, double* out, double* workspace);
void batchnorm_moments(const BatchNormShape& shape, const double* x, double* out, double* workspace);
/// The training forward pass of x with `stats` (mean, M2 as above) over `count` rows in all.
void batchnorm_forward_with_moments(const BatchNormShape& shape, const float* x, const float* gamma,
                                    const float* beta, float* y, float* save_mean, float* save_rstd,
                                    float* running_mean, float* running_var, double momentum, double eps,
                                    const double* stats, double count, const float* residual = nullptr,
                                    bool relu = false);
void batchnorm_forward_with_moments(const BatchNormShape& shape, const double* x, const double* gamma,
                                    const double* beta, double* y, double* save_mean, double* save_rstd,
                                    double* running_mean, double* running_var, double momentum, double eps,
                                    const double* stats, double count, const double* residual = nullptr,
                                    bool relu = false);
/// out[0, C): sum(dy); out[C, 2C): sum(dy * (x - save_mean)) over this shard's rows. dgamma
/// is out[C + c] * save_rstd[c] and dbeta out[c], summed over the processes' shards.
void batchnorm_gradient_sums(const BatchNormShape& shape, const float* x, const float* dy,
                             const float* save_mean, double* out, double* workspace);
void batchnorm_gradient_sums(const BatchNormShape& shape, const double* x, const double* dy,
                             const double* save_mean, double* out, double* workspace);
/// dx (overwritten; may be dy) from `sums` (as gradient_sums') over `count` rows in all.
void batchnorm_backward_with_sums(const BatchNormShape& shape, const float* x, const float* dy,
                                  const float* gamma, const float* save_mean, const float* save_rstd,
                                  const double* sums, double count, float* dx);
void batchnorm_backward_with_sums(const BatchNormShape& shape, const double* x, const double* dy,
                                  const double* gamma, const double* save_mean, const double* save_rstd,
                                  const double* sums, double count, double* dx);

}  // namespace odyssey::kernels
