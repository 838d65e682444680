// Batches for training and evaluation, prepared on a background thread. While the caller
// computes on one batch the worker fills the next (two slots: the worker may be at most two
// batches ahead), so the cores never wait for data. Batch b of epoch e depends only on
// (seed, e, b) (see augment.cppm): start_epoch(e, b) resumes a run bit for bit.
module;
#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <stop_token>
#include <thread>
#include <string>
#include <utility>
#include <vector>
#include <fmt/format.h>
export module odyssey.data:loader;
import odyssey.tensor;
import :dataset;
import :augment;

export namespace odyssey {

struct LoaderOptions {
  std::size_t batch_size = 128;
  bool shuffle = true;   // a new seeded order every epoch
  bool augment = false;  // `augmentation` applies: training only
  std::uint64_t seed = 0;
  AugmentOptions augmentation;
  // Data parallelism: this loader yields shard `shard` of `shards` of every batch (images
  // [n*shard/shards, n*(shard+1)/shards) of a batch of n), drawn exactly as the whole batch
  // would be, so the shards of all ranks together are the single-process batch.
  std::size_t shard = 0, shards = 1;
};

/// One batch: `size` samples, each [H, W, C] channels-last float (normalised), then labels.
/// A shard of a data-parallel batch also knows the whole batch's size.
struct Batch {
  std::size_t size = 0;
  std::size_t global_size = 0;  // the whole batch (= size unless sharded)
  std::size_t channels = 0, height = 0, width = 0;  // of each sample
  std::vector<float> pixels;         // size * H * W * C
  std::vector<std::int32_t> labels;  // size
};

/// Mirrors every sample of `batch` left to right (x -> W-1-x): the second view of flip
/// test-time augmentation.
void flip_horizontal(Batch& batch) {
  const std::size_t C = batch.channels, W = batch.width, rows = batch.size * batch.height;
  for (std::size_t r = 0; r < rows; ++r) {
    float* row = batch.pixels.data() + r * W * C;
    for (std::size_t x = 0; x < W / 2; ++x)
      std::swap_ranges(row + x * C, row + (x + 1) * C, row + (W - 1 - x) * C);
  }
}

/// Iterates a dataset in batches. The dataset must outlive the loader and stay unchanged.
class BatchLoader {
 public:
  /// ValueError for a zero batch size or an inconsistent dataset.
  BatchLoader(const Dataset& data, LoaderOptions options)
      : data_(data), options_(options), norm_(data) {
    check_dataset(data);
    if (options.batch_size == 0) throw ValueError("BatchLoader: the batch size must be positive");
    if (options.shards == 0 || options.shard >= options.shards)
      throw ValueError(fmt::format("BatchLoader: shard {} of {} does not exist", options.shard, options.shards));
    for (Batch& s : slots_) {
      s.pixels.reserve(options.batch_size * data.sample_size());
      s.labels.reserve(options.batch_size);
    }
  }

  ~BatchLoader() { stop(); }
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  /// Batches per epoch, the last one partial when the batch size does not divide the count.
  [[nodiscard]] std::size_t batches_per_epoch() const noexcept {
    return (data_.count + options_.batch_size - 1) / options_.batch_size;
  }
  [[nodiscard]] const Dataset& dataset() const noexcept { return data_; }
  [[nodiscard]] const LoaderOptions& options() const noexcept { return options_; }

  /// Begins `epoch` at batch `first_batch` (0 for a whole epoch; later to resume), dropping
  /// whatever was prepared before. ValueError when first_batch > batches_per_epoch().
  void start_epoch(std::size_t epoch, std::size_t first_batch = 0) {
    if (first_batch > batches_per_epoch())
      throw ValueError(fmt::format("BatchLoader: cannot start at batch {} of an epoch of {}",
                                   first_batch, batches_per_epoch()));
    stop();
    epoch_order(options_.seed, epoch, data_.count, options_.shuffle, order_);
    epoch_ = epoch;
    produced_ = consumed_ = first_batch;
    error_ = nullptr;
    started_ = true;
    worker_ = std::jthread([this, first_batch](std::stop_token st) { run(st, first_batch); });
  }

  /// Moves the next batch into `out` (swapping buffers, so none is reallocated once every
  /// buffer has been sized) and returns true; false at the end of the epoch. Rethrows an
  /// exception the worker met preparing this batch.
  bool next(Batch& out) {
    if (!started_) throw ValueError("BatchLoader: next() before start_epoch()");
    std::unique_lock lock(mutex_);
    if (consumed_ == batches_per_epoch()) return false;
    ready_.wait(lock, [&] { return produced_ > consumed_ || error_; });
    if (produced_ <= consumed_) std::rethrow_exception(error_);
    Batch& slot = slots_[consumed_ % slots_.size()];
    out.size = slot.size;
    out.global_size = slot.global_size;
    out.channels = slot.channels;
    out.height = slot.height;
    out.width = slot.width;
    out.pixels.swap(slot.pixels);
    out.labels.swap(slot.labels);
    ++consumed_;
    lock.unlock();
    ready_.notify_all();
    return true;
  }

