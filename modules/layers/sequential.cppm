// Sequential: layers applied one after another, each link checked at compile time.
module;
#include <cstddef>
#include <string>
#include <tuple>
#include <utility>
export module odyssey.layers:sequential;
import odyssey.tensor;
import :context;
import :state;

export namespace odyssey {

/// A chain of layers. Every link's output shape must be the next layer's input shape: a
/// mismatch fails to compile with a `layer wiring:` diagnostic naming both shapes and both
/// layers. State names are the layers' indices ("0.weight", "1.running_mean", ...), as in
/// PyTorch's nn.Sequential.
template <class... L>
  requires(sizeof...(L) >= 1)
class Sequential {
  using Layers = std::tuple<L...>;
  static constexpr std::size_t count = sizeof...(L);
  template <std::size_t I>
  using layer_t = std::tuple_element_t<I, Layers>;

  static constexpr bool wired = []<std::size_t... I>(std::index_sequence<I...>) {
    return (LayerWiring<typename layer_t<I>::output_shape, typename layer_t<I + 1>::input_shape,
                        layer_t<I>, layer_t<I + 1>>::ok &&
            ... && true);
  }(std::make_index_sequence<count - 1>());
  static_assert(wired);

 public:
  using value_type = typename layer_t<0>::value_type;
  using input_shape = typename layer_t<0>::input_shape;
  using output_shape = typename layer_t<count - 1>::output_shape;
  using T = value_type;

  Sequential() = default;
  /// Each layer initialised from `rng`, first to last.
  explicit Sequential(Rng& rng) : layers_{L(rng)...} {}

  template <std::size_t I>
  [[nodiscard]] layer_t<I>& get() noexcept {
    return std::get<I>(layers_);
  }

  const Activation<T, output_shape>& forward(const Activation<T, input_shape>& x, Context<T>& ctx) {
    return forward_from<0>(x, ctx);
  }

  /// Backward through every layer; the gradients between layers live in two scratch
  /// buffers used alternately. dx may be null when the input needs no gradient.
  void backward(const Activation<T, output_shape>& dy, Activation<T, input_shape>* dx, Context<T>& ctx) {
    auto a = ctx.scratch.take();
    auto b = ctx.scratch.take();
    backward_from<count - 1>(dy, dx, ctx, a, b);
  }

  [[nodiscard]] const Activation<T, output_shape>& output() const noexcept {
    return std::get<count - 1>(layers_).output();
  }

  template <class F>
  void visit_state(const std::string& prefix, F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (std::get<I>(layers_).visit_state(state_name(prefix, std::to_string(I)), f), ...);
    }(std::make_index_sequence<count>());
  }

 private:
  template <std::size_t I, class X>
  const Activation<T, output_shape>& forward_from(const X& x, Context<T>& ctx) {
    const auto& y = std::get<I>(layers_).forward(x, ctx);
    if constexpr (I + 1 == count) {
      return y;
    } else {
      return forward_from<I + 1>(y, ctx);
    }
  }

  template <std::size_t I, class DY>
  void backward_from(const DY& dy, Activation<T, input_shape>* dx, Context<T>& ctx,
                     typename Scratch<T>::Slot& a, typename Scratch<T>::Slot& b) {
    if constexpr (I == 0) {
      std::get<0>(layers_).backward(dy, dx, ctx);
    } else {
      auto g = a.template view<typename layer_t<I>::input_shape>(dy.batch());
      std::get<I>(layers_).backward(dy, &g, ctx);
      backward_from<I - 1>(g, dx, ctx, b, a);
    }
  }

  Layers layers_;
};

}  // namespace odyssey
