// The CIFAR ResNets, composed from odyssey.layers (no forward, backward or state code of their
// own), with the module names and layouts of the usual PyTorch CIFAR definitions (kuangliu's
// pytorch-cifar; scripts/pytorch/resnet18.py):
//
//   ResNet18       conv1 3x3 + bn1 + ReLU stem (no max-pool), BasicBlock stages 2-2-2-2 of
//                  Width, 2W, 4W, 8W channels (stride 2 from stage 2), global average pool,
//                  linear. Width 64, 3 in, 10 out: 11,173,962 parameters, 122 state entries.
//   ResNet34       the same with stages 3-4-6-3: 21,282,122 parameters.
//   PreActResNet18 conv1 stem without batch norm, PreActBlock stages 2-2-2-2, global average
//                  pool, linear (kuangliu's layout, which has no final BN-ReLU):
//                  11,171,146 parameters.
// Every model is a Model<Chain<...>> with Named parts (conv1, bn1, layer1..4, linear), works for
// any input size the strides allow (28x28: 28 -> 14 -> 7 -> 4), and is initialised as PyTorch
// initialises it (Kaiming-uniform conv and linear weights, BN weight 1 and bias 0) from a seed,
// in module order.
module;
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
export module odyssey.models.resnet;
import odyssey.tensor;
import odyssey.layers;

export namespace odyssey::models {

namespace detail {

/// A stage: N blocks of C channels, the first with the stage's stride.
template <template <class, ImageShape, std::size_t, std::size_t> class Block, class T, ImageShape In,
          std::size_t C, std::size_t Stride, std::size_t... I>
auto stage_of(std::index_sequence<I...>)
    -> Sequential<Block<T, std::conditional_t<I == 0, In, ConvOutput<In, C, 3, Stride, 1>>, C, I == 0 ? Stride : 1>...>;

template <template <class, ImageShape, std::size_t, std::size_t> class Block, class T, ImageShape In,
          std::size_t C, std::size_t Stride, std::size_t N>
using Stage = decltype(stage_of<Block, T, In, C, Stride>(std::make_index_sequence<N>()));

/// The four stages after a stem of shape Stem, then pooling and the classifier.
template <template <class, ImageShape, std::size_t, std::size_t> class Block, class T, ImageShape Stem,
          std::size_t Classes, std::size_t Width, std::size_t N1, std::size_t N2, std::size_t N3, std::size_t N4>
struct Stages {
  using S1 = Stage<Block, T, Stem, Width, 1, N1>;
  using S2 = Stage<Block, T, typename S1::output_shape, 2 * Width, 2, N2>;
  using S3 = Stage<Block, T, typename S2::output_shape, 4 * Width, 2, N3>;
  using S4 = Stage<Block, T, typename S3::output_shape, 8 * Width, 2, N4>;
  using Features = typename S4::output_shape;
  template <class... Stem_>
  using Body = Chain<Stem_..., Named<"layer1", S1>, Named<"layer2", S2>, Named<"layer3", S3>, Named<"layer4", S4>,
                     GlobalAvgPool<T, Features>, Named<"linear", Linear<T, 8 * Width, Classes>>>;
};

template <class T, std::size_t InC, std::size_t H, std::size_t W, std::size_t Classes, std::size_t Width,
          std::size_t N1, std::size_t N2, std::size_t N3, std::size_t N4>
using ResNetBody = typename Stages<BasicBlock, T, Shape<Width, H, W>, Classes, Width, N1, N2, N3, N4>::template Body<
    Named<"conv1", Conv2d<T, Shape<InC, H, W>, Width, 3, 1, 1>>, Named<"bn1", BatchNorm2d<T, Shape<Width, H, W>>>,
    ReLU<T, Shape<Width, H, W>>>;

template <class T, std::size_t InC, std::size_t H, std::size_t W, std::size_t Classes, std::size_t Width>
using PreActBody = typename Stages<PreActBlock, T, Shape<Width, H, W>, Classes, Width, 2, 2, 2, 2>::template Body<
    Named<"conv1", Conv2d<T, Shape<InC, H, W>, Width, 3, 1, 1>>>;

/// A model over `Body`, initialised from a seed.
template <class Body>
class Seeded : public Model<Body> {
 public:
  explicit Seeded(std::uint64_t seed = 0) : Seeded(Rng(seed)) {}

 private:
  explicit Seeded(Rng rng) : Model<Body>(rng) {}
};

}  // namespace detail

template <class T, std::size_t InChannels, std::size_t H, std::size_t W, std::size_t Classes, std::size_t Width = 64>
class ResNet18 : public detail::Seeded<detail::ResNetBody<T, InChannels, H, W, Classes, Width, 2, 2, 2, 2>> {
 public:
  using detail::Seeded<detail::ResNetBody<T, InChannels, H, W, Classes, Width, 2, 2, 2, 2>>::Seeded;
};

template <class T, std::size_t InChannels, std::size_t H, std::size_t W, std::size_t Classes, std::size_t Width = 64>
class ResNet34 : public detail::Seeded<detail::ResNetBody<T, InChannels, H, W, Classes, Width, 3, 4, 6, 3>> {
 public:
  using detail::Seeded<detail::ResNetBody<T, InChannels, H, W, Classes, Width, 3, 4, 6, 3>>::Seeded;
};

template <class T, std::size_t InChannels, std::size_t H, std::size_t W, std::size_t Classes, std::size_t Width = 64>
class PreActResNet18 : public detail::Seeded<detail::PreActBody<T, InChannels, H, W, Classes, Width>> {
 public:
  using detail::Seeded<detail::PreActBody<T, InChannels, H, W, Classes, Width>>::Seeded;
};

}  // namespace odyssey::models
