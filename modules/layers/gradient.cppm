// Grad: where a layer's backward pass puts the gradient of its input, and the one rule every
// backward follows: it ADDS its contribution into the sink (llm.c's rule). An input that feeds
// several branches then gets the sum of their gradients with no routing code: each branch's
// backward adds into the same sink.
//
// A sink starts empty, meaning its gradient is zero so far; the first contribution writes the
// buffer (resizing it to the batch), later ones add to it. So a chain of layers pays no
// zeroing pass, and a branch point pays one addition per extra branch. A null sink means the
// gradient is not wanted (the network's input): the layer skips that work, but still adds its
// parameters' gradients.
module;
#include <algorithm>
#include <cstddef>
export module odyssey.layers:gradient;
import odyssey.tensor;
import odyssey.kernels;
import :context;

export namespace odyssey {

template <class T, ShapeType S>
class Grad {
 public:
  /// Not wanted.
  Grad() = default;
  Grad(std::nullptr_t) noexcept {}
  /// An empty sink over `target` (its contents are ignored; the first contribution writes).
  Grad(Activation<T, S>* target) noexcept : target_(target) {}  // NOLINT: implicit, as a pointer
  /// A sink that already holds a gradient in `held`: contributions add to it.
  [[nodiscard]] static Grad adding_to(Activation<T, S>& held) noexcept {
    Grad g(&held);
    g.holds_ = true;
    return g;
  }

  /// True when the gradient is wanted.
  explicit operator bool() const noexcept { return target_ != nullptr; }
  /// True when a contribution is already there.
  [[nodiscard]] bool holds() const noexcept { return holds_; }

  /// The same sink after one contribution has been made to it: what a branch point hands to
  /// its second branch once the first branch's backward has run.
  [[nodiscard]] Grad then() const noexcept {
    Grad g = *this;
    g.holds_ = target_ != nullptr;
    return g;
  }

  /// A contribution from a kernel that can add: `write(T* out, bool accumulate)` writes or
  /// adds the gradient of a batch of `batch` samples at `out`.
  template <class F>
  void add(std::size_t batch, F&& write) {
    if (!target_) return;
    prepare(batch);
    write(target_->data(), holds_);
    holds_ = true;
  }

  /// A contribution from a kernel that can only overwrite: `write(T* out)`. Into an empty
  /// sink it writes directly; into one that holds a gradient it goes through scratch memory
  /// and is added.
  template <class F>
  void add_written(std::size_t batch, Context<T>& ctx, F&& write) {
    if (!target_) return;
    prepare(batch);
    if (!holds_) {
      write(target_->data());
      holds_ = true;
      return;
    }
    auto slot = ctx.scratch.take();
    auto tmp = slot.template view<S>(batch);
    write(tmp.data());
    kernels::accumulate(tmp.size(), tmp.data(), target_->data());
  }

  /// An existing gradient `g` added in.
  void add(const Activation<T, S>& g) {
    add(g.batch(), [&](T* out, bool accumulate) {
      if (accumulate) kernels::accumulate(g.size(), g.data(), out);
      else if (out != g.data()) std::copy_n(g.data(), g.size(), out);
    });
  }

  /// For a layer that builds its contribution in place in several steps: the buffer of an
  /// empty sink, resized to `batch`, or null when the sink is not wanted or already holds a
  /// gradient. Whatever is written there must be completed by a write-mode contribution
  /// (`add_written`) to the same sink.
  [[nodiscard]] T* empty_buffer(std::size_t batch) {
    if (!target_ || holds_) return nullptr;
    target_->resize(batch);
    return target_->data();
  }

 private:
  void prepare(std::size_t batch) {
    if (holds_) target_->expect_batch(batch, "input gradient");
    else target_->resize(batch);
  }

  Activation<T, S>* target_ = nullptr;
  bool holds_ = false;
};

}  // namespace odyssey
