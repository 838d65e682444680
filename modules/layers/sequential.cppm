// Sequential and Chain: layers applied one after another, each link checked at compile time,
// forward, backward and state names derived from the parts.
//
// Sequential names its parts by position, as PyTorch's nn.Sequential ("0.weight",
// "1.running_mean"); a Named part uses its name instead. Chain adds no names of its own: its
// parts' state appears under the chain's prefix, so a Chain of Named parts reads like a
// PyTorch module with attributes (conv1, bn1, layer1, ...).
//
// A BatchNorm2d followed by a ReLU of the same shape runs as one pass (the ReLU inside the
// batch norm's output loop, and its mask inside the batch norm's backward); the ReLU part then
// holds no output of its own. A composition whose last part can absorb a residual join
// (JoinFusable) can too, so Residual fuses a main branch that ends in a batch norm. In
// inference mode a convolution followed by a batch norm runs both (and that ReLU, or a
// Residual's join) in the convolution's output pass (Conv2d::forward_folded).
module;
#include <cstddef>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
export module odyssey.layers:sequential;
import odyssey.tensor;
import :context;
import :state;
import :gradient;
import :concepts;
import :named;
import :activation;

export namespace odyssey {

namespace detail {

template <class L>
struct IsReLU : std::false_type {};
template <class T, ShapeType S>
struct IsReLU<ReLU<T, S>> : std::true_type {};

/// C (a convolution) can run N, the batch norm after it, inside its own pass in inference
/// mode (Conv2d::forward_folded).
template <class C, class N>
concept FoldsNorm =
    Layer<C> && Layer<N> && std::is_same_v<typename C::output_shape, typename N::input_shape> &&
    std::is_same_v<typename N::input_shape, typename N::output_shape> &&
    requires(C& conv, N& norm, const Activation<typename C::value_type, typename C::input_shape>& x,
             const Activation<typename C::value_type, typename C::output_shape>* residual,
             Context<typename C::value_type>& ctx) {
      { conv.forward_folded(x, norm, residual, true, ctx) }
          -> std::same_as<const Activation<typename C::value_type, typename C::output_shape>&>;
    };

/// A part built from the composition's generator when it takes one, else default-built.
template <class L>
L make_part(Rng& rng) {
  if constexpr (std::is_constructible_v<L, Rng&>) return L(rng);
  else return L();
}

enum class PartNames { by_position, inherited };

template <PartNames Names, class... L>
class Composition {
  static_assert(sizeof...(L) >= 1, "a composition needs at least one layer");
  static constexpr bool contracts = (LayerContract<L>::ok && ...);

  using Layers = std::tuple<L...>;
  static constexpr std::size_t count = sizeof...(L);
  template <std::size_t I>
  using layer_t = std::tuple_element_t<I, Layers>;

  static constexpr bool wired = [] {
    if constexpr (!contracts) {
      return false;
    } else {
      return []<std::size_t... I>(std::index_sequence<I...>) {
        return ((LayerWiring<typename layer_t<I>::output_shape, typename layer_t<I + 1>::input_shape,
                             layer_t<I>, layer_t<I + 1>>::ok &&
                 SameScalar<layer_t<I>, layer_t<I + 1>>::ok) &&
                ... && true);
      }(std::make_index_sequence<count - 1>());
    }
  }();
  static_assert(!contracts || wired);

  template <class P>
  static constexpr std::string_view part_name() {
    if constexpr (NamedLayer<P>) return P::name;
    else return {};
  }
  static constexpr std::size_t index_of(std::string_view name) {
    std::size_t i = count;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (void)((part_name<layer_t<I>>() == name ? (i = I, true) : false) || ...);
    }(std::make_index_sequence<count>());
    return i;
  }

  /// Part I is a ReLU that runs inside part I-1 (a JoinFusable layer of the same shape).
  template <std::size_t I>
  static constexpr bool fused_relu = [] {
    if constexpr (I == 0) {
      return false;
    } else {
      return IsReLU<layer_t<I>>::value && JoinFusable<layer_t<I - 1>> &&
             std::is_same_v<typename layer_t<I>::input_shape, typename layer_t<I - 1>::output_shape>;
    }
  }();

