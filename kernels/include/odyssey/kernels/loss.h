// Softmax cross-entropy over logits [N,K] with integer labels [N], mean over the batch, as
// PyTorch's CrossEntropyLoss(label_smoothing=e): the target distribution is
// q = (1-e) * onehot(label) + e/K, and loss_n = logsumexp(z_n) - sum_k q_k z_nk.
#pragma once
#include <cstddef>
#include <cstdint>

namespace odyssey::kernels {

struct LossStats {
  double loss = 0;          // mean over the batch
  std::size_t correct = 0;  // samples whose largest logit (first, on ties) is the label
};

/// Computes the loss and fills probs [N,K] with the softmax. Labels outside [0, K) throw
/// std::invalid_argument naming the sample.
LossStats softmax_cross_entropy_forward(std::size_t n, std::size_t k, const float* logits,
                                        const std::int32_t* labels, double label_smoothing,
                                        float* probs);
LossStats softmax_cross_entropy_forward(std::size_t n, std::size_t k, const double* logits,
                                        const std::int32_t* labels, double label_smoothing,
                                        double* probs);

/// dlogits = (probs - q) / D (overwritten), D = mean_over, or n when 0: the gradient of the
/// mean loss over D samples, of which these n are a part (a shard of a data-parallel batch).
void softmax_cross_entropy_backward(std::size_t n, std::size_t k, const float* probs,
                                    const std::int32_t* labels, double label_smoothing,
                                    float* dlogits, std::size_t mean_over = 0);
void softmax_cross_entropy_backward(std::size_t n, std::size_t k, const double* probs,
                                    const std::int32_t* labels, double label_smoothing,
                                    double* dlogits, std::size_t mean_over = 0);

}  // namespace odyssey::kernels
