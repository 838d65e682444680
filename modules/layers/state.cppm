// Parameters, their gradients, and the named state of a network, enumerated with PyTorch's
// names and layouts so a state dict moves between odyssey and PyTorch unchanged.
module;
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>
export module odyssey.layers:state;
import odyssey.tensor;

export namespace odyssey {

/// What a state entry is. Only `weight` (conv and linear weights) gets weight decay by
/// default, as in the usual CIFAR recipes: not biases, not batch-norm parameters. `momentum`
/// marks an optimizer's velocity buffer in a checkpoint.
enum class StateKind { weight, bias, norm_weight, norm_bias, running_mean, running_var, counter, momentum };

/// One named tensor of a network's state: a trainable parameter (with its gradient), a
/// running statistic, or the int64 batch counter of a batch-norm layer.
template <class T>
struct StateEntry {
  std::string name;
  StateKind kind;
  std::vector<std::size_t> shape;  // PyTorch's; empty for a scalar
  std::span<T> value;              // empty for the counter
  std::span<T> grad;               // non-empty for trainable parameters
  std::int64_t* counter = nullptr;

  [[nodiscard]] bool trainable() const noexcept { return !grad.empty(); }
  [[nodiscard]] bool decays() const noexcept { return kind == StateKind::weight; }
  [[nodiscard]] std::size_t size() const noexcept { return counter ? 1 : value.size(); }
};

/// A trainable tensor and its gradient. Backward passes add to `grad`; the optimizer's
/// step reads it and zeroes it.
template <class T, ShapeType S>
struct Parameter {
  Tensor<T, S> value;
  Tensor<T, S> grad;

  [[nodiscard]] StateEntry<T> entry(std::string name, StateKind kind) {
    return {std::move(name), kind, std::vector<std::size_t>(S::extents.begin(), S::extents.end()),
            value.span(), grad.span(), nullptr};
  }
};

/// A running statistic (not trained): its entry has no gradient.
template <class T, ShapeType S>
StateEntry<T> buffer_entry(std::string name, StateKind kind, Tensor<T, S>& t) {
  return {std::move(name), kind, std::vector<std::size_t>(S::extents.begin(), S::extents.end()),
          t.span(), {}, nullptr};
}

/// "prefix.name", or "name" at the top.
inline std::string state_name(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

}  // namespace odyssey
