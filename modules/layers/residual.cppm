// Residual: y = join(main(x) + shortcut(x)), with the join an add followed by a ReLU (the
// original ResNet block) or a plain add (pre-activation blocks). Forward, backward and state
// names come from the two branches: the main branch's state first, then the shortcut's, both
// under the residual's own prefix (name the shortcut, e.g. Named<"shortcut", Sequential<...>>).
//
// Backward follows the layer contract's rule: both branches add into the same input-gradient
// sink, main first, so the shortcut's contribution is an addition (or, for a convolution, the
// accumulating form of its backward-data kernel: no extra pass).
//
// When the main branch can absorb the join (it ends in a BatchNorm2d), the add and the ReLU
// run inside the batch norm's output pass and its backward; otherwise the join is a pass of
// its own. The choice is the composition's, invisible in the user's type.
module;
#include <cstddef>
#include <string>
#include <type_traits>
export module odyssey.layers:residual;
import odyssey.tensor;
import odyssey.kernels;
import :context;
import :state;
import :gradient;
import :saved;
import :concepts;
import :activation;

export namespace odyssey {

namespace detail {
struct NoOutput {};
}  // namespace detail

/// What follows the sum of the two branches.
enum class Join { add, add_relu };

template <class Main, class Shortcut = Identity<typename Main::value_type, typename Main::input_shape>,
          Join J = Join::add_relu>
class Residual {
  static constexpr bool contracts = LayerContract<Main>::ok && LayerContract<Shortcut>::ok;
  static constexpr bool wired = [] {
    if constexpr (!contracts) {
      return false;
    } else {
      // Both branches read the block's input and produce its output.
      return LayerWiring<typename Main::input_shape, typename Shortcut::input_shape, Main, Shortcut>::ok &&
             LayerWiring<typename Main::output_shape, typename Shortcut::output_shape, Main, Shortcut>::ok &&
             SameScalar<Main, Shortcut>::ok;
    }
  }();
  static_assert(!contracts || wired);
  static constexpr bool relu = J == Join::add_relu;
  static constexpr bool fused = JoinFusable<Main>;

 public:
  using value_type = typename Main::value_type;
  using input_shape = typename Main::input_shape;
  using output_shape = typename Main::output_shape;
  using T = value_type;

  Main main;
  Shortcut shortcut;

  Residual() = default;
  /// The main branch initialised from `rng` first, then the shortcut.
  explicit Residual(Rng& rng) : main(make(rng, main_tag{})), shortcut(make(rng, shortcut_tag{})) {}

  /// Calls f(main), then f(shortcut).
  template <class F>
  void for_each_part(F&& f) {
    f(main);
    f(shortcut);
  }

  const Activation<T, output_shape>& forward(const Activation<T, input_shape>& x, Context<T>& ctx) {
    if constexpr (fused) {
      const auto& s = shortcut.forward(x, ctx);
      return main.forward_join(x, &s, relu, ctx);
    } else {
      const auto& m = main.forward(x, ctx);
      const auto& s = shortcut.forward(x, ctx);
      s.expect_batch(m.batch(), "Residual shortcut");
      y_.resize(m.batch());
      if constexpr (relu) kernels::add_relu_forward(m.size(), m.data(), s.data(), y_.data());
      else kernels::add_forward(m.size(), m.data(), s.data(), y_.data());
      return y_;
    }
  }

  /// The join's gradient (dy, masked by the ReLU when there is one) goes to both branches;
  /// each adds its input gradient into dx.
  void backward(const Activation<T, output_shape>& dy, Grad<T, input_shape> dx, Context<T>& ctx) {
    const std::size_t n = dy.batch();
    auto slot = ctx.scratch.take();
    if constexpr (fused && relu) {
      auto g = slot.template view<output_shape>(n);
      main.backward_join(dy, dx, &g, true, ctx);
      shortcut.backward(g, dx.then(), ctx);
    } else if constexpr (fused) {
      main.backward_join(dy, dx, nullptr, false, ctx);
      shortcut.backward(dy, dx.then(), ctx);
    } else if constexpr (relu) {
      detail::expect_forward(y_.batch() ? &y_ : nullptr, y_.batch(), n, "Residual");
      auto g = slot.template view<output_shape>(n);
      kernels::relu_backward(dy.size(), y_.data(), dy.data(), g.data());
      main.backward(g, dx, ctx);
      shortcut.backward(g, dx.then(), ctx);
    } else {
      main.backward(dy, dx, ctx);
      shortcut.backward(dy, dx.then(), ctx);
    }
  }

  template <class F>
  void visit_state(const std::string& prefix, F&& f) {
    main.visit_state(prefix, f);
    shortcut.visit_state(prefix, f);
  }

 private:
  struct main_tag {};
  struct shortcut_tag {};
  template <class Tag>
  static auto make(Rng& rng, Tag) {
    using L = std::conditional_t<std::is_same_v<Tag, main_tag>, Main, Shortcut>;
    if constexpr (std::is_constructible_v<L, Rng&>) return L(rng);
    else return L();
  }

  [[no_unique_address]] std::conditional_t<fused, detail::NoOutput, Activation<T, output_shape>> y_;
};

}  // namespace odyssey
