// What every forward and backward call receives besides its tensors: the mode, and scratch
// memory for gradients that live only during a backward pass.
module;
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>
export module odyssey.layers:context;
import odyssey.tensor;
import odyssey.dist;

export namespace odyssey {

/// Training: batch statistics, running-statistics updates, caches for backward.
/// Inference: running statistics, nothing cached. Always explicit, never guessed.
enum class Mode { training, inference };

/// Scratch buffers for backward passes, taken and given back in stack order. A buffer keeps
/// its largest size, so after the first step at a batch size no backward pass allocates.
template <class T>
class Scratch {
 public:
  /// A buffer on loan; returned when the Slot goes out of scope.
  class Slot {
   public:
    Slot(Slot&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)), index_(o.index_) {}
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    Slot& operator=(Slot&&) = delete;
    ~Slot() {
      if (owner_) owner_->release(index_);
    }

    /// The buffer as a batch of `batch` samples of shape S (growing it if needed). A view
    /// stays valid until the next view of the same slot, or the slot's return.
    template <ShapeType S>
    Activation<T, S> view(std::size_t batch) {
      AlignedBuffer<T>& b = owner_->buffers_[index_];
      b.resize(batch * S::size);
      return Activation<T, S>::view(b.data(), batch);
    }

   private:
    friend Scratch;
    Slot(Scratch* owner, std::size_t index) : owner_(owner), index_(index) {}
    Scratch* owner_;
    std::size_t index_;
  };

  Slot take() {
    if (depth_ == buffers_.size()) {
      buffers_.emplace_back();
      in_use_.push_back(false);
    }
    in_use_[depth_] = true;
    return Slot(this, depth_++);
  }

  /// Buffers ever handed out (the deepest nesting seen).
  [[nodiscard]] std::size_t slots() const noexcept { return buffers_.size(); }

 private:
  void release(std::size_t i) noexcept {
    in_use_[i] = false;
    while (depth_ > 0 && !in_use_[depth_ - 1]) --depth_;
  }

  std::vector<AlignedBuffer<T>> buffers_;
  std::vector<bool> in_use_;
  std::size_t depth_ = 0;
};

/// The state a pass runs in.
template <class T>
struct Context {
  Mode mode = Mode::training;
  Scratch<T> scratch;

  /// Randomness of training-mode layers (Dropout): each call draws the stream
  /// (step, k-th draw of the step), so masks are a pure function of (seed, step, k, element)
  /// whatever the thread count, and a resumed run draws what the uninterrupted one would.
  std::uint64_t seed = 0;
  std::uint64_t step = 0;
  std::uint64_t draws = 0;

  /// When >= 0: the momentum every batch norm's running statistics take in this training-mode
  /// pass instead of its own (1/k at the k-th batch of a re-estimation makes them the
  /// cumulative average over the batches, as PyTorch's momentum=None).
  double running_stats_momentum = -1;

  /// When a batch is one shard of a data-parallel batch (distributed(comm)): the ranks that
  /// hold the others. Training-mode batch norms then normalise over the whole batch
  /// (PyTorch's SyncBatchNorm), with statistics merged in rank order.
  Communicator* comm = nullptr;

  /// Called by each layer's backward pass once it has finished a parameter's gradient (the
  /// gradient exchange of a data-parallel step starts sending it while backward goes on).
  std::function<void(std::span<const T>)> on_gradient;
  void gradient_ready(std::span<const T> grad) {
    if (on_gradient) on_gradient(grad);
  }

  /// Scratch memory of the convolutions (kernels::conv2d_workspace_size): one buffer for
  /// every layer, since a call's scratch is dead when it returns and layers run one at a
  /// time; grown to the largest need seen and never shrunk. Uninitialised, so pages that no
  /// call touches never become resident.
  AlignedBuffer<T> workspace;
  [[nodiscard]] T* workspace_for(std::size_t elements) {
    if (workspace.size() < elements) workspace = AlignedBuffer<T>::uninitialized(elements);
    return workspace.data();
  }

  /// Set where the parameters of every network run with this context stay as they are for
  /// as long as it is used (a Predictor made with Weights::fixed: `odyssey infer`, evaluate).
  /// Inference-mode convolutions then keep their weights prepared (transformed or packed)
  /// between calls, in `prepared_weights`, by layer: ResNet-18's inference spent half its
  /// time at batch 1, and 11% at batch 128 (Zen 5), preparing them. Changing a weight while
  /// it is set leaves the old one in use.
  bool weights_fixed = false;
  std::unordered_map<const void*, AlignedBuffer<T>> prepared_weights;

  /// Called by the training step before each forward pass.
  void begin_step(std::uint64_t global_step) noexcept {
    step = global_step;
    draws = 0;
  }
  [[nodiscard]] std::uint64_t next_stream() noexcept { return (step << 20) | (draws++ & 0xfffff); }
};

}  // namespace odyssey
