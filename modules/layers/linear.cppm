// Linear: y = x w^T + b, as PyTorch's nn.Linear (weight [Out, In], Kaiming-uniform init,
// bias uniform in +-1/sqrt(In)).
module;
#include <cstddef>
#include <string>
#include <type_traits>
export module odyssey.layers:linear;
import odyssey.tensor;
import odyssey.kernels;
import :context;
import :state;
import :gradient;
import :saved;
import :conv;  // detail::NoBias

export namespace odyssey {

/// x: [N, In] -> y: [N, Out].
template <class T, std::size_t In, std::size_t Out, bool HasBias = true>
class Linear {
 public:
  using value_type = T;
  using input_shape = Shape<In>;
  using output_shape = Shape<Out>;
  using weight_shape = Shape<Out, In>;

  Parameter<T, weight_shape> weight;
  [[no_unique_address]] std::conditional_t<HasBias, Parameter<T, Shape<Out>>, detail::NoBias> bias;

  Linear() = default;
  explicit Linear(Rng& rng) { reset_parameters(rng); }

  void reset_parameters(Rng& rng) {
    kaiming_uniform(weight.value, rng);
    if constexpr (HasBias) bias_uniform(bias.value, In, rng);
  }

  const Activation<T, output_shape>& forward(const Activation<T, input_shape>& x, Context<T>& ctx) {
    y_.resize(x.batch());
    const T* b = nullptr;
    if constexpr (HasBias) b = bias.value.data();
    kernels::linear_forward(x.batch(), In, Out, x.data(), weight.value.data(), b, y_.data());
    if (ctx.mode == Mode::training) x_.save(x);
    else x_.clear();
    return y_;
  }

  /// Adds the weight (and bias) gradients, and the input gradient into dx.
  void backward(const Activation<T, output_shape>& dy, Grad<T, input_shape> dx, Context<T>& ctx) {
    const auto& x = x_.get(dy.batch(), "Linear");
    T* db = nullptr;
    if constexpr (HasBias) db = bias.grad.data();
    kernels::linear_backward_weights(dy.batch(), In, Out, x.data(), dy.data(), weight.grad.data(), db);
    ctx.gradient_ready(weight.grad.span());
    if constexpr (HasBias) ctx.gradient_ready(bias.grad.span());
    dx.add_written(dy.batch(), ctx, [&](T* out) {
      kernels::linear_backward_data(dy.batch(), In, Out, dy.data(), weight.value.data(), out);
    });
  }

  template <class F>
  void visit_state(const std::string& prefix, F&& f) {
    f(weight.entry(state_name(prefix, "weight"), StateKind::weight));
    if constexpr (HasBias) f(bias.entry(state_name(prefix, "bias"), StateKind::bias));
  }

 private:
  Activation<T, output_shape> y_;
  detail::SavedInput<T, input_shape> x_;
};

}  // namespace odyssey
