// SoftmaxCrossEntropy: the mean cross-entropy of logits against integer labels, with
// optional label smoothing, as PyTorch's nn.CrossEntropyLoss.
module;
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
export module odyssey.layers:loss;
import odyssey.tensor;
import odyssey.kernels;
import :context;
import :saved;

export namespace odyssey {

using LossStats = kernels::LossStats;

template <class T, std::size_t Classes>
class SoftmaxCrossEntropy {
 public:
  using value_type = T;
  using input_shape = Shape<Classes>;

  double label_smoothing = 0;

  SoftmaxCrossEntropy() = default;
  explicit SoftmaxCrossEntropy(double smoothing) : label_smoothing(smoothing) {}

  /// Loss (mean over the batch) and the number of correct predictions. Keeps the softmax
  /// and a view of the labels for backward. Throws ValueError for a label outside [0, Classes).
  LossStats forward(const Activation<T, input_shape>& logits, std::span<const std::int32_t> labels) {
    if (labels.size() != logits.batch())
      throw ShapeError("SoftmaxCrossEntropy: " + std::to_string(labels.size()) + " labels for a batch of " +
                       std::to_string(logits.batch()));
    probs_.resize(logits.batch());
    labels_ = labels;
    try {
      return kernels::softmax_cross_entropy_forward(logits.batch(), Classes, logits.data(), labels.data(),
                                                    label_smoothing, probs_.data());
    } catch (const std::invalid_argument& e) {
      throw ValueError(e.what());
    }
  }

  /// dlogits = (softmax - target) / N: the gradient of the batch's mean loss; or, with
  /// `mean_over` = D > 0, of the mean over D samples of which this batch is a shard.
  void backward(Activation<T, input_shape>& dlogits, std::size_t mean_over = 0) {
    detail::expect_forward(labels_.data(), labels_.size(), probs_.batch(), "SoftmaxCrossEntropy");
    if (mean_over && mean_over < probs_.batch())
      throw ValueError("SoftmaxCrossEntropy: a mean over " + std::to_string(mean_over) + " samples cannot hold a batch of " +
                       std::to_string(probs_.batch()));
    dlogits.resize(probs_.batch());
    kernels::softmax_cross_entropy_backward(probs_.batch(), Classes, probs_.data(), labels_.data(),
                                            label_smoothing, dlogits.data(), mean_over);
  }

  /// The softmax of the last forward pass: [N, Classes].
  [[nodiscard]] const Activation<T, input_shape>& probabilities() const noexcept { return probs_; }

 private:
  Activation<T, input_shape> probs_;
  std::span<const std::int32_t> labels_;
};

}  // namespace odyssey