 private:
  void stop() {
    if (worker_.joinable()) {
      worker_.request_stop();  // wakes the worker's wait
      worker_.join();
    }
  }

  /// The worker: fills batch b into slot b % 2 once the caller has taken batch b - 2.
  void run(std::stop_token st, std::size_t first_batch) {
    for (std::size_t b = first_batch; b < batches_per_epoch(); ++b) {
      {
        std::unique_lock lock(mutex_);
        if (!ready_.wait(lock, st, [&] { return b - consumed_ < slots_.size(); })) return;
      }
      try {
        fill(slots_[b % slots_.size()], b);
      } catch (...) {
        {
          std::lock_guard lock(mutex_);
          error_ = std::current_exception();
        }
        ready_.notify_all();
        return;
      }
      {
        std::lock_guard lock(mutex_);
        produced_ = b + 1;
      }
      ready_.notify_all();
    }
  }

  void fill(Batch& out, std::size_t b) const {
    const std::size_t first = b * options_.batch_size;
    const std::size_t whole = std::min(options_.batch_size, data_.count - first);
    const std::size_t lo = whole * options_.shard / options_.shards, hi = whole * (options_.shard + 1) / options_.shards;
    const std::size_t n = hi - lo;
    const std::size_t sample = data_.sample_size();
    // Labels are checked here, as they are batched, so a hand-made dataset cannot feed the
    // loss an out-of-range class (the file loaders have checked theirs already).
    const std::size_t classes = data_.class_names.empty() ? 256 : data_.class_names.size();
    out.size = n;
    out.global_size = whole;
    out.channels = data_.channels;
    out.height = data_.height;
    out.width = data_.width;
    out.pixels.resize(n * sample);
    out.labels.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t position = first + lo + i;  // in the epoch's order
      const std::size_t index = order_[position];
      const std::uint8_t label = data_.labels[index];
      if (label >= classes)
        throw ValueError(fmt::format("{}: image {} has label {}, but there are {} classes",
                                     data_.name, index, label, classes));
      const AugmentParams p =
          options_.augment ? augment_params(options_.augmentation, options_.seed, epoch_, position, index,
                                            data_.height, data_.width)
                           : AugmentParams{};
      write_sample(data_, index, p, norm_, out.pixels.data() + i * sample);
      out.labels[i] = label;
    }
  }

  const Dataset& data_;
  LoaderOptions options_;
  Normaliser norm_;
  std::vector<std::size_t> order_;
  std::size_t epoch_ = 0;
  bool started_ = false;

  std::mutex mutex_;
  std::condition_variable_any ready_;
  std::array<Batch, 2> slots_;
  std::size_t produced_ = 0;  // batches [.., produced_) are ready (guarded by mutex_)
  std::size_t consumed_ = 0;  // batches [.., consumed_) were taken (guarded by mutex_)
  std::exception_ptr error_;  // guarded by mutex_
  std::jthread worker_;       // last: stops before the members it uses are destroyed
};

/// Throws ShapeError unless the images of `data` have the model's input shape S ([C, H, W]);
/// `what` names the model in the message. Run before training, evaluation or prediction.
template <ImageShape S>
void expect_images(const Dataset& data, const std::string& what) {
  if (data.channels != S::extents[0] || data.height != S::extents[1] || data.width != S::extents[2])
    throw ShapeError(fmt::format("{} holds {}x{}x{} images (channels x height x width), but {} takes {}",
                                 data.name.empty() ? std::string("the dataset") : "dataset '" + data.name + "'",
                                 data.channels, data.height, data.width, what, S::str()));
}

/// The one way untyped pixels become a typed activation: copies `batch` into `x` (resized to
/// the batch) after checking that its samples are S, else ShapeError naming both shapes and
/// nothing is written.
template <ImageShape S>
void copy_batch(const Batch& batch, Activation<float, S>& x) {
  if (batch.channels != S::extents[0] || batch.height != S::extents[1] || batch.width != S::extents[2] ||
      batch.pixels.size() != batch.size * S::size)
    throw ShapeError(fmt::format("a batch of {} images of {}x{}x{} ({} values) cannot fill a batch of {}",
                                 batch.size, batch.channels, batch.height, batch.width, batch.pixels.size(),
                                 S::str()));
  x.resize(batch.size);
  std::copy(batch.pixels.begin(), batch.pixels.end(), x.data());
}

}  // namespace odyssey
