// Dropout, as nn.Dropout: in training mode each element is zeroed with probability p and the
// others scaled by 1/(1-p); in inference mode it is the identity. The mask of a call is a pure
// function of (the context's seed, its step, the call's place in the step, the element): the
// same whatever the thread count, and the same after a resume.
module;
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>
export module odyssey.layers:dropout;
import odyssey.tensor;
import odyssey.kernels;
import :context;
import :gradient;
import :saved;

export namespace odyssey {

template <class T, ShapeType S>
class Dropout {
 public:
  using value_type = T;
  using input_shape = S;
  using output_shape = S;

  /// ValueError unless 0 <= p < 1.
  explicit Dropout(double p = 0.5) { set_p(p); }
  explicit Dropout(Rng&) : Dropout() {}

  [[nodiscard]] double p() const noexcept { return p_; }
  /// ValueError unless 0 <= p < 1.
  void set_p(double p) {
    if (!(p >= 0 && p < 1)) throw ValueError("Dropout: p must be in [0, 1), not " + std::to_string(p));
    p_ = p;
  }

  const Activation<T, S>& forward(const Activation<T, S>& x, Context<T>& ctx) {
    mode_ = ctx.mode;
    batch_ = x.batch();
    if (ctx.mode == Mode::inference) return x;
    y_.resize(x.batch());
    mask_.resize(x.size());
    kernels::dropout_forward(x.size(), x.data(), y_.data(), mask_.data(),
                             kernels::DropoutParams{p_, ctx.seed, ctx.next_stream()});
    return y_;
  }

  /// dx += dy * mask / (1 - p) (training), dx += dy (inference).
  void backward(const Activation<T, S>& dy, Grad<T, S> dx, Context<T>& ctx) {
    detail::expect_forward(batch_ ? this : nullptr, batch_, dy.batch(), "Dropout");
    if (mode_ == Mode::inference) {
      dx.add(dy);
      return;
    }
    dx.add_written(dy.batch(), ctx, [&](T* out) { kernels::dropout_backward(dy.size(), dy.data(), mask_.data(), p_, out); });
  }

  template <class F>
  void visit_state(const std::string&, F&&) {}

 private:
  double p_ = 0.5;
  Mode mode_ = Mode::training;
  std::size_t batch_ = 0;
  Activation<T, S> y_;
  std::vector<std::uint8_t> mask_;
};

}  // namespace odyssey
