// ResNet's residual blocks, as compositions of layers (no forward, backward or state code of
// their own): their forward, backward and PyTorch state names come from Residual, Chain,
// Sequential and Named.
//
// BasicBlock (He et al. 2015, the CIFAR ResNets' block):
//   y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
// conv1 3x3 with the block's stride, conv2 3x3 stride 1, both without bias; the shortcut is the
// identity or, when the stride or the channel count changes, a 1x1 strided conv and a batch
// norm (PyTorch names: shortcut.0, shortcut.1). The ReLUs and the join run inside the batch
// norms' passes (the compositions choose that).
//
// PreActBlock (He et al. 2016, "Identity Mappings in Deep Residual Networks"; the layout of
// kuangliu's pytorch-cifar PreActBlock):
//   a = relu(bn1(x));  y = conv2(relu(bn2(conv1(a)))) + shortcut
// where the shortcut is x itself, or conv1x1(a) (a strided 1x1 conv without batch norm,
// PyTorch name shortcut.0) when the stride or the channel count changes.
module;
#include <cstddef>
#include <type_traits>
export module odyssey.layers:block;
import odyssey.tensor;
import :conv;
import :batchnorm;
import :activation;
import :named;
import :sequential;
import :residual;

export namespace odyssey {

namespace detail {

template <class T, ImageShape In, std::size_t OutC, std::size_t Stride>
struct BasicBlockParts {
  using Out = ConvOutput<In, OutC, 3, Stride, 1>;
  static constexpr bool projection = Stride != 1 || In::extents[0] != OutC;
  using Main = Chain<Named<"conv1", Conv2d<T, In, OutC, 3, Stride, 1>>, Named<"bn1", BatchNorm2d<T, Out>>,
                     ReLU<T, Out>, Named<"conv2", Conv2d<T, Out, OutC, 3, 1, 1>>,
                     Named<"bn2", BatchNorm2d<T, Out>>>;
  using Shortcut = std::conditional_t<
      projection, Named<"shortcut", Sequential<Conv2d<T, In, OutC, 1, Stride, 0>, BatchNorm2d<T, Out>>>,
      Identity<T, In>>;
  using type = Residual<Main, Shortcut, Join::add_relu>;
};

template <class T, ImageShape In, std::size_t OutC, std::size_t Stride>
struct PreActBlockParts {
  using Out = ConvOutput<In, OutC, 3, Stride, 1>;
  static constexpr bool projection = Stride != 1 || In::extents[0] != OutC;
  using Convs = Chain<Named<"conv1", Conv2d<T, In, OutC, 3, Stride, 1>>, Named<"bn2", BatchNorm2d<T, Out>>,
                      ReLU<T, Out>, Named<"conv2", Conv2d<T, Out, OutC, 3, 1, 1>>>;
  // Identity shortcut: the block's input x skips the pre-activation too.
  using WithIdentity = Residual<Chain<Named<"bn1", BatchNorm2d<T, In>>, ReLU<T, In>, Convs>, Identity<T, In>, Join::add>;
  // Projection: the shortcut convolves the pre-activated input.
  using WithProjection = Chain<Named<"bn1", BatchNorm2d<T, In>>, ReLU<T, In>,
                               Residual<Convs, Named<"shortcut", Sequential<Conv2d<T, In, OutC, 1, Stride, 0>>>,
                                        Join::add>>;
  using type = std::conditional_t<projection, WithProjection, WithIdentity>;
};

}  // namespace detail

template <class T, ImageShape In, std::size_t OutC, std::size_t Stride = 1>
class BasicBlock : public detail::BasicBlockParts<T, In, OutC, Stride>::type {
  using Base = typename detail::BasicBlockParts<T, In, OutC, Stride>::type;

 public:
  static constexpr bool projection = detail::BasicBlockParts<T, In, OutC, Stride>::projection;
  using Base::Base;
};

template <class T, ImageShape In, std::size_t OutC, std::size_t Stride = 1>
class PreActBlock : public detail::PreActBlockParts<T, In, OutC, Stride>::type {
  using Base = typename detail::PreActBlockParts<T, In, OutC, Stride>::type;

 public:
  static constexpr bool projection = detail::PreActBlockParts<T, In, OutC, Stride>::projection;
  using Base::Base;
};

}  // namespace odyssey
