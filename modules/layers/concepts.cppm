// What makes a type a layer, for compositions and for users writing their own.
module;
#include <concepts>
#include <string>
export module odyssey.layers:concepts;
import odyssey.tensor;
import :context;

export namespace odyssey {

/// A single-input layer: typed shapes, forward returning its own output, backward writing
/// the input gradient (or skipping it when given null).
template <class L>
concept Layer = requires(L& layer, const Activation<typename L::value_type, typename L::input_shape>& x,
                         const Activation<typename L::value_type, typename L::output_shape>& dy,
                         Activation<typename L::value_type, typename L::input_shape>* dx,
                         Context<typename L::value_type>& ctx) {
  requires ShapeType<typename L::input_shape>;
  requires ShapeType<typename L::output_shape>;
  { layer.forward(x, ctx) } -> std::same_as<const Activation<typename L::value_type, typename L::output_shape>&>;
  layer.backward(dy, dx, ctx);
};

}  // namespace odyssey
