// BatchNorm2d as PyTorch's (momentum 0.1, eps 1e-5, weight 1, bias 0, running mean 0 and
// variance 1, num_batches_tracked), with join hooks that let a composition finish it in the
// same pass over memory with a ReLU, or a residual add and a ReLU (the end of a ResNet block).
module;
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>
export module odyssey.layers:batchnorm;
import odyssey.tensor;
import odyssey.kernels;
import odyssey.dist;
import :context;
import :state;
import :gradient;
import :saved;

export namespace odyssey {

/// x: [N, C, H, W] -> y: [N, C, H, W], per-channel statistics over (N, H, W).
///
/// Besides the layer contract it offers the join hooks a composition uses to finish the
/// normalisation in the same pass over memory: y = relu(bn(x)) when a ReLU follows it in a
/// Sequential or Chain, and y = relu(bn(x) + shortcut) or bn(x) + shortcut when it ends the
/// main branch of a Residual. Users' types never name the fusion.
template <class T, ImageShape S>
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

  const Activation<T, S>& forward(const Activation<T, S>& x, Context<T>& ctx) {
    return forward_join(x, nullptr, false, ctx);
  }

  /// Adds dgamma and dbeta, and the input gradient into dx. Uses the statistics of the mode
  /// the forward pass ran in.
  void backward(const Activation<T, S>& dy, Grad<T, S> dx, Context<T>& ctx) {
    backward_join(dy, dx, nullptr, false, ctx);
  }

  /// Join hook: y = bn(x), plus `residual` when given, then max(., 0) when `relu`.
  const Activation<T, S>& forward_join(const Activation<T, S>& x, const Activation<T, S>* residual, bool relu,
                                       Context<T>& ctx) {
    if (residual) residual->expect_batch(x.batch(), "BatchNorm2d residual");
    return forward_impl(x, residual ? residual->data() : nullptr, relu, ctx);
  }

  /// Join hook, the backward of forward_join with the same `relu`: the join's gradient (dy
  /// masked by the ReLU, or dy) is written to `djoin` when given (the residual's gradient),
  /// and its normalisation backward added into dx.
  void backward_join(const Activation<T, S>& dy, Grad<T, S> dx, Activation<T, S>* djoin, bool relu,
                     Context<T>& ctx) {
    const auto& x = x_.get(dy.batch(), "BatchNorm2d");
    const std::size_t n = dy.batch();
    auto slot = ctx.scratch.take();
    Activation<T, S> tmp;
    auto scratch = [&] {
      if (tmp.batch() == 0) tmp = slot.template view<S>(n);
      return tmp.data();
    };
    const T* g = dy.data();
    T* masked = nullptr;
    if (relu) {
      if (djoin) {
        djoin->resize(n);
        masked = djoin->data();
      } else if (T* own = dx.empty_buffer(n)) {
        masked = own;  // normalised in place below
      } else {
        masked = scratch();
      }
      kernels::relu_backward(dy.size(), y_.data(), dy.data(), masked);
      g = masked;
    } else if (djoin) {
      djoin->resize(n);
      std::copy_n(dy.data(), dy.size(), djoin->data());
    }
    if (dx) {
      dx.add_written(n, ctx, [&](T* out) { normalisation_backward(x, g, n, out); });
    } else {
      // The parameters' gradients are still wanted; the input's goes to scratch.
      normalisation_backward(x, g, n, relu && !djoin ? masked : scratch());
    }
    ctx.gradient_ready(weight.grad.span());
    ctx.gradient_ready(bias.grad.span());
  }