  /// Part I is a convolution and part I+1 a batch norm it can run inside itself in
  /// inference mode.
  template <std::size_t I>
  static constexpr bool folds_norm = [] {
    if constexpr (I + 1 >= count) {
      return false;
    } else {
      return FoldsNorm<layer_t<I>, layer_t<I + 1>>;
    }
  }();

  /// Parts I and I+1 (both before End) run as one.
  template <std::size_t I, std::size_t End>
  static constexpr bool fuses_next() {
    if constexpr (I + 1 < End) return fused_relu<I + 1>;
    else return false;
  }

 public:
  using value_type = typename layer_t<0>::value_type;
  using input_shape = typename layer_t<0>::input_shape;
  using output_shape = typename layer_t<count - 1>::output_shape;
  using T = value_type;

  Composition() = default;
  /// Each part initialised from `rng` (those that take one), first to last.
  explicit Composition(Rng& rng) : layers_{make_part<L>(rng)...} {}

  /// Part I.
  template <std::size_t I>
  [[nodiscard]] layer_t<I>& get() noexcept {
    return std::get<I>(layers_);
  }
  template <std::size_t I>
  [[nodiscard]] const layer_t<I>& get() const noexcept {
    return std::get<I>(layers_);
  }
  /// Calls f(part) for each part, first to last.
  template <class F>
  void for_each_part(F&& f) {
    std::apply([&](auto&... part) { (f(part), ...); }, layers_);
  }
  /// The last part.
  [[nodiscard]] layer_t<count - 1>& last_part() noexcept { return std::get<count - 1>(layers_); }

  /// The part Named<Name, ...>: net.get<"conv1">().
  template <FixedString Name>
  [[nodiscard]] auto& get() noexcept {
    constexpr std::size_t i = index_of(Name.view());
    static_assert(i < count, "get<\"name\">: the composition has no part of that name");
    return std::get<i>(layers_);
  }

  const Activation<T, output_shape>& forward(const Activation<T, input_shape>& x, Context<T>& ctx) {
    return forward_from<0, count>(x, ctx);
  }

  /// Backward through every part, last to first. The gradients between parts live in two
  /// scratch buffers used alternately.
  void backward(const Activation<T, output_shape>& dy, Grad<T, input_shape> dx, Context<T>& ctx) {
    auto a = ctx.scratch.take();
    auto b = ctx.scratch.take();
    backward_from<count - 1>(dy, dx, ctx, a, b);
  }

  /// Join hooks, when the last part has them: every part but the last as in forward, then the
  /// last with the join.
  const Activation<T, output_shape>& forward_join(const Activation<T, input_shape>& x,
                                                  const Activation<T, output_shape>* residual, bool relu,
                                                  Context<T>& ctx)
    requires JoinFusable<layer_t<count - 1>> && (!fused_relu<count - 1>)
  {
    if constexpr (count >= 2) {
      if constexpr (folds_norm<count - 2>) {
        if (ctx.mode == Mode::inference) {
          auto& norm = std::get<count - 1>(layers_);
          if constexpr (count == 2) {
            return std::get<0>(layers_).forward_folded(x, norm, residual, relu, ctx);
          } else {
            return std::get<count - 2>(layers_).forward_folded(forward_from<0, count - 2>(x, ctx), norm, residual,
                                                               relu, ctx);
          }
        }
      }
    }
    if constexpr (count == 1) {
      return std::get<0>(layers_).forward_join(x, residual, relu, ctx);
    } else {
      return std::get<count - 1>(layers_).forward_join(forward_from<0, count - 1>(x, ctx), residual, relu, ctx);
    }
  }
  void backward_join(const Activation<T, output_shape>& dy, Grad<T, input_shape> dx,
                     Activation<T, output_shape>* djoin, bool relu, Context<T>& ctx)
    requires JoinFusable<layer_t<count - 1>> && (!fused_relu<count - 1>)
  {
    if constexpr (count == 1) {
      std::get<0>(layers_).backward_join(dy, dx, djoin, relu, ctx);
    } else {
      auto a = ctx.scratch.take();
      auto b = ctx.scratch.take();
      auto g = a.template view<typename layer_t<count - 1>::input_shape>(dy.batch());
      std::get<count - 1>(layers_).backward_join(dy, &g, djoin, relu, ctx);
      backward_from<count - 2>(g, dx, ctx, b, a);
    }
  }

