// AdamW, as torch.optim.AdamW (decoupled weight decay, amsgrad off), over a network's
// trainable state entries. Weight decay applies to entries that decay (conv and linear
// weights) unless told to apply it to all, and biases and batch-norm parameters take their
// learning rate times norm_lr_scale, as Sgd does.
module;
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>
export module odyssey.optim:adamw;
import odyssey.tensor;
import odyssey.kernels;
import odyssey.layers;
import :optimizer;

export namespace odyssey {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.01;  // PyTorch's default
  bool decay_all = false;      // also decay biases and batch-norm parameters
  double norm_lr_scale = 1;    // learning-rate factor of biases and batch-norm parameters
};

template <class T>
class AdamW final : public Optimizer<T> {
 public:
  /// Takes the trainable entries of `entries` (others are ignored); zeroed moments.
  AdamW(std::vector<StateEntry<T>> entries, AdamWOptions options) : options_(options) {
    for (auto& e : entries)
      if (e.trainable()) {
        exp_avg_.emplace_back(e.value.size());
        exp_avg_sq_.emplace_back(e.value.size());
        params_.push_back(std::move(e));
      }
  }

  void step(double lr) override {
    ++step_;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto& p = params_[i];
      const kernels::AdamWParams ap{p.decays() ? lr : lr * options_.norm_lr_scale,
                                    options_.beta1, options_.beta2, options_.eps,
                                    (options_.decay_all || p.decays()) ? options_.weight_decay : 0.0, step_};
      kernels::adamw_update(p.value.size(), p.value.data(), p.grad.data(), exp_avg_[i].data(), exp_avg_sq_[i].data(), ap);
    }
  }

  [[nodiscard]] const AdamWOptions& options() const noexcept { return options_; }
  [[nodiscard]] std::int64_t steps() const noexcept { return step_; }

  /// "exp_avg.<name>", "exp_avg_sq.<name>" per parameter (PyTorch's state names), and the step
  /// counter "step".
  [[nodiscard]] std::vector<StateEntry<T>> state() override {
    std::vector<StateEntry<T>> out;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      out.push_back({"exp_avg." + params_[i].name, StateKind::momentum, params_[i].shape, exp_avg_[i].span(), {}, nullptr});
      out.push_back(
          {"exp_avg_sq." + params_[i].name, StateKind::momentum, params_[i].shape, exp_avg_sq_[i].span(), {}, nullptr});
    }
    out.push_back({"step", StateKind::counter, {}, {}, {}, &step_});
    return out;
  }

 private:
  AdamWOptions options_;
  std::vector<StateEntry<T>> params_;
  std::vector<AlignedBuffer<T>> exp_avg_, exp_avg_sq_;
  std::int64_t step_ = 0;
};

}  // namespace odyssey
