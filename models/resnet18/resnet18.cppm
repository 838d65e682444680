// ResNet-18 for small images (the CIFAR variant): a 3x3 stride-1 stem with batch norm and
// ReLU, no max-pool; four stages of two BasicBlocks with Width, 2W, 4W and 8W channels,
// stride 2 at stages 2-4; global average pooling; a linear classifier. With 3 input
// channels, 10 classes and Width 64: 11,173,962 parameters in 62 tensors, 122 state entries.
// Names and layouts are those of the usual PyTorch CIFAR ResNet-18 (conv1, bn1, layer1.0.conv1,
// layer2.0.shortcut.0, linear, ...).
module;
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>
export module odyssey.models.resnet18;
import odyssey.tensor;
import odyssey.layers;

export namespace odyssey::models {

template <class T, std::size_t InChannels, std::size_t H, std::size_t W, std::size_t Classes,
          std::size_t Width = 64>
class ResNet18 {
 public:
  using value_type = T;
  using input_shape = Shape<InChannels, H, W>;
  using output_shape = Shape<Classes>;

  using Stem = Shape<Width, H, W>;
  template <ImageShape In, std::size_t C, std::size_t Stride>
  using Stage = Sequential<BasicBlock<T, In, C, Stride>,
                           BasicBlock<T, ConvOutput<In, C, 3, Stride, 1>, C, 1>>;
  using Stage1 = Stage<Stem, Width, 1>;
  using Stage2 = Stage<typename Stage1::output_shape, 2 * Width, 2>;
  using Stage3 = Stage<typename Stage2::output_shape, 4 * Width, 2>;
  using Stage4 = Stage<typename Stage3::output_shape, 8 * Width, 2>;
  using Features = typename Stage4::output_shape;

  Conv2d<T, input_shape, Width, 3, 1, 1> conv1;
  BatchNorm2d<T, Stem, Post::relu> bn1;
  Stage1 layer1;
  Stage2 layer2;
  Stage3 layer3;
  Stage4 layer4;
  GlobalAvgPool<T, Features> pool;
  Linear<T, 8 * Width, Classes> linear;

  static_assert(LayerWiring<typename decltype(conv1)::output_shape, typename decltype(bn1)::input_shape>::ok);
  static_assert(LayerWiring<typename decltype(bn1)::output_shape, typename Stage1::input_shape>::ok);
  static_assert(LayerWiring<typename decltype(pool)::output_shape, typename decltype(linear)::input_shape,
                            decltype(pool), decltype(linear)>::ok);

  /// Initialised as PyTorch initialises it (Kaiming-uniform conv and linear weights, BN
  /// weight 1 and bias 0), from a seeded generator, in module order.
  explicit ResNet18(std::uint64_t seed = 0) : ResNet18(Rng(seed)) {}

  const Activation<T, output_shape>& forward(const Activation<T, input_shape>& x, Context<T>& ctx) {
    const auto& s = bn1.forward(conv1.forward(x, ctx), ctx);
    const auto& f = layer4.forward(layer3.forward(layer2.forward(layer1.forward(s, ctx), ctx), ctx), ctx);
    return linear.forward(pool.forward(f, ctx), ctx);
  }

  /// Backward from the logits' gradient through every layer, adding to every parameter's
  /// gradient. dx receives the input's gradient unless null.
  void backward(const Activation<T, output_shape>& dlogits, Activation<T, input_shape>* dx, Context<T>& ctx) {
    auto a = ctx.scratch.take();
    auto b = ctx.scratch.take();
    const std::size_t n = dlogits.batch();
    auto g_pool = a.template view<typename decltype(pool)::output_shape>(n);
    linear.backward(dlogits, &g_pool, ctx);
    auto g4 = b.template view<Features>(n);
    pool.backward(g_pool, &g4, ctx);
    auto g3 = a.template view<typename Stage3::output_shape>(n);
    layer4.backward(g4, &g3, ctx);
    auto g2 = b.template view<typename Stage2::output_shape>(n);
    layer3.backward(g3, &g2, ctx);
    auto g1 = a.template view<typename Stage1::output_shape>(n);
    layer2.backward(g2, &g1, ctx);
    auto g0 = b.template view<Stem>(n);
    layer1.backward(g1, &g0, ctx);
    bn1.backward(g0, &g0, ctx);
    conv1.backward(g0, dx, ctx);
  }

  [[nodiscard]] const Activation<T, output_shape>& output() const noexcept { return linear.output(); }

  /// Calls f(StateEntry<T>) for every parameter, running statistic and counter, in PyTorch's
  /// state_dict order, with PyTorch's names.
  template <class F>
  void visit_state(F&& f) {
    visit_state(std::string(), f);
  }
  /// The same, with every name under `prefix` (as a sub-module of a larger network).
  template <class F>
  void visit_state(const std::string& prefix, F&& f) {
    conv1.visit_state(state_name(prefix, "conv1"), f);
    bn1.visit_state(state_name(prefix, "bn1"), f);
    layer1.visit_state(state_name(prefix, "layer1"), f);
    layer2.visit_state(state_name(prefix, "layer2"), f);
    layer3.visit_state(state_name(prefix, "layer3"), f);
    layer4.visit_state(state_name(prefix, "layer4"), f);
    linear.visit_state(state_name(prefix, "linear"), f);
  }

  [[nodiscard]] std::vector<StateEntry<T>> state() {
    std::vector<StateEntry<T>> entries;
    visit_state([&](StateEntry<T> e) { entries.push_back(std::move(e)); });
    return entries;
  }

  [[nodiscard]] std::vector<StateEntry<T>> parameters() {
    std::vector<StateEntry<T>> entries;
    visit_state([&](StateEntry<T> e) {
      if (e.trainable()) entries.push_back(std::move(e));
    });
    return entries;
  }

  [[nodiscard]] std::size_t parameter_count() {
    std::size_t n = 0;
    visit_state([&](const StateEntry<T>& e) { n += e.trainable() ? e.value.size() : 0; });
    return n;
  }

 private:
  explicit ResNet18(Rng rng)
      : conv1(rng), layer1(rng), layer2(rng), layer3(rng), layer4(rng), linear(rng) {}
};

}  // namespace odyssey::models
