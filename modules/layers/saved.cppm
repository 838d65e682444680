// What a forward pass keeps for its backward pass, and the checks that the two belong together.
//
// The rule for inputs: a layer that needs its input in backward (Conv2d, Linear, BatchNorm2d)
// keeps a pointer to it, not a copy, so the caller keeps the input alive and unchanged from
// forward until backward. Compositions do so by construction (each layer's output lives in the
// layer until its next forward). Debug builds check it: the input's address, batch and a
// fingerprint of its contents are recorded at forward and compared at backward.
module;
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
export module odyssey.layers:saved;
import odyssey.tensor;

export namespace odyssey {

namespace detail {

/// Throws unless a backward pass has the forward pass it belongs to.
inline void expect_forward(const void* cached, std::size_t cached_batch, std::size_t batch,
                           const char* layer) {
  if (!cached)
    throw Error(std::string(layer) + ": backward called without a training-mode forward pass");
  if (cached_batch != batch)
    throw ShapeError(std::string(layer) + ": backward got a batch of " + std::to_string(batch) +
                     " but the forward pass saw " + std::to_string(cached_batch));
}

/// A forward pass's input, kept by pointer for backward (see the rule above).
template <class T, ShapeType S>
class SavedInput {
 public:
  void save(const Activation<T, S>& x) {
    x_ = &x;
#ifndef NDEBUG
    data_ = x.data();
    batch_ = x.batch();
    fingerprint_ = fingerprint(x);
#endif
  }
  void clear() noexcept { x_ = nullptr; }
  [[nodiscard]] bool saved() const noexcept { return x_ != nullptr; }

  /// The input, for a backward pass over `batch` samples; throws when there was no forward
  /// pass, the batch differs, or (debug builds) the input moved or changed since forward.
  [[nodiscard]] const Activation<T, S>& get(std::size_t batch, const char* layer) const {
    expect_forward(x_, x_ ? x_->batch() : 0, batch, layer);
#ifndef NDEBUG
    if (x_->data() != data_ || x_->batch() != batch_ || fingerprint(*x_) != fingerprint_)
      throw Error(std::string(layer) + ": the input of its forward pass was changed or freed before "
                  "backward; keep it alive and unchanged until backward has run");
#endif
    return *x_;
  }

 private:
#ifndef NDEBUG
  static std::uint64_t fingerprint(const Activation<T, S>& x) {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a over the bytes
    const auto* p = reinterpret_cast<const unsigned char*>(x.data());
    for (std::size_t i = 0, n = x.size() * sizeof(T); i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
    return h;
  }
  const T* data_ = nullptr;
  std::size_t batch_ = 0;
  std::uint64_t fingerprint_ = 0;
#endif
  const Activation<T, S>* x_ = nullptr;
};

}  // namespace detail

}  // namespace odyssey
