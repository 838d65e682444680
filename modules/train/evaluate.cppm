// Evaluation of any model on a dataset (loss, accuracy, confusion matrix; optionally with
// flip test-time augmentation), batch-norm statistics re-estimated before it, and the
// metadata that makes a weights file self-describing.
module;
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>
export module odyssey.train:evaluate;
import odyssey.tensor;
import odyssey.layers;
import odyssey.data;
import :format;
import :metrics;
import :checkpoint;

export namespace odyssey {

/// Called after each evaluated batch with (images done, images in all).
using EvalProgress = std::function<void(std::size_t, std::size_t)>;

/// Whether a network's weights may change between a Predictor's calls (training between
/// evaluations), or stay as they are for its lifetime: then its convolutions keep their
/// prepared weights between calls (Context::weights_fixed), which ResNet-18's inference runs
/// 1.2x (batch 128) to 2x (batch 1) as fast with, at the memory of those weights: up to 4x the
/// convolutions' weights (F(4x4, 3x3)'s transformed ones), 170 MB more for ResNet-18 at batch
/// 128.
enum class Weights { may_change, fixed };

/// Class probabilities of a model for batches of images, in inference mode. With `flip`
/// (flip test-time augmentation), the mean of the softmax probabilities of each image and of
/// its mirror image. With Weights::fixed, no parameter of a network run with it may change
/// while the Predictor is in use, and no network run with it may be destroyed and another
/// made in its place (the prepared weights are kept by layer address).
template <Layer Net>
class Predictor {
 public:
  using T = typename Net::value_type;
  static constexpr std::size_t classes = Net::output_shape::size;

  explicit Predictor(bool flip = false, Weights weights = Weights::may_change) : flip_(flip) {
    ctx_.mode = Mode::inference;
    ctx_.weights_fixed = weights == Weights::fixed;
  }

  [[nodiscard]] bool flip() const noexcept { return flip_; }

  /// The probabilities of `batch`'s images, row i for image i; ShapeError for a batch of
  /// another image shape. With flip, `batch` is left mirrored. `stats` gets the loss and
  /// correct count of the unflipped pass (by the labels of `batch`).
  std::span<const T> run(Net& net, Batch& batch, LossStats* stats = nullptr) {
    copy_batch(batch, x_);
    const LossStats st = loss_.forward(net.forward(x_, ctx_), batch.labels);
    if (stats) *stats = st;
    const auto& p = loss_.probabilities();
    probs_.assign(p.data(), p.data() + batch.size * classes);
    if (flip_) {
      flip_horizontal(batch);
      copy_batch(batch, x_);
      loss_.forward(net.forward(x_, ctx_), batch.labels);
      const T* q = loss_.probabilities().data();
      for (std::size_t i = 0; i < probs_.size(); ++i) probs_[i] = (probs_[i] + q[i]) * T(0.5);
    }
    return probs_;
  }

