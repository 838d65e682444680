// ResNet-18 for small images (the CIFAR variant): a 3x3 stride-1 stem with batch norm and
// ReLU, no max-pool; four stages of two BasicBlocks with Width, 2W, 4W and 8W channels,
// stride 2 at stages 2-4; global average pooling; a linear classifier. With 3 input
// channels, 10 classes and Width 64: 11,173,962 parameters in 62 tensors, 122 state entries.
// Names and layouts are those of the usual PyTorch CIFAR ResNet-18 (conv1, bn1, layer1.0.conv1,
// layer2.0.shortcut.0, linear, ...), derived from the composition's Named parts.
module;
#include <cstddef>
#include <cstdint>
export module odyssey.models.resnet18;
import odyssey.tensor;
import odyssey.layers;

export namespace odyssey::models {

namespace detail {

template <class T, std::size_t InChannels, std::size_t H, std::size_t W, std::size_t Classes, std::size_t Width>
struct ResNet18Parts {
  using Input = Shape<InChannels, H, W>;
  using Stem = Shape<Width, H, W>;
  template <ImageShape In, std::size_t C, std::size_t Stride>
  using Stage = Sequential<BasicBlock<T, In, C, Stride>, BasicBlock<T, ConvOutput<In, C, 3, Stride, 1>, C, 1>>;
  using Stage1 = Stage<Stem, Width, 1>;
  using Stage2 = Stage<typename Stage1::output_shape, 2 * Width, 2>;
  using Stage3 = Stage<typename Stage2::output_shape, 4 * Width, 2>;
  using Stage4 = Stage<typename Stage3::output_shape, 8 * Width, 2>;
  using Features = typename Stage4::output_shape;
  using Body = Chain<Named<"conv1", Conv2d<T, Input, Width, 3, 1, 1>>, Named<"bn1", BatchNorm2d<T, Stem>>, ReLU<T, Stem>,
                     Named<"layer1", Stage1>, Named<"layer2", Stage2>, Named<"layer3", Stage3>,
                     Named<"layer4", Stage4>, GlobalAvgPool<T, Features>, Named<"linear", Linear<T, 8 * Width, Classes>>>;
};

}  // namespace detail

template <class T, std::size_t InChannels, std::size_t H, std::size_t W, std::size_t Classes,
          std::size_t Width = 64>
class ResNet18 : public Model<typename detail::ResNet18Parts<T, InChannels, H, W, Classes, Width>::Body> {
  using Base = Model<typename detail::ResNet18Parts<T, InChannels, H, W, Classes, Width>::Body>;

 public:
  /// Initialised as PyTorch initialises it (Kaiming-uniform conv and linear weights, BN
  /// weight 1 and bias 0), from a seeded generator, in module order.
  explicit ResNet18(std::uint64_t seed = 0) : ResNet18(Rng(seed)) {}

 private:
  explicit ResNet18(Rng rng) : Base(rng) {}
};

}  // namespace odyssey::models
