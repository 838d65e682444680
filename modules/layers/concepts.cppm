// The layer contract: what every layer, every composition and every model satisfies, and what
// every composition, the trainer, evaluation, prediction and the weight functions require.
//
//   value_type, input_shape, output_shape        the scalar type and the typed sample shapes
//   forward(x, ctx) -> const Activation<T, output_shape>&
//                                                 the output lives in the layer until its next
//                                                 forward; a layer may keep a pointer to x for
//                                                 backward (the caller keeps x alive and
//                                                 unchanged until then; debug builds check it)
//   backward(dy, dx, ctx)                         adds the parameters' gradients, and ADDS the
//                                                 input gradient into the sink dx (Grad<T,
//                                                 input_shape>: empty, holding, or not wanted)
//   visit_state(prefix, f)                        calls f(StateEntry<T>) for every parameter,
//                                                 running statistic and counter, named under
//                                                 prefix, in PyTorch's state_dict order
module;
#include <concepts>
#include <string>
export module odyssey.layers:concepts;
import odyssey.tensor;
import :context;
import :state;
import :gradient;

export namespace odyssey {

namespace detail {

/// What visit_state's callback is called with, for checking the contract.
template <class T>
struct StateVisitor {
  void operator()(StateEntry<T>) const {}
};

template <class L>
concept HasLayerTypes = requires {
  typename L::value_type;
  typename L::input_shape;
  typename L::output_shape;
} && ShapeType<typename L::input_shape> && ShapeType<typename L::output_shape>;

template <class L>
concept HasForward = HasLayerTypes<L> &&
    requires(L& layer, const Activation<typename L::value_type, typename L::input_shape>& x,
             Context<typename L::value_type>& ctx) {
      { layer.forward(x, ctx) } -> std::same_as<const Activation<typename L::value_type, typename L::output_shape>&>;
    };

template <class L>
concept HasBackward = HasLayerTypes<L> &&
    requires(L& layer, const Activation<typename L::value_type, typename L::output_shape>& dy,
             Grad<typename L::value_type, typename L::input_shape> dx, Context<typename L::value_type>& ctx) {
      layer.backward(dy, dx, ctx);
    };

template <class L>
concept HasVisitState = HasLayerTypes<L> &&
    requires(L& layer, const std::string& prefix, StateVisitor<typename L::value_type>& f) {
      layer.visit_state(prefix, f);
    };

}  // namespace detail

/// A type that satisfies the layer contract above.
template <class L>
concept Layer = detail::HasLayerTypes<L> && detail::HasForward<L> && detail::HasBackward<L> &&
                detail::HasVisitState<L>;

/// A layer whose output can absorb a residual join in the same pass (BatchNorm2d, and
/// compositions that end in one): forward_join(x, residual*, relu, ctx) and
/// backward_join(dy, dx, djoin*, relu, ctx). Compositions use it; users need not.
template <class L>
concept JoinFusable = Layer<L> &&
    requires(L& layer, const Activation<typename L::value_type, typename L::input_shape>& x,
             const Activation<typename L::value_type, typename L::output_shape>& y,
             Activation<typename L::value_type, typename L::output_shape>* join,
             Grad<typename L::value_type, typename L::input_shape> dx, Context<typename L::value_type>& ctx) {
      { layer.forward_join(x, &y, true, ctx) } -> std::same_as<const Activation<typename L::value_type, typename L::output_shape>&>;
      layer.backward_join(y, dx, join, true, ctx);
    };

/// The contract check every composition runs on each of its parts. Naming it for a type that
/// is not a layer fails to compile with a diagnostic that starts "layer contract:" and names
/// the missing member; `ok` is false then, so the composition can skip its other checks.
template <class L>
struct LayerContract {
  static_assert(detail::HasLayerTypes<L>,
                "layer contract: a layer needs member types value_type, input_shape and output_shape "
                "(Shape<...> types)");
  static_assert(!detail::HasLayerTypes<L> || detail::HasForward<L>,
                "layer contract: a layer needs forward(const Activation<value_type, input_shape>&, "
                "Context<value_type>&) returning const Activation<value_type, output_shape>&");
  static_assert(!detail::HasLayerTypes<L> || detail::HasBackward<L>,
                "layer contract: a layer needs backward(const Activation<value_type, output_shape>& dy, "
                "Grad<value_type, input_shape> dx, Context<value_type>&)");
  static_assert(!detail::HasLayerTypes<L> || detail::HasVisitState<L>,
                "layer contract: a layer needs visit_state(const std::string& prefix, F&& f), calling "
                "f(StateEntry<value_type>) for each of its tensors (none for a stateless layer)");
  static constexpr bool ok = Layer<L>;
};

/// The parts of a composition share one scalar type.
template <class A, class B>
struct SameScalar {
  static_assert(std::same_as<typename A::value_type, typename B::value_type>,
                "layer wiring: the layers of a composition must have the same value_type");
  static constexpr bool ok = true;
};

}  // namespace odyssey
