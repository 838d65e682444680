// ReLU, and Identity (the shortcut of a residual block whose shapes do not change).
module;
#include <cstddef>
#include <string>
export module odyssey.layers:activation;
import odyssey.tensor;
import odyssey.kernels;
import :context;
import :gradient;
import :saved;

export namespace odyssey {

/// y = max(x, 0). Right after a BatchNorm2d in a Sequential or Chain, the composition runs
/// it inside the batch norm's output pass instead (the same function, one pass less).
template <class T, ShapeType S>
class ReLU {
 public:
  using value_type = T;
  using input_shape = S;
  using output_shape = S;

  ReLU() = default;
  explicit ReLU(Rng&) {}

  const Activation<T, S>& forward(const Activation<T, S>& x, Context<T>&) {
    y_.resize(x.batch());
    kernels::relu_forward(x.size(), x.data(), y_.data());
    return y_;
  }

  /// dx += dy where the output was positive.
  void backward(const Activation<T, S>& dy, Grad<T, S> dx, Context<T>& ctx) {
    detail::expect_forward(y_.batch() ? &y_ : nullptr, y_.batch(), dy.batch(), "ReLU");
    dx.add_written(dy.batch(), ctx, [&](T* out) { kernels::relu_backward(dy.size(), y_.data(), dy.data(), out); });
  }

  template <class F>
  void visit_state(const std::string&, F&&) {}

 private:
  Activation<T, S> y_;
};

/// y = x: its forward returns its input itself, so nothing is copied.
template <class T, ShapeType S>
class Identity {
 public:
  using value_type = T;
  using input_shape = S;
  using output_shape = S;

  Identity() = default;
  explicit Identity(Rng&) {}

  const Activation<T, S>& forward(const Activation<T, S>& x, Context<T>&) { return x; }

  /// dx += dy.
  void backward(const Activation<T, S>& dy, Grad<T, S> dx, Context<T>&) { dx.add(dy); }

  template <class F>
  void visit_state(const std::string&, F&&) {}
};

}  // namespace odyssey
