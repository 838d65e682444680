// Tensors whose shapes are types.
//
// Tensor<T, Shape<...>>: every extent static; parameters (conv weights [K,C,R,S], BN
//   vectors [C], linear weights [K,C]), stored row-major exactly as PyTorch stores them.
// Activation<T, Shape<C,H,W>>: a batch of samples; every extent static but the batch N,
//   which is chosen at run time. Image samples are stored channels-last (NHWC: a pixel's
//   C channels are contiguous), the layout the kernels vectorise over; conversion from and
//   to PyTorch's NCHW happens at the network's edges (from_nchw / to_nchw).
module;
#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
export module odyssey.tensor:tensor;
import :shape;
import :errors;
import :storage;

namespace odyssey::detail {

template <std::size_t Rank>
std::string index_string(const std::size_t (&idx)[Rank]) {
  std::string s = "(";
  for (std::size_t i = 0; i < Rank; ++i) {
    if (i) s += ',';
    s += std::to_string(idx[i]);
  }
  return s + ')';
}

}  // namespace odyssey::detail

export namespace odyssey {

/// A tensor with every extent fixed at compile time, row-major.
template <class T, ShapeType S>
class Tensor {
 public:
  using value_type = T;
  using shape_type = S;
  static constexpr std::size_t elements = S::size;

  Tensor() : buf_(S::size) {}
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  [[nodiscard]] Tensor clone() const {
    Tensor c;
    std::copy_n(data(), S::size, c.data());
    return c;
  }

  [[nodiscard]] static constexpr std::size_t size() noexcept { return S::size; }
  [[nodiscard]] T* data() noexcept { return buf_.data(); }
  [[nodiscard]] const T* data() const noexcept { return buf_.data(); }
  [[nodiscard]] std::span<T, S::size> span() noexcept { return std::span<T, S::size>(data(), S::size); }
  [[nodiscard]] std::span<const T, S::size> span() const noexcept {
    return std::span<const T, S::size>(data(), S::size);
  }

  /// Unchecked flat access.
  T& operator[](std::size_t i) noexcept { return data()[i]; }
  const T& operator[](std::size_t i) const noexcept { return data()[i]; }

  /// Checked access by multi-index; throws IndexError naming the index and the shape.
  template <class... I>
    requires(sizeof...(I) == S::rank)
  T& at(I... i) {
    return data()[offset(i...)];
  }
  template <class... I>
    requires(sizeof...(I) == S::rank)
  const T& at(I... i) const {
    return data()[offset(i...)];
  }

  void fill(T v) noexcept { std::fill_n(data(), S::size, v); }

 private:
  template <class... I>
  static std::size_t offset(I... i) {
    const std::size_t idx[] = {static_cast<std::size_t>(i)...};
    std::size_t off = 0;
    for (std::size_t d = 0; d < S::rank; ++d) {
      if (idx[d] >= S::extents[d])
        throw IndexError("index " + detail::index_string(idx) + " is outside " + S::str());
      off += idx[d] * S::strides[d];
    }
    return off;
  }

  AlignedBuffer<T> buf_;
};

/// A batch of samples of shape S; the batch extent is a run-time value.
template <class T, ShapeType S>
class Activation {
 public:
  using value_type = T;
  using shape_type = S;
  static constexpr std::size_t sample_size = S::size;

  Activation() = default;
  explicit Activation(std::size_t batch) { resize(batch); }

  /// A non-owning batch over batch * S::size elements at `data` (e.g. scratch memory); it
  /// cannot be resized beyond that.
  [[nodiscard]] static Activation view(T* data, std::size_t batch) noexcept {
    Activation a;
    a.buf_ = AlignedBuffer<T>::view(data, batch * S::size);
    a.batch_ = batch;
    return a;
  }
  Activation(Activation&&) noexcept = default;
  Activation& operator=(Activation&&) noexcept = default;
  Activation(const Activation&) = delete;
  Activation& operator=(const Activation&) = delete;

  [[nodiscard]] Activation clone() const {
    Activation c(batch_);
    std::copy_n(data(), size(), c.data());
    return c;
  }

  /// Sets the batch extent. Memory is reallocated only when the batch grows beyond every
  /// batch seen before; otherwise the existing allocation is reused.
  void resize(std::size_t batch) {
    buf_.resize(batch * S::size);
    batch_ = batch;
  }

