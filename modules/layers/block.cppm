// BasicBlock: ResNet's two-convolution residual block.
//   y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
// The ReLUs and the residual join run inside the batch norms' output passes.
// conv1 is 3x3 with the block's stride, conv2 3x3 stride 1, both without bias. The shortcut
// is the identity, or, when the stride or the channel count changes, a 1x1 strided conv and
// a batch norm (PyTorch names: shortcut.0, shortcut.1).
module;
#include <cstddef>
#include <string>
#include <type_traits>
export module odyssey.layers:block;
import odyssey.tensor;
import odyssey.kernels;
import :context;
import :state;
import :conv;
import :batchnorm;

export namespace odyssey {

template <class T, ImageShape In, std::size_t OutC, std::size_t Stride = 1>
class BasicBlock {
 public:
  static constexpr std::size_t in_channels = In::extents[0];
  static constexpr bool projection = Stride != 1 || in_channels != OutC;
  using value_type = T;
  using input_shape = In;
  using output_shape = ConvOutput<In, OutC, 3, Stride, 1>;
  using Out = output_shape;

  struct Projection {
    Conv2d<T, In, OutC, 1, Stride, 0> conv;
    BatchNorm2d<T, Out> bn;
  };
  struct Identity {};

  Conv2d<T, In, OutC, 3, Stride, 1> conv1;
  BatchNorm2d<T, Out, Post::relu> bn1;
  Conv2d<T, Out, OutC, 3, 1, 1> conv2;
  BatchNorm2d<T, Out, Post::add_relu> bn2;  // relu(bn2(.) + shortcut)
  [[no_unique_address]] std::conditional_t<projection, Projection, Identity> shortcut;

  // The internal links, checked like any composition.
  static_assert(LayerWiring<typename decltype(conv1)::output_shape, typename decltype(bn1)::input_shape>::ok);
  static_assert(LayerWiring<typename decltype(bn1)::output_shape, typename decltype(conv2)::input_shape>::ok);
  static_assert(LayerWiring<typename decltype(conv2)::output_shape, typename decltype(bn2)::input_shape>::ok);

  BasicBlock() = default;
  explicit BasicBlock(Rng& rng) : conv1(rng), conv2(rng) {
    if constexpr (projection) shortcut.conv.reset_parameters(rng);
  }

  const Activation<T, Out>& forward(const Activation<T, In>& x, Context<T>& ctx) {
    const auto& r1 = bn1.forward(conv1.forward(x, ctx), ctx);
    const auto& c2 = conv2.forward(r1, ctx);
    if constexpr (projection) {
      return bn2.forward(c2, shortcut.bn.forward(shortcut.conv.forward(x, ctx), ctx), ctx);
    } else {
      return bn2.forward(c2, x, ctx);
    }
  }

  /// dx = the main branch's input gradient plus the shortcut's (overwritten); null to skip.
  void backward(const Activation<T, Out>& dy, Activation<T, In>* dx, Context<T>& ctx) {
    auto sg = ctx.scratch.take();
    auto st = ctx.scratch.take();
    auto su = ctx.scratch.take();
    const std::size_t n = dy.batch();
    auto g = sg.template view<Out>(n);  // gradient at the join, shared by both branches
    auto t = st.template view<Out>(n);
    auto u = su.template view<Out>(n);
    bn2.backward(dy, t, g, ctx);
    conv2.backward(t, &u, ctx);
    bn1.backward(u, &u, ctx);
    conv1.backward(u, dx, ctx);
    if constexpr (projection) {
      shortcut.bn.backward(g, &t, ctx);
      shortcut.conv.backward(t, dx, ctx, /*accumulate=*/true);
    } else {
      if (dx) kernels::accumulate(g.size(), g.data(), dx->data());
    }
  }

  [[nodiscard]] const Activation<T, Out>& output() const noexcept { return bn2.output(); }

  template <class F>
  void visit_state(const std::string& prefix, F&& f) {
    conv1.visit_state(state_name(prefix, "conv1"), f);
    bn1.visit_state(state_name(prefix, "bn1"), f);
    conv2.visit_state(state_name(prefix, "conv2"), f);
    bn2.visit_state(state_name(prefix, "bn2"), f);
    if constexpr (projection) {
      shortcut.conv.visit_state(state_name(prefix, "shortcut.0"), f);
      shortcut.bn.visit_state(state_name(prefix, "shortcut.1"), f);
    }
  }
};

}  // namespace odyssey
