// BatchNorm2d as PyTorch's (momentum 0.1, eps 1e-5, weight 1, bias 0, running mean 0 and
// variance 1, num_batches_tracked), optionally finished in the same pass over memory by a
// ReLU, or by a residual add and a ReLU (the end of a ResNet block).
module;
#include <cstddef>
#include <cstdint>
#include <string>
export module odyssey.layers:batchnorm;
import odyssey.tensor;
import odyssey.kernels;
import :context;
import :state;
import :conv;  // detail::expect_forward

export namespace odyssey {

/// What follows the normalisation inside the layer, in the same pass: nothing, a ReLU, or
/// the residual join y = relu(bn(x) + shortcut).
enum class Post { none, relu, add_relu };

/// x: [N, C, H, W] -> y: [N, C, H, W], per-channel statistics over (N, H, W).
template <class T, ImageShape S, Post P = Post::none>
class BatchNorm2d {
 public:
  using value_type = T;
  using input_shape = S;
  using output_shape = S;
  static constexpr std::size_t channels = S::extents[0];
  using vector_shape = Shape<channels>;

  Parameter<T, vector_shape> weight;  // gamma
  Parameter<T, vector_shape> bias;    // beta
  Tensor<T, vector_shape> running_mean;
  Tensor<T, vector_shape> running_var;
  std::int64_t num_batches_tracked = 0;
  double momentum = 0.1;
  double eps = 1e-5;

  BatchNorm2d() { reset_parameters(); }
  explicit BatchNorm2d(Rng&) : BatchNorm2d() {}

  void reset_parameters() {
    weight.value.fill(T(1));
    bias.value.fill(T(0));
    running_mean.fill(T(0));
    running_var.fill(T(1));
    num_batches_tracked = 0;
  }

  const Activation<T, S>& forward(const Activation<T, S>& x, Context<T>& ctx)
    requires(P != Post::add_relu)
  {
    return forward_impl(x, nullptr, ctx);
  }

  /// y = relu(bn(x) + shortcut).
  const Activation<T, S>& forward(const Activation<T, S>& x, const Activation<T, S>& shortcut, Context<T>& ctx)
    requires(P == Post::add_relu)
  {
    shortcut.expect_batch(x.batch(), "BatchNorm2d residual");
    return forward_impl(x, shortcut.data(), ctx);
  }

  /// Adds dgamma and dbeta; writes dx (which may be dy itself). Uses the statistics of the
  /// mode the forward pass ran in.
  void backward(const Activation<T, S>& dy, Activation<T, S>* dx, Context<T>& ctx)
    requires(P != Post::add_relu)
  {
    auto slot = ctx.scratch.take();
    Activation<T, S> tmp;
    if (!dx) {
      tmp = slot.template view<S>(dy.batch());
      dx = &tmp;
    }
    dx->resize(dy.batch());
    const T* g = dy.data();
    if constexpr (P == Post::relu) {
      kernels::relu_backward(dy.size(), y_.data(), dy.data(), dx->data());
      g = dx->data();
    }
    normalisation_backward(g, dy.batch(), *dx);
  }

  /// The add+ReLU variant: `dshortcut` receives the gradient of the join (dy masked by the
  /// ReLU), which is the shortcut's gradient and the input of the normalisation's backward.
  void backward(const Activation<T, S>& dy, Activation<T, S>& dx, Activation<T, S>& dshortcut, Context<T>&)
    requires(P == Post::add_relu)
  {
    dshortcut.resize(dy.batch());
    dx.resize(dy.batch());
    kernels::relu_backward(dy.size(), y_.data(), dy.data(), dshortcut.data());
    normalisation_backward(dshortcut.data(), dy.batch(), dx);
  }

  [[nodiscard]] const Activation<T, S>& output() const noexcept { return y_; }

  template <class F>
  void visit_state(const std::string& prefix, F&& f) {
    f(weight.entry(state_name(prefix, "weight"), StateKind::norm_weight));
    f(bias.entry(state_name(prefix, "bias"), StateKind::norm_bias));
    f(buffer_entry(state_name(prefix, "running_mean"), StateKind::running_mean, running_mean));
    f(buffer_entry(state_name(prefix, "running_var"), StateKind::running_var, running_var));
    f(StateEntry<T>{state_name(prefix, "num_batches_tracked"), StateKind::counter, {}, {}, {},
                    &num_batches_tracked});
  }

 private:
  const Activation<T, S>& forward_impl(const Activation<T, S>& x, const T* residual, Context<T>& ctx) {
    const kernels::BatchNormShape s{x.batch() * S::extents[1] * S::extents[2], channels};
    constexpr bool relu = P != Post::none;
    y_.resize(x.batch());
    if (ctx.mode == Mode::training) {
      if (s.m < 2)
        throw ValueError("BatchNorm2d: training needs more than one value per channel, but the "
                         "batch has " + std::to_string(x.batch()) + " sample(s) of " + S::str() +
                         "; use a larger batch or inference mode");
      ws_.resize(kernels::batchnorm_workspace_size(s));
      kernels::batchnorm_forward_training(s, x.data(), weight.value.data(), bias.value.data(), y_.data(),
                                          mean_.data(), rstd_.data(), running_mean.data(),
                                          running_var.data(), momentum, eps, ws_.data(), residual, relu);
      ++num_batches_tracked;
    } else {
      kernels::batchnorm_forward_inference(s, x.data(), weight.value.data(), bias.value.data(),
                                           running_mean.data(), running_var.data(), eps, y_.data(),
                                           residual, relu);
    }
    x_ = &x;
    mode_ = ctx.mode;
    return y_;
  }

  void normalisation_backward(const T* g, std::size_t batch, Activation<T, S>& dx) {
    detail::expect_forward(x_, x_ ? x_->batch() : 0, batch, "BatchNorm2d");
    const kernels::BatchNormShape s{batch * S::extents[1] * S::extents[2], channels};
    ws_.resize(kernels::batchnorm_workspace_size(s));
    if (mode_ == Mode::training) {
      kernels::batchnorm_backward_training(s, x_->data(), g, weight.value.data(), mean_.data(), rstd_.data(),
                                           dx.data(), weight.grad.data(), bias.grad.data(), ws_.data());
    } else {
      kernels::batchnorm_backward_inference(s, x_->data(), g, weight.value.data(), running_mean.data(),
                                            running_var.data(), eps, dx.data(), weight.grad.data(),
                                            bias.grad.data(), ws_.data());
    }
  }

  Activation<T, S> y_;
  const Activation<T, S>* x_ = nullptr;
  Mode mode_ = Mode::training;
  Tensor<T, vector_shape> mean_, rstd_;  // saved by the training forward pass
  AlignedBuffer<double> ws_;
};

}  // namespace odyssey