  [[nodiscard]] std::size_t batch() const noexcept { return batch_; }
  [[nodiscard]] std::size_t size() const noexcept { return batch_ * S::size; }
  [[nodiscard]] T* data() noexcept { return buf_.data(); }
  [[nodiscard]] const T* data() const noexcept { return buf_.data(); }
  [[nodiscard]] std::span<T> span() noexcept { return {data(), size()}; }
  [[nodiscard]] std::span<const T> span() const noexcept { return {data(), size()}; }
  [[nodiscard]] T* sample(std::size_t n) noexcept { return data() + n * S::size; }
  [[nodiscard]] const T* sample(std::size_t n) const noexcept { return data() + n * S::size; }

  void fill(T v) noexcept { std::fill_n(data(), size(), v); }

  /// Offset of a logical (PyTorch-order) index within one sample: channels-last for
  /// image samples, row-major otherwise.
  template <class... I>
    requires(sizeof...(I) == S::rank)
  static constexpr std::size_t sample_offset(I... i) noexcept {
    const std::size_t idx[] = {static_cast<std::size_t>(i)...};
    if constexpr (S::rank == 3) {
      return (idx[1] * S::extents[2] + idx[2]) * S::extents[0] + idx[0];
    } else {
      std::size_t off = 0;
      for (std::size_t d = 0; d < S::rank; ++d) off += idx[d] * S::strides[d];
      return off;
    }
  }

  /// Checked access by (n, logical index...); throws IndexError.
  template <class... I>
    requires(sizeof...(I) == S::rank)
  T& at(std::size_t n, I... i) {
    return data()[checked_offset(n, i...)];
  }
  template <class... I>
    requires(sizeof...(I) == S::rank)
  const T& at(std::size_t n, I... i) const {
    return data()[checked_offset(n, i...)];
  }

  /// Throws ShapeError unless the batch extent is `expected`; `what` names the tensor.
  void expect_batch(std::size_t expected, const char* what) const {
    if (batch_ != expected)
      throw ShapeError(std::string(what) + ": batch of " + std::to_string(batch_) + " " +
                       S::str() + " samples where " + std::to_string(expected) +
                       " were expected");
  }

  /// Fills from `batch` samples stored in PyTorch's layout (NCHW for images); resizes.
  void from_nchw(const T* src, std::size_t batch) {
    resize(batch);
    if constexpr (S::rank == 3) {
      constexpr std::size_t C = S::extents[0], HW = S::extents[1] * S::extents[2];
      for (std::size_t n = 0; n < batch; ++n)
        for (std::size_t c = 0; c < C; ++c)
          for (std::size_t p = 0; p < HW; ++p) sample(n)[p * C + c] = src[(n * C + c) * HW + p];
    } else {
      std::copy_n(src, size(), data());
    }
  }

  /// Writes the batch in PyTorch's layout (NCHW for images) to `dst` (size() elements).
  void to_nchw(T* dst) const {
    if constexpr (S::rank == 3) {
      constexpr std::size_t C = S::extents[0], HW = S::extents[1] * S::extents[2];
      for (std::size_t n = 0; n < batch_; ++n)
        for (std::size_t c = 0; c < C; ++c)
          for (std::size_t p = 0; p < HW; ++p) dst[(n * C + c) * HW + p] = sample(n)[p * C + c];
    } else {
      std::copy_n(data(), size(), dst);
    }
  }

 private:
  template <class... I>
  std::size_t checked_offset(std::size_t n, I... i) const {
    const std::size_t idx[] = {n, static_cast<std::size_t>(i)...};
    bool inside = n < batch_;
    for (std::size_t d = 0; d < S::rank; ++d) inside = inside && idx[d + 1] < S::extents[d];
    if (!inside)
      throw IndexError("index " + detail::index_string(idx) + " is outside a batch of " +
                       std::to_string(batch_) + " " + S::str() + " samples");
    return n * S::size + sample_offset(i...);
  }

  AlignedBuffer<T> buf_;
  std::size_t batch_ = 0;
};

/// Activation<T, S> for some T and S.
template <class A>
concept ActivationType = requires {
  typename A::shape_type;
  typename A::value_type;
} && std::is_same_v<A, Activation<typename A::value_type, typename A::shape_type>>;

}  // namespace odyssey
