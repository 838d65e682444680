// Pooling: the average over the whole image (ResNet's head), averages or maxima of kernel x
// kernel windows, and Flatten (an image to PyTorch's flat feature order).
module;
#include <cstddef>
#include <cstdint>
#include <vector>
#include <string>
export module odyssey.layers:pool;
import odyssey.tensor;
import odyssey.kernels;
import :context;
import :gradient;
import :saved;

export namespace odyssey {

/// x: [N, C, H, W] -> y: [N, C], the mean of each channel.
template <class T, ImageShape In>
class GlobalAvgPool {
 public:
  using value_type = T;
  using input_shape = In;
  using output_shape = Shape<In::extents[0]>;
  static constexpr std::size_t hw = In::extents[1] * In::extents[2];

  GlobalAvgPool() = default;
  explicit GlobalAvgPool(Rng&) {}

  const Activation<T, output_shape>& forward(const Activation<T, In>& x, Context<T>&) {
    y_.resize(x.batch());
    kernels::global_avgpool_forward(x.batch(), hw, In::extents[0], x.data(), y_.data());
    return y_;
  }

  void backward(const Activation<T, output_shape>& dy, Grad<T, In> dx, Context<T>& ctx) {
    detail::expect_forward(y_.batch() ? &y_ : nullptr, y_.batch(), dy.batch(), "GlobalAvgPool");
    dx.add_written(dy.batch(), ctx, [&](T* out) {
      kernels::global_avgpool_backward(dy.batch(), hw, In::extents[0], dy.data(), out);
    });
  }

  template <class F>
  void visit_state(const std::string&, F&&) {}

 private:
  Activation<T, output_shape> y_;
};

/// x: [N, C, H, W] -> y: [N, C, P, Q], means of Kernel x Kernel windows Stride apart (no padding).
template <class T, ImageShape In, std::size_t Kernel, std::size_t Stride = Kernel>
class AvgPool2d {
 public:
  using value_type = T;
  using input_shape = In;
  using output_shape = PoolOutput<In, Kernel, Stride>;

  AvgPool2d() = default;
  explicit AvgPool2d(Rng&) {}

  const Activation<T, output_shape>& forward(const Activation<T, In>& x, Context<T>&) {
    y_.resize(x.batch());
    kernels::avgpool2d_forward(geometry(x.batch()), x.data(), y_.data());
    return y_;
  }

  void backward(const Activation<T, output_shape>& dy, Grad<T, In> dx, Context<T>& ctx) {
    detail::expect_forward(y_.batch() ? &y_ : nullptr, y_.batch(), dy.batch(), "AvgPool2d");
    dx.add_written(dy.batch(), ctx, [&](T* out) { kernels::avgpool2d_backward(geometry(dy.batch()), dy.data(), out); });
  }

  template <class F>
  void visit_state(const std::string&, F&&) {}

 private:
  static constexpr kernels::Pool2dShape geometry(std::size_t n) {
    return {n, In::extents[0], In::extents[1], In::extents[2], Kernel, Stride};
  }
  Activation<T, output_shape> y_;
};

/// x: [N, C, H, W] -> y: [N, C, P, Q], the maximum of each Kernel x Kernel window, Stride
/// apart, over the input padded by Pad (padding never wins), as nn.MaxPool2d. Ties go to the
/// first element of the window in row-major order, and the gradient to that element only.
template <class T, ImageShape In, std::size_t Kernel, std::size_t Stride = Kernel, std::size_t Pad = 0>
class MaxPool2d {
 public:
  using value_type = T;
  using input_shape = In;
  using output_shape = PoolOutput<In, Kernel, Stride, Pad>;

  MaxPool2d() = default;
  explicit MaxPool2d(Rng&) {}

  const Activation<T, output_shape>& forward(const Activation<T, In>& x, Context<T>&) {
    y_.resize(x.batch());
    argmax_.resize(y_.size());
    kernels::maxpool2d_forward(geometry(x.batch()), x.data(), y_.data(), argmax_.data());
    return y_;
  }

  void backward(const Activation<T, output_shape>& dy, Grad<T, In> dx, Context<T>& ctx) {
    detail::expect_forward(y_.batch() ? &y_ : nullptr, y_.batch(), dy.batch(), "MaxPool2d");
    dx.add_written(dy.batch(), ctx, [&](T* out) {
      kernels::maxpool2d_backward(geometry(dy.batch()), dy.data(), argmax_.data(), out);
    });
  }

  template <class F>
  void visit_state(const std::string&, F&&) {}

 private:
  static constexpr kernels::MaxPool2dShape geometry(std::size_t n) {
    return {n, In::extents[0], In::extents[1], In::extents[2], Kernel, Stride, Pad};
  }
  Activation<T, output_shape> y_;
  std::vector<std::int32_t> argmax_;  // per output element: the flat input pixel chosen
};

/// x: [N, C, H, W] -> y: [N, C*H*W] in PyTorch's order (c, h, w), as nn.Flatten after a conv
/// stack, so a Linear after it takes PyTorch's weights unchanged (odyssey keeps images
/// channels-last, so this is a transpose, not a view).
template <class T, ImageShape In>
class Flatten {
 public:
  using value_type = T;
  using input_shape = In;
  using output_shape = Shape<In::size>;
  static constexpr std::size_t channels = In::extents[0], hw = In::extents[1] * In::extents[2];

  Flatten() = default;
  explicit Flatten(Rng&) {}

  const Activation<T, output_shape>& forward(const Activation<T, In>& x, Context<T>&) {
    y_.resize(x.batch());
    kernels::flatten_nhwc_to_nchw(x.batch(), channels, hw, x.data(), y_.data());
    return y_;
  }

  void backward(const Activation<T, output_shape>& dy, Grad<T, In> dx, Context<T>& ctx) {
    detail::expect_forward(y_.batch() ? &y_ : nullptr, y_.batch(), dy.batch(), "Flatten");
    dx.add_written(dy.batch(), ctx,
                   [&](T* out) { kernels::unflatten_nchw_to_nhwc(dy.batch(), channels, hw, dy.data(), out); });
  }

  template <class F>
  void visit_state(const std::string&, F&&) {}

 private:
  Activation<T, output_shape> y_;
};

}  // namespace odyssey