  /// For a composition that runs this norm, in inference mode, inside the convolution before
  /// it: the convolution's epilogue y = v * scale + shift per channel (with the convolution's
  /// bias, or null, folded into shift), then `residual` and the ReLU as forward_join would
  /// add them. scale = gamma / sqrt(running_var + eps), shift = beta - running_mean * scale,
  /// in double. The norm's own forward does not run, so it keeps no input for a backward pass.
  kernels::ConvEpilogue<T> inference_epilogue(const T* conv_bias, const Activation<T, S>* residual, bool relu) {
    folded_.resize(2 * channels);
    for (std::size_t c = 0; c < channels; ++c) {
      const double scale = double(weight.value.data()[c]) / std::sqrt(double(running_var.data()[c]) + eps);
      const double bias_term = conv_bias ? double(conv_bias[c]) * scale : 0.0;
      folded_[c] = T(scale);
      folded_[channels + c] = T(double(bias.value.data()[c]) - double(running_mean.data()[c]) * scale + bias_term);
    }
    x_.clear();
    mode_ = Mode::inference;
    comm_ = nullptr;
    return {folded_.data(), folded_.data() + channels, residual ? residual->data() : nullptr, relu};
  }

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
  const Activation<T, S>& forward_impl(const Activation<T, S>& x, const T* residual, bool relu, Context<T>& ctx) {
    const kernels::BatchNormShape s{x.batch() * S::extents[1] * S::extents[2], channels};
    y_.resize(x.batch());
    comm_ = ctx.mode == Mode::training && distributed(ctx.comm) ? ctx.comm : nullptr;
    if (comm_) {
      ws_.resize(kernels::batchnorm_workspace_size(s));
      merge_moments(x, s);
      kernels::batchnorm_forward_with_moments(s, x.data(), weight.value.data(), bias.value.data(), y_.data(),
                                              mean_.data(), rstd_.data(), running_mean.data(), running_var.data(),
                                              ctx.running_stats_momentum >= 0 ? ctx.running_stats_momentum : momentum,
                                              eps, merged_.data(), count_, residual, relu);
      ++num_batches_tracked;
    } else if (ctx.mode == Mode::training) {
      if (s.m < 2)
        throw ValueError("BatchNorm2d: training needs more than one value per channel, but the "
                         "batch has " + std::to_string(x.batch()) + " sample(s) of " + S::str() +
                         "; use a larger batch or inference mode");
      ws_.resize(kernels::batchnorm_workspace_size(s));
      kernels::batchnorm_forward_training(s, x.data(), weight.value.data(), bias.value.data(), y_.data(),
                                          mean_.data(), rstd_.data(), running_mean.data(),
                                          running_var.data(),
                                          ctx.running_stats_momentum >= 0 ? ctx.running_stats_momentum : momentum,
                                          eps, ws_.data(), residual, relu);
      ++num_batches_tracked;
    } else {
      kernels::batchnorm_forward_inference(s, x.data(), weight.value.data(), bias.value.data(),
                                           running_mean.data(), running_var.data(), eps, y_.data(),
                                           residual, relu);
    }
    x_.save(x);
    mode_ = ctx.mode;
    return y_;
  }

  /// SyncBatchNorm's statistics: this shard's (rows, mean, M2) per channel from every rank,
  /// merged in rank order with Chan's formula (as the kernel merges its chunks), into
  /// merged_ (mean, M2) and count_ (rows over all ranks).
  void merge_moments(const Activation<T, S>& x, const kernels::BatchNormShape& s) {
    const std::size_t C = channels, L = 1 + 2 * C, ranks = std::size_t(comm_->size());
    std::vector<double> mine(L), all(L * ranks);
    mine[0] = double(s.m);
    kernels::batchnorm_moments(s, x.data(), mine.data() + 1, ws_.data());
    comm_->allgather(mine, all);
    merged_.assign(all.begin() + 1, all.begin() + L);
    double n = all[0];
    for (std::size_t r = 1; r < ranks; ++r) {
      const double* p = all.data() + r * L;
      const double nb = p[0], nt = n + nb;
      for (std::size_t c = 0; c < C; ++c) {
        const double delta = p[1 + c] - merged_[c];
        merged_[c] += delta * nb / nt;
        merged_[C + c] += p[1 + C + c] + delta * delta * n * nb / nt;
      }
      n = nt;
    }
    count_ = n;
  }

  void normalisation_backward(const Activation<T, S>& x, const T* g, std::size_t batch, T* dx) {
    const kernels::BatchNormShape s{batch * S::extents[1] * S::extents[2], channels};
    ws_.resize(kernels::batchnorm_workspace_size(s));
    if (comm_) {
      // dgamma and dbeta from this shard's sums (the gradient exchange adds the other
      // shards'); dx from the sums over every shard.
      std::vector<double> sums(2 * channels);
      kernels::batchnorm_gradient_sums(s, x.data(), g, mean_.data(), sums.data(), ws_.data());
      for (std::size_t c = 0; c < channels; ++c) {
        weight.grad.data()[c] += T(sums[channels + c] * double(rstd_.data()[c]));
        bias.grad.data()[c] += T(sums[c]);
      }
      sum_in_rank_order(*comm_, sums);
      kernels::batchnorm_backward_with_sums(s, x.data(), g, weight.value.data(), mean_.data(), rstd_.data(),
                                            sums.data(), count_, dx);
    } else if (mode_ == Mode::training) {
      kernels::batchnorm_backward_training(s, x.data(), g, weight.value.data(), mean_.data(), rstd_.data(),
                                           dx, weight.grad.data(), bias.grad.data(), ws_.data());
    } else {
      kernels::batchnorm_backward_inference(s, x.data(), g, weight.value.data(), running_mean.data(),
                                            running_var.data(), eps, dx, weight.grad.data(),
                                            bias.grad.data(), ws_.data());
    }
  }

  Activation<T, S> y_;
  detail::SavedInput<T, S> x_;
  Mode mode_ = Mode::training;
  Tensor<T, vector_shape> mean_, rstd_;  // saved by the training forward pass
  AlignedBuffer<double> ws_;
  Communicator* comm_ = nullptr;  // the forward pass was over a shard of these ranks' batch
  std::vector<double> merged_;    // its merged statistics (mean, M2 per channel)
  std::vector<T> folded_;         // inference_epilogue's scale and shift
  double count_ = 0;              // and rows over all ranks
};

}  // namespace odyssey
