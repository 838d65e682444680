// One training step of any model: a batch in, forward in training mode, the loss, backward,
// and the optimizer's update. Owns the buffers a step needs, so after the first step at a
// batch size no step allocates.
//
// Data parallel (a Communicator of more than one rank): the batch is this rank's shard of
// the global batch. Batch norms normalise over the global batch (the context's comm), the
// loss is the mean over the global batch, and the parameters' gradients are summed over the
// ranks (GradientExchange) before the update, so every rank takes the same step, the step
// of one process over the whole batch up to the order of float additions.
module;
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>
export module odyssey.train:step;
import odyssey.tensor;
import odyssey.dist;
import odyssey.layers;
import odyssey.optim;
import odyssey.data;
import :format;

export namespace odyssey {

/// Sums the parameters' gradients over the ranks of `comm`, in buckets of about
/// `bucket_values` values, the last parameters first (backward finishes them first). A
/// bucket's sum starts as soon as backward has reported (Context::gradient_ready) all of
/// its gradients, so communication runs while backward computes the earlier layers; finish()
/// starts any bucket not yet started, waits for them all and writes the sums back.
template <class T>
class GradientExchange {
 public:
  GradientExchange(const std::vector<StateEntry<T>>& params, Communicator& comm, std::size_t bucket_values = 1 << 20)
      : comm_(comm) {
    for (auto it = params.rbegin(); it != params.rend(); ++it) {
      if (!it->trainable()) continue;
      if (buckets_.empty() || buckets_.back().values >= bucket_values) buckets_.emplace_back();
      buckets_.back().grads.push_back(it->grad);
      buckets_.back().values += it->grad.size();
      bucket_of_[it->grad.data()] = buckets_.size() - 1;
    }
    for (auto& b : buckets_) b.buffer.resize(b.values);
  }

  /// The gradient at `grad` is complete for this step.
  void ready(std::span<const T> grad) {
    const auto it = bucket_of_.find(grad.data());
    if (it == bucket_of_.end()) return;
    Bucket& b = buckets_[it->second];
    if (++b.ready == b.grads.size()) start(b);
    comm_.progress();
  }

  /// Replaces every gradient by its sum over the ranks.
  void finish() {
    early_ = 0;
    for (auto& b : buckets_) {
      if (b.started) ++early_;
      else start(b);
    }
    for (auto& b : buckets_) {
      comm_.wait_sum(b.handle);
      const T* in = b.buffer.data();
      for (const auto& g : b.grads) {
        std::copy(in, in + g.size(), g.begin());
        in += g.size();
      }
      b.ready = 0;
      b.started = false;
    }
  }

  [[nodiscard]] std::size_t buckets() const noexcept { return buckets_.size(); }
  /// Buckets whose sums started during the last step's backward (all, when every layer
  /// reports its gradients).
  [[nodiscard]] std::size_t started_early() const noexcept { return early_; }

 private:
  struct Bucket {
    std::vector<std::span<T>> grads;
    std::size_t values = 0, ready = 0;
    bool started = false;
    AlignedBuffer<T> buffer;
    std::size_t handle = 0;
  };

  void start(Bucket& b) {
    T* out = b.buffer.data();
    for (const auto& g : b.grads) out = std::copy(g.begin(), g.end(), out);
    b.handle = comm_.start_sum(std::span<T>(b.buffer.data(), b.values));
    b.started = true;
  }

  Communicator& comm_;
  std::vector<Bucket> buckets_;
  std::unordered_map<const T*, std::size_t> bucket_of_;
  std::size_t early_ = 0;
};

template <Layer Net>
class TrainStep {
 public:
  using T = typename Net::value_type;
  static constexpr std::size_t classes = Net::output_shape::size;

  /// `seed` seeds the randomness of training-mode layers (dropout masks). With `comm` of more
  /// than one rank, each batch is this rank's shard of a data-parallel batch.
  explicit TrainStep(double label_smoothing = 0, std::uint64_t seed = 0, Communicator* comm = nullptr)
      : loss_(label_smoothing), comm_(distributed(comm) ? comm : nullptr) {
    ctx_.seed = seed;
    ctx_.comm = comm_;
  }

  /// Runs global step `step` at learning rate `lr` and returns the loss and correct count of
  /// the (global) batch. A loss that is not finite is returned without backward or update,
  /// so the model and the optimizer keep their last good state. ShapeError for a batch of
  /// another image shape.
  LossStats run(Net& net, Optimizer<T>& opt, const Batch& batch, double lr, std::uint64_t step = 0) {
    copy_batch(batch, x_);
    ctx_.mode = Mode::training;
    ctx_.begin_step(step);
    const std::size_t whole = batch.global_size ? batch.global_size : batch.size;
    LossStats st = loss_.forward(net.forward(x_, ctx_), batch.labels);
    if (comm_) {
      double figures[3] = {st.loss * double(batch.size), double(st.correct), double(batch.size)};
      sum_in_rank_order(*comm_, figures);
      if (figures[2] != double(whole))
        throw ValueError(detail::rformat("data-parallel step {}: the ranks' shards hold {} images, the batch {}", step,
                                         figures[2], whole));
      st.loss = figures[0] / figures[2];
      st.correct = std::size_t(figures[1]);
    }
    if (!std::isfinite(st.loss)) return st;
    loss_.backward(dlogits_, whole);
    if (comm_ && !exchange_) {
      exchange_ = std::make_unique<GradientExchange<T>>(parameters(net), *comm_);
      ctx_.on_gradient = [this](std::span<const T> g) { exchange_->ready(g); };
    }
    net.backward(dlogits_, nullptr, ctx_);
    if (comm_) exchange_->finish();
    opt.step(lr);
    return st;
  }

  [[nodiscard]] Context<T>& context() noexcept { return ctx_; }
  /// The data-parallel gradient exchange (null for a single process or before the first step).
  [[nodiscard]] const GradientExchange<T>* exchange() const noexcept { return exchange_.get(); }

 private:
  Context<T> ctx_;
  SoftmaxCrossEntropy<T, classes> loss_;
  Communicator* comm_;
  std::unique_ptr<GradientExchange<T>> exchange_;
  Activation<T, typename Net::input_shape> x_;
  Activation<T, typename Net::output_shape> dlogits_;
};

}  // namespace odyssey