 private:
  bool flip_;
  Context<T> ctx_;
  SoftmaxCrossEntropy<T, classes> loss_;
  Activation<T, typename Net::input_shape> x_;
  std::vector<T> probs_;
};

struct EvalOptions {
  std::size_t batch_size = 256;
  bool flip = false;  // flip test-time augmentation (see Predictor)
};

/// Loss, accuracy and confusion matrix of `net` on `data`, in inference mode. With flip the
/// loss is the cross-entropy of the averaged probabilities. ShapeError when the dataset's
/// images are not the model's input shape.
template <Layer Net>
EvalResult evaluate(Net& net, const Dataset& data, const EvalOptions& options, const EvalProgress& progress = {}) {
  constexpr std::size_t classes = Net::output_shape::size;
  expect_images<typename Net::input_shape>(data, "the model");
  BatchLoader loader(data, LoaderOptions{options.batch_size, false, false, 0});
  loader.start_epoch(0);
  // The weights cannot change during this call.
  Predictor<Net> predictor(options.flip, Weights::fixed);
  Batch batch;
  EvalResult r;
  r.confusion = ConfusionMatrix(classes);
  double loss_sum = 0;
  std::size_t correct = 0;
  while (loader.next(batch)) {
    LossStats st;
    const auto p = predictor.run(net, batch, &st);
    for (std::size_t i = 0; i < batch.size; ++i) {
      const auto* row = p.data() + i * classes;
      const std::size_t pred = std::size_t(std::max_element(row, row + classes) - row);
      const auto label = std::size_t(batch.labels[i]);
      r.confusion.add(label, pred);
      if (options.flip) {
        loss_sum -= std::log(std::max(double(row[label]), 1e-30));
        correct += pred == label;
      }
    }
    if (!options.flip) {
      loss_sum += st.loss * double(batch.size);
      correct += st.correct;
    }
    r.count += batch.size;
    if (progress) progress(r.count, data.count);
  }
  r.loss = r.count ? loss_sum / double(r.count) : 0;
  r.accuracy = r.count ? double(correct) / double(r.count) : 0;
  return r;
}

template <Layer Net>
EvalResult evaluate(Net& net, const Dataset& data, std::size_t batch_size, const EvalProgress& progress = {}) {
  return evaluate(net, data, EvalOptions{batch_size, false}, progress);
}

/// Re-estimates the running statistics of every batch norm in `net` as the plain average
/// over `batches` training-mode forward passes (no backward, no update) over batches of
/// `data` in a shuffled order drawn from `seed`, without augmentation: what PyTorch's
/// torch.optim.swa_utils.update_bn computes. Statistics that drift behind fast-moving
/// weights (the last steps of a high learning rate, or an average of weights) then describe
/// the weights being evaluated. Stops early at the end of the data or before a batch of one;
/// leaves the statistics alone when `batches` is 0 or the data has fewer than two images.
template <Layer Net>
void reestimate_batch_norm(Net& net, const Dataset& data, std::size_t batches, std::size_t batch_size,
                           std::uint64_t seed) {
  using T = typename Net::value_type;
  expect_images<typename Net::input_shape>(data, "the model");
  if (batches == 0 || data.count < 2) return;
  for (auto& e : state(net)) {
    if (e.kind == StateKind::running_mean) std::fill(e.value.begin(), e.value.end(), T(0));
    if (e.kind == StateKind::running_var) std::fill(e.value.begin(), e.value.end(), T(1));
    if (e.kind == StateKind::counter && e.counter) *e.counter = 0;
  }
  BatchLoader loader(data, LoaderOptions{batch_size, true, false, derive_seed(seed, 0x726563616cULL /* "recal" */, 0)});
  loader.start_epoch(0);
  Context<T> ctx;
  ctx.mode = Mode::training;
  ctx.seed = seed;
  Activation<T, typename Net::input_shape> x;
  Batch batch;
  for (std::size_t k = 1; k <= batches && loader.next(batch) && batch.size >= 2; ++k) {
    copy_batch(batch, x);
    ctx.begin_step(k - 1);
    ctx.running_stats_momentum = 1.0 / double(k);
    (void)net.forward(x, ctx);
  }
}

/// Keeps a copy of the running statistics and batch counters among `entries` (a network's
/// state) and puts it back at the end of its scope; nothing for no entries.
template <class T>
class RunningStatsKept {
 public:
  explicit RunningStatsKept(std::vector<StateEntry<T>> entries) {
    for (auto& e : entries) {
      if (e.kind != StateKind::running_mean && e.kind != StateKind::running_var && e.kind != StateKind::counter)
        continue;
      if (e.counter) counters_.push_back(*e.counter);
      else values_.emplace_back(e.value.begin(), e.value.end());
      entries_.push_back(std::move(e));
    }
  }
  ~RunningStatsKept() {
    std::size_t v = 0, c = 0;
    for (auto& e : entries_) {
      if (e.counter) *e.counter = counters_[c++];
      else std::copy(values_[v].begin(), values_[v].end(), e.value.begin()), ++v;
    }
  }
  RunningStatsKept(const RunningStatsKept&) = delete;
  RunningStatsKept& operator=(const RunningStatsKept&) = delete;

 private:
  std::vector<StateEntry<T>> entries_;
  std::vector<std::vector<T>> values_;
  std::vector<std::int64_t> counters_;
};

/// Metadata that makes a weights file self-describing: dataset, normalisation, classes.
inline Metadata dataset_metadata(const Dataset& d, const std::string& dataset_key) {
  nlohmann::json mean = nlohmann::json::array(), std = nlohmann::json::array();
  for (std::size_t c = 0; c < d.channels; ++c) {
    mean.push_back(d.mean[c]);
    std.push_back(d.stddev[c]);
  }
  return {{"dataset", dataset_key},
          {"in_channels", std::to_string(d.channels)},
          {"image_size", detail::rformat("{}x{}", d.height, d.width)},
          {"normalize_mean", mean.dump()},
          {"normalize_std", std.dump()},
          {"class_names", nlohmann::json(d.class_names).dump()}};
}

}  // namespace odyssey
