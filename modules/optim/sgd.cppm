// Stochastic gradient descent with momentum, as torch.optim.SGD (dampening 0), over a
// network's trainable state entries. Weight decay applies to entries that decay (conv and
// linear weights) unless told to apply it to all. Two parameter groups: the weights, and the
// rest (biases, batch-norm parameters), whose learning rate is scaled by norm_lr_scale.
module;
#include <cstddef>
#include <string>
#include <vector>
export module odyssey.optim:sgd;
import odyssey.tensor;
import odyssey.kernels;
import odyssey.layers;
import :optimizer;

export namespace odyssey {

struct SgdOptions {
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool nesterov = false;
  bool decay_all = false;  // also decay biases and batch-norm parameters
  double norm_lr_scale = 1;  // learning-rate factor of biases and batch-norm parameters
};

template <class T>
class Sgd final : public Optimizer<T> {
 public:
  /// Takes the trainable entries of `entries` (others are ignored); one zeroed velocity
  /// buffer per parameter.
  Sgd(std::vector<StateEntry<T>> entries, SgdOptions options) : options_(options) {
    for (auto& e : entries)
      if (e.trainable()) {
        velocity_.emplace_back(e.value.size());
        params_.push_back(std::move(e));
      }
  }

  /// One update of every parameter at learning rate `lr`; zeroes the gradients.
  void step(double lr) override {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto& p = params_[i];
      const kernels::SgdParams sp{p.decays() ? lr : lr * options_.norm_lr_scale, options_.momentum,
                                  (options_.decay_all || p.decays()) ? options_.weight_decay : 0.0,
                                  options_.nesterov};
      kernels::sgd_update(p.value.size(), p.value.data(), p.grad.data(), velocity_[i].data(), sp);
    }
  }

  [[nodiscard]] const SgdOptions& options() const noexcept { return options_; }
  [[nodiscard]] const std::vector<StateEntry<T>>& parameters() const noexcept { return params_; }

  /// The momentum buffers, named after their parameters ("momentum.<name>"), for checkpoints.
  [[nodiscard]] std::vector<StateEntry<T>> state() override {
    std::vector<StateEntry<T>> out;
    for (std::size_t i = 0; i < params_.size(); ++i)
      out.push_back({"momentum." + params_[i].name, StateKind::momentum, params_[i].shape,
                     velocity_[i].span(), {}, nullptr});
    return out;
  }

 private:
  SgdOptions options_;
  std::vector<StateEntry<T>> params_;
  std::vector<AlignedBuffer<T>> velocity_;
};

}  // namespace odyssey