  template <class F>
  void visit_state(const std::string& prefix, F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (visit_part<I>(prefix, f), ...);
    }(std::make_index_sequence<count>());
  }

 private:
  template <std::size_t I, class F>
  void visit_part(const std::string& prefix, F& f) {
    if constexpr (Names == PartNames::by_position && !NamedLayer<layer_t<I>>) {
      std::get<I>(layers_).visit_state(state_name(prefix, std::to_string(I)), f);
    } else {
      std::get<I>(layers_).visit_state(prefix, f);
    }
  }

  /// Parts [I, End) forward; returns part End-1's output.
  template <std::size_t I, std::size_t End, class X>
  const auto& forward_from(const X& x, Context<T>& ctx) {
    if constexpr (I + 1 < End && folds_norm<I>) {
      // In inference mode a convolution runs the batch norm after it (and that norm's ReLU)
      // in its own output pass.
      if (ctx.mode == Mode::inference) {
        constexpr bool relu = fuses_next<I + 1, End>();
        constexpr std::size_t next = I + (relu ? 3 : 2);
        const auto& y = std::get<I>(layers_).forward_folded(x, std::get<I + 1>(layers_), nullptr, relu, ctx);
        if constexpr (next == End) return y;
        else return forward_from<next, End>(y, ctx);
      }
    }
    if constexpr (fuses_next<I, End>()) {
      const auto& y = std::get<I>(layers_).forward_join(x, nullptr, true, ctx);
      if constexpr (I + 2 == End) return y;
      else return forward_from<I + 2, End>(y, ctx);
    } else {
      const auto& y = std::get<I>(layers_).forward(x, ctx);
      if constexpr (I + 1 == End) return y;
      else return forward_from<I + 1, End>(y, ctx);
    }
  }

  /// Parts I, I-1, ..., 0 backward from dy (the gradient of part I's output).
  template <std::size_t I, class DY>
  void backward_from(const DY& dy, Grad<T, input_shape> dx, Context<T>& ctx, typename Scratch<T>::Slot& a,
                     typename Scratch<T>::Slot& b) {
    if constexpr (fused_relu<I>) {
      // Part I is the ReLU inside part I-1: dy is the gradient of their joint output.
      if constexpr (I == 1) {
        std::get<0>(layers_).backward_join(dy, dx, nullptr, true, ctx);
      } else {
        auto g = a.template view<typename layer_t<I - 1>::input_shape>(dy.batch());
        std::get<I - 1>(layers_).backward_join(dy, &g, nullptr, true, ctx);
        backward_from<I - 2>(g, dx, ctx, b, a);
      }
    } else if constexpr (I == 0) {
      std::get<0>(layers_).backward(dy, dx, ctx);
    } else {
      auto g = a.template view<typename layer_t<I>::input_shape>(dy.batch());
      std::get<I>(layers_).backward(dy, &g, ctx);
      backward_from<I - 1>(g, dx, ctx, b, a);
    }
  }

  Layers layers_;
};

}  // namespace detail

/// Layers in order, named by position as in nn.Sequential. Every link's output shape must be
/// the next part's input shape: a mismatch fails to compile with a `layer wiring:` diagnostic
/// naming both shapes and both layers. A part that is not a layer fails with `layer contract:`.
template <class... L>
class Sequential : public detail::Composition<detail::PartNames::by_position, L...> {
  using Base = detail::Composition<detail::PartNames::by_position, L...>;

 public:
  using Base::Base;
};

/// Layers in order, adding no names: the parts' state appears under the chain's own prefix
/// (so its parts are usually Named).
template <class... L>
class Chain : public detail::Composition<detail::PartNames::inherited, L...> {
  using Base = detail::Composition<detail::PartNames::inherited, L...>;

 public:
  using Base::Base;
};

}  // namespace odyssey
