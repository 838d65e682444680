// Compile-time shapes and the shape algebra of convolution and pooling.
//
// Legend used across odyssey: N batch, C input channels, K output channels, H W input
// extents, P Q output extents, R S kernel extents. Shapes list extents outermost first,
// in PyTorch's order (a conv weight is Shape<K, C, R, S>, an activation sample Shape<C, H, W>).
module;
#include <array>
#include <concepts>
#include <cstddef>
#include <string>
#include <type_traits>
export module odyssey.tensor:shape;

export namespace odyssey {

/// The extents of a tensor, fixed at compile time.
template <std::size_t... Dims>
struct Shape {
  static_assert(((Dims > 0) && ...), "Shape: every extent must be positive");

  static constexpr std::size_t rank = sizeof...(Dims);
  static constexpr std::array<std::size_t, rank> extents{Dims...};
  static constexpr std::size_t size = (std::size_t{1} * ... * Dims);

  /// Row-major strides in elements: the last extent is contiguous.
  static constexpr std::array<std::size_t, rank> strides = [] {
    std::array<std::size_t, rank> s{};
    std::size_t stride = 1;
    for (std::size_t i = rank; i-- > 0;) {
      s[i] = stride;
      stride *= extents[i];
    }
    return s;
  }();

  template <std::size_t I>
    requires(I < rank)
  static constexpr std::size_t extent = extents[I];

  /// "Shape<64,32,32>", for messages.
  static std::string str() {
    std::string s = "Shape<";
    for (std::size_t i = 0; i < rank; ++i) {
      if (i) s += ',';
      s += std::to_string(extents[i]);
    }
    return s + '>';
  }
};

namespace detail {
template <class T>
struct IsShape : std::false_type {};
template <std::size_t... D>
struct IsShape<Shape<D...>> : std::true_type {};
}  // namespace detail

/// A type that is some Shape<...>.
template <class T>
concept ShapeType = detail::IsShape<T>::value;

/// A shape of an image-like sample: channels, height, width.
template <class T>
concept ImageShape = ShapeType<T> && T::rank == 3;

/// A shape of a flat feature vector.
template <class T>
concept VectorShape = ShapeType<T> && T::rank == 1;

/// Output extent of a convolution or pooling window: (in + 2*pad - kernel) / stride + 1.
consteval std::size_t window_out_extent(std::size_t in, std::size_t kernel, std::size_t stride,
                                        std::size_t pad) {
  return (in + 2 * pad - kernel) / stride + 1;
}

/// A window of `Kernel` with `Stride` and `Pad` fits an input extent `In` (PyTorch's rules:
/// stride at least 1, the padded input at least one window, padding at most half a window).
template <std::size_t In, std::size_t Kernel, std::size_t Stride, std::size_t Pad>
concept WindowFits = Kernel >= 1 && Stride >= 1 && In + 2 * Pad >= Kernel && 2 * Pad <= Kernel;

/// The output shape of a K-channel convolution of an image shape In.
template <ImageShape In, std::size_t K, std::size_t Kernel, std::size_t Stride, std::size_t Pad>
  requires WindowFits<In::extents[1], Kernel, Stride, Pad> &&
           WindowFits<In::extents[2], Kernel, Stride, Pad> && (K >= 1)
using ConvOutput = Shape<K, window_out_extent(In::extents[1], Kernel, Stride, Pad),
                         window_out_extent(In::extents[2], Kernel, Stride, Pad)>;

/// The output shape of a pooling window over an image shape In (channels unchanged).
template <ImageShape In, std::size_t Kernel, std::size_t Stride, std::size_t Pad = 0>
  requires WindowFits<In::extents[1], Kernel, Stride, Pad> &&
           WindowFits<In::extents[2], Kernel, Stride, Pad>
using PoolOutput = Shape<In::extents[0], window_out_extent(In::extents[1], Kernel, Stride, Pad),
                         window_out_extent(In::extents[2], Kernel, Stride, Pad)>;

/// True when a layer producing `Out` may feed a layer expecting `In`.
template <class Out, class In>
inline constexpr bool output_matches_input = std::is_same_v<Out, In>;

/// The wiring check every layer and composition uses. Naming it, as in
/// `static_assert(LayerWiring<A::output_shape, B::input_shape, A, B>::ok)`, fails to compile
/// when the shapes differ, with a diagnostic that starts "layer wiring:" and shows both
/// shapes (the requirement) and both layers (the instantiation note).
template <class Out, class In, class Producer = void, class Consumer = void>
struct LayerWiring {
  static_assert(output_matches_input<Out, In>,
                "layer wiring: the output shape (first) of a layer does not match the input "
                "shape (second) of the layer it feeds");
  static constexpr bool ok = true;
};

}  // namespace odyssey
