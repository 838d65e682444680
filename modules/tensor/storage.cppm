// 64-byte aligned, move-only storage for tensors. Copies are explicit (`clone`).
module;
#include <algorithm>
#include <cstddef>
#include <new>
#include <span>
#include <stdexcept>
#include <utility>
export module odyssey.tensor:storage;

export namespace odyssey {

/// A zero-initialised (unless made `uninitialized`) array of T on 64-byte boundaries (one cache line, one AVX-512 vector).
/// `resize` keeps the allocation when it is large enough, so buffers sized once per batch
/// size are reused across steps without touching the heap. `view` makes a non-owning buffer
/// over memory owned elsewhere (scratch space shared between layers).
template <class T>
class AlignedBuffer {
 public:
  static constexpr std::size_t alignment = 64;

  AlignedBuffer() = default;
  explicit AlignedBuffer(std::size_t n) { resize(n); }
  ~AlignedBuffer() { release(); }

  /// n elements left uninitialised, for scratch space that is always written before it is
  /// read: pages no call touches are never made resident (a convolution's workspace holds
  /// one slot per possible thread, and only as many as run are used).
  [[nodiscard]] static AlignedBuffer uninitialized(std::size_t n) {
    AlignedBuffer b;
    b.allocate(n);
    b.size_ = n;
    return b;
  }

  /// A non-owning buffer of n elements at `data`; it cannot grow.
  [[nodiscard]] static AlignedBuffer view(T* data, std::size_t n) noexcept {
    AlignedBuffer b;
    b.data_ = data;
    b.size_ = b.capacity_ = n;
    b.owns_ = false;
    return b;
  }

  AlignedBuffer(AlignedBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        capacity_(std::exchange(o.capacity_, 0)),
        owns_(std::exchange(o.owns_, true)) {}
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      capacity_ = std::exchange(o.capacity_, 0);
      owns_ = std::exchange(o.owns_, true);
    }
    return *this;
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  /// A deep copy.
  [[nodiscard]] AlignedBuffer clone() const {
    AlignedBuffer c(size_);
    std::copy_n(data_, size_, c.data_);
    return c;
  }

  /// Makes room for n elements. Grows (and zero-fills) only when n exceeds the capacity;
  /// otherwise the elements keep their values.
  void resize(std::size_t n) {
    if (n > capacity_) {
      if (!owns_) throw std::length_error("AlignedBuffer: a view cannot grow");
      allocate(n);
      std::fill_n(data_, capacity_, T{});
    }
    size_ = n;
  }

  [[nodiscard]] T* data() noexcept { return data_; }
  [[nodiscard]] const T* data() const noexcept { return data_; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] std::span<T> span() noexcept { return {data_, size_}; }
  [[nodiscard]] std::span<const T> span() const noexcept { return {data_, size_}; }

 private:
  void allocate(std::size_t n) {
    release();
    // Round up to whole cache lines so vector loops may read a full line at the end.
    const std::size_t bytes = (n * sizeof(T) + alignment - 1) / alignment * alignment;
    data_ = static_cast<T*>(::operator new(bytes, std::align_val_t{alignment}));
    capacity_ = bytes / sizeof(T);
  }

  void release() noexcept {
    if (data_ && owns_) ::operator delete(data_, std::align_val_t{alignment});
    data_ = nullptr;
    size_ = capacity_ = 0;
  }

  T* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
  bool owns_ = true;
};

}  // namespace odyssey
