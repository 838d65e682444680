// Conv2d: a square-kernel 2-D convolution as PyTorch's nn.Conv2d (weight [K,C,R,R], optional
// bias), on channels-last activations.
module;
#include <concepts>
#include <cstddef>
#include <string>
#include <type_traits>
export module odyssey.layers:conv;
import odyssey.tensor;
import odyssey.kernels;
import :context;
import :state;
import :gradient;
import :saved;

export namespace odyssey {

namespace detail {
struct NoBias {};
}  // namespace detail

/// x: [N, C, H, W] -> y: [N, K, P, Q] with P = (H + 2*Pad - Kernel)/Stride + 1.
template <class T, ImageShape In, std::size_t K, std::size_t Kernel, std::size_t Stride = 1,
          std::size_t Pad = 0, bool HasBias = false>
class Conv2d {
 public:
  using value_type = T;
  using input_shape = In;
  using output_shape = ConvOutput<In, K, Kernel, Stride, Pad>;
  static constexpr std::size_t in_channels = In::extents[0];
  static constexpr std::size_t out_channels = K;
  using weight_shape = Shape<K, in_channels, Kernel, Kernel>;

  Parameter<T, weight_shape> weight;
  [[no_unique_address]] std::conditional_t<HasBias, Parameter<T, Shape<K>>, detail::NoBias> bias;

  Conv2d() = default;
  /// PyTorch's default initialisation (Kaiming-uniform, a = sqrt(5)) from `rng`.
  explicit Conv2d(Rng& rng) : Conv2d() { reset_parameters(rng); }

  void reset_parameters(Rng& rng) {
    kaiming_uniform(weight.value, rng);
    if constexpr (HasBias) bias_uniform(bias.value, in_channels * Kernel * Kernel, rng);
  }

  const Activation<T, output_shape>& forward(const Activation<T, In>& x, Context<T>& ctx) {
    y_.resize(x.batch());
    kernels::conv2d_forward(geometry(x.batch()), x.data(), weight.value.data(), bias_data(), y_.data(),
                            workspace(x.batch(), ctx), kernels::ConvAlgorithm::automatic, nullptr,
                            prepared_weights(x.batch(), ctx));
    if (ctx.mode == Mode::training) x_.save(x);
    else x_.clear();
    return y_;
  }

  /// Inference-mode forward with the batch norm `norm` after it run in the same pass
  /// (BatchNorm2d::inference_epilogue), and the residual join or ReLU after that: what the
  /// norm's forward_join(forward(x), residual, relu) would return, with no pass over memory of
  /// the norm's own. Compositions call it for a convolution followed by a batch norm.
  template <class Norm>
    requires requires(Norm& n, const T* b, const Activation<T, output_shape>* r) {
      { n.inference_epilogue(b, r, true) } -> std::same_as<kernels::ConvEpilogue<T>>;
    }
  const Activation<T, output_shape>& forward_folded(const Activation<T, In>& x, Norm& norm,
                                                    const Activation<T, output_shape>* residual, bool relu,
                                                    Context<T>& ctx) {
    if (ctx.mode != Mode::inference)
      throw ValueError("Conv2d: a batch norm folds into the convolution only in inference mode");
    if (residual) residual->expect_batch(x.batch(), "Conv2d residual");
    y_.resize(x.batch());
    const kernels::ConvEpilogue<T> ep = norm.inference_epilogue(bias_data(), residual, relu);
    kernels::conv2d_forward(geometry(x.batch()), x.data(), weight.value.data(), nullptr, y_.data(),
                            workspace(x.batch(), ctx), kernels::ConvAlgorithm::automatic, &ep,
                            prepared_weights(x.batch(), ctx));
    x_.clear();
    return y_;
  }

  /// Adds the weight (and bias) gradients, and the input gradient into dx.
  void backward(const Activation<T, output_shape>& dy, Grad<T, In> dx, Context<T>& ctx) {
    const auto& x = x_.get(dy.batch(), "Conv2d");
    const auto g = geometry(dy.batch());
    T* db = nullptr;
    if constexpr (HasBias) db = bias.grad.data();
    T* ws = workspace(dy.batch(), ctx);
    kernels::conv2d_backward_weights(g, x.data(), dy.data(), weight.grad.data(), db, ws);
    ctx.gradient_ready(weight.grad.span());
    if constexpr (HasBias) ctx.gradient_ready(bias.grad.span());
    dx.add(dy.batch(), [&](T* out, bool accumulate) {
      kernels::conv2d_backward_data(g, dy.data(), weight.value.data(), out, ws, accumulate);
    });
  }

  template <class F>
  void visit_state(const std::string& prefix, F&& f) {
    f(weight.entry(state_name(prefix, "weight"), StateKind::weight));
    if constexpr (HasBias) f(bias.entry(state_name(prefix, "bias"), StateKind::bias));
  }

 private:
  static constexpr kernels::Conv2dShape geometry(std::size_t n) {
    return {n, in_channels, In::extents[1], In::extents[2], K, Kernel, Kernel, Stride, Pad};
  }
  /// The workspace for a batch of n, the context's (shared by every layer; the weight
  /// gradient's partial sums grow with the batch: kernels/weight_parts.h).
  static T* workspace(std::size_t n, Context<T>& ctx) {
    return ctx.workspace_for(kernels::conv2d_workspace_size(geometry(n)));
  }
  /// This layer's prepared weights for a forward call on a batch of n (made on the first call
  /// that needs them, again when the algorithm or target changes), or null: only in inference
  /// mode with ctx.weights_fixed.
  const T* prepared_weights(std::size_t n, Context<T>& ctx) const {
    const auto g = geometry(n);
    if (ctx.mode != Mode::inference || !ctx.weights_fixed) return nullptr;
    AlignedBuffer<T>& buffer = ctx.prepared_weights[this];
    if (!kernels::conv2d_prepared_weights_match(g, buffer.data(), buffer.size())) {
      const std::size_t size = kernels::conv2d_prepared_weights_size(g);
      if (buffer.size() < size) buffer = AlignedBuffer<T>::uninitialized(size);
      kernels::conv2d_prepare_weights(g, weight.value.data(), buffer.data());
    }
    return buffer.data();
  }
  const T* bias_data() const {
    if constexpr (HasBias) return bias.value.data();
    return nullptr;
  }

  Activation<T, output_shape> y_;
  detail::SavedInput<T, In> x_;  // the training-mode input, read by backward
};

}  // namespace odyssey
