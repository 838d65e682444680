// ReLU, and the residual join: y = a + b, or y = max(a + b, 0), of two same-shaped inputs.
module;
#include <cstddef>
#include <string>
export module odyssey.layers:activation;
import odyssey.tensor;
import odyssey.kernels;
import :context;
import :conv;  // detail::expect_forward

export namespace odyssey {

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

  /// dx = dy where the output was positive (dx may be dy).
  void backward(const Activation<T, S>& dy, Activation<T, S>* dx, Context<T>&) {
    detail::expect_forward(y_.batch() ? &y_ : nullptr, y_.batch(), dy.batch(), "ReLU");
    if (!dx) return;
    dx->resize(dy.batch());
    kernels::relu_backward(dy.size(), y_.data(), dy.data(), dx->data());
  }

  [[nodiscard]] const Activation<T, S>& output() const noexcept { return y_; }
  template <class F>
  void visit_state(const std::string&, F&&) {}

 private:
  Activation<T, S> y_;
};

/// The residual join of a main branch (shape A) and a shortcut (shape B). The shapes must
/// be equal: a mismatch is a `layer wiring:` compile error naming both.
template <class T, ShapeType A, ShapeType B, bool Relu = true>
class ResidualAdd {
  static_assert(LayerWiring<A, B, ResidualAdd>::ok);

 public:
  using value_type = T;
  using input_shape = A;
  using shortcut_shape = B;
  using output_shape = A;

  ResidualAdd() = default;
  explicit ResidualAdd(Rng&) {}

  const Activation<T, A>& forward(const Activation<T, A>& a, const Activation<T, B>& b, Context<T>&) {
    b.expect_batch(a.batch(), "ResidualAdd shortcut");
    y_.resize(a.batch());
    if constexpr (Relu) {
      kernels::add_relu_forward(a.size(), a.data(), b.data(), y_.data());
    } else {
      kernels::add_forward(a.size(), a.data(), b.data(), y_.data());
    }
    return y_;
  }

  /// The gradient of both inputs is the same: dy, masked by the ReLU when there is one.
  /// Writes it once into `dsum` (which may be dy); the caller routes it to both branches.
  void backward(const Activation<T, A>& dy, Activation<T, A>& dsum, Context<T>&) {
    detail::expect_forward(y_.batch() ? &y_ : nullptr, y_.batch(), dy.batch(), "ResidualAdd");
    dsum.resize(dy.batch());
    if constexpr (Relu) {
      kernels::relu_backward(dy.size(), y_.data(), dy.data(), dsum.data());
    } else if (dsum.data() != dy.data()) {
      for (std::size_t i = 0; i < dy.size(); ++i) dsum.data()[i] = dy.data()[i];
    }
  }

  [[nodiscard]] const Activation<T, A>& output() const noexcept { return y_; }
  template <class F>
  void visit_state(const std::string&, F&&) {}

 private:
  Activation<T, A> y_;
};

}  // namespace odyssey
