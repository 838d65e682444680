// One training step of any model: a batch in, forward in training mode, the loss, backward,
// and the optimizer's update. Owns the buffers a step needs, so after the first step at a
// batch size no step allocates.
module;
#include <cmath>
#include <cstddef>
#include <cstdint>
export module odyssey.train:step;
import odyssey.tensor;
import odyssey.layers;
import odyssey.optim;
import odyssey.data;

export namespace odyssey {

template <Layer Net>
class TrainStep {
 public:
  using T = typename Net::value_type;
  static constexpr std::size_t classes = Net::output_shape::size;

  /// `seed` seeds the randomness of training-mode layers (dropout masks).
  explicit TrainStep(double label_smoothing = 0, std::uint64_t seed = 0) : loss_(label_smoothing) { ctx_.seed = seed; }

  /// Runs global step `step` at learning rate `lr` and returns the batch's loss and correct
  /// count. A loss that is not finite is returned without backward or update, so the model
  /// and the optimizer keep their last good state. ShapeError for a batch of another image
  /// shape.
  LossStats run(Net& net, Optimizer<T>& opt, const Batch& batch, double lr, std::uint64_t step = 0) {
    copy_batch(batch, x_);
    ctx_.mode = Mode::training;
    ctx_.begin_step(step);
    const LossStats st = loss_.forward(net.forward(x_, ctx_), batch.labels);
    if (!std::isfinite(st.loss)) return st;
    loss_.backward(dlogits_);
    net.backward(dlogits_, nullptr, ctx_);
    opt.step(lr);
    return st;
  }

  [[nodiscard]] Context<T>& context() noexcept { return ctx_; }

 private:
  Context<T> ctx_;
  SoftmaxCrossEntropy<T, classes> loss_;
  Activation<T, typename Net::input_shape> x_;
  Activation<T, typename Net::output_shape> dlogits_;
};

}  // namespace odyssey
