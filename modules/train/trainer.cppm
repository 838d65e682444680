// The training loop for any model: epochs of TrainStep over a shuffled, augmented dataset
// with a learning-rate schedule, evaluation after every epoch, metrics.csv, atomic
// checkpoints (at every epoch's end, within epochs when asked, and where a stop request
// ends the run), resume from any of them, and the final weights. The library prints nothing: a TrainObserver
// hears about the run as it goes (the CLI's prints progress lines).
//
// A run is defined by its TrainSettings (saved in every checkpoint): the same model
// initialisation, settings and seed give bitwise the same weights, whatever the thread count,
// and a resumed run ends where the uninterrupted one does.
module;
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>
#include <unistd.h>
#include <nlohmann/json.hpp>
export module odyssey.train:trainer;
import odyssey.tensor;
import odyssey.dist;
import odyssey.layers;
import odyssey.optim;
import odyssey.io;
import odyssey.data;
import :format;
import :metrics;
import :checkpoint;
import :plot;
import :settings;
import :evaluate;
import :step;

export namespace odyssey {

/// Progress of one epoch after a step: running means over the epoch so far.
struct StepReport {
  std::size_t epoch = 0, epochs = 0;  // 1-based
  std::size_t step = 0;               // global optimizer steps taken
  std::size_t batch = 0, batches = 0; // 1-based within the epoch
  std::size_t images = 0;             // images seen this epoch
  double loss = 0, accuracy = 0, lr = 0;
  double seconds = 0;                 // since the epoch started
};

struct EpochReport {
  std::size_t epoch = 0, epochs = 0, step = 0;
  double train_loss = 0, train_accuracy = 0;
  EvalResult test;
  double images_per_second = 0;  // training images, this epoch
  double seconds_total = 0;      // since this invocation started
  std::filesystem::path checkpoint;
};

/// What a run reports as it happens. Every method has an empty default.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  /// The run continues from `from`; `skipped` lists newer checkpoints that could not be read.
  virtual void resumed(const CheckpointInfo& /*from*/, const std::vector<std::string>& /*skipped*/) {}
  /// Epoch `epoch` (1-based) of `batches` begins at batch `first_batch` (0, or later on a
  /// mid-epoch resume).
  virtual void epoch_started(std::size_t /*epoch*/, std::size_t /*epochs*/, std::size_t /*batches*/,
                             std::size_t /*first_batch*/) {}
  virtual void step_done(const StepReport&) {}
  /// Training images of the epoch are done; the test set is being evaluated.
  virtual void evaluating(std::size_t /*done*/, std::size_t /*total*/) {}
  virtual void epoch_done(const EpochReport&) {}
  /// A mid-epoch checkpoint (RunOptions::checkpoint_every / checkpoint_minutes) was written.
  virtual void checkpoint_saved(const std::filesystem::path& /*file*/, std::size_t /*epoch*/,
                                std::size_t /*batch*/) {}
};

/// Where a run stopped on request (RunOptions::stop) and the checkpoint that continues it.
struct StopPoint {
  int reason = 0;              // the stop flag's value (the signal number, for the CLI)
  std::size_t epoch = 0;       // 1-based: the epoch in progress
  std::size_t batch = 0;       // its batches done (all of them: stopped before its evaluation)
  std::size_t batches = 0;     // per epoch
  std::size_t step = 0;        // global steps done
  std::filesystem::path checkpoint;
};

struct TrainResult {
  EvalResult test;
  std::size_t epochs_run = 0;  // in this invocation
  double seconds = 0;
  double images_per_second = 0;
  std::filesystem::path weights, metrics, plot;
  std::filesystem::path other_weights;  // with a weight average: the weights not saved as `weights`
  std::string plot_problem;  // why there is no plot, if there is none
  /// Set when the run stopped on request before its end: then there are no final weights
  /// and no final evaluation (`weights` and `test` are empty), only the checkpoint.
  std::optional<StopPoint> stopped;
};

/// Runs f on every rank of `comm` (or just runs it, without one) and makes a failure on any
/// rank a failure on all: the first failing rank rethrows its own exception, the others
/// throw RankFailed with its message. Every rank must call it at the same point.
template <class F>
void collectively(Communicator* comm, F&& f) {
  if (!comm) {
    f();
    return;
  }
  std::exception_ptr error;
  std::string what;
  try {
    f();
  } catch (const std::exception& e) {
    error = std::current_exception();
    what = e.what();
  }
  double failed = error ? 1 : 0;
  std::vector<double> all(std::size_t(comm->size()));
  comm->allgather(std::span<const double>(&failed, 1), all);
  int first = -1;
  for (std::size_t r = 0; r < all.size() && first < 0; ++r)
    if (all[r] != 0) first = int(r);
  if (first < 0) return;
  const std::string message = broadcast_string(*comm, what, first);
  failure_agreed() = true;
  if (first == comm->rank()) std::rethrow_exception(error);
  throw RankFailed(first, message);
}

namespace detail {

/// Creates the run directory, checks it is writable, clears litter of interrupted saves, and
/// returns its checkpoints (oldest first); refuses a fresh run over an existing one.
inline std::vector<std::filesystem::path> prepare_run_directory(const RunOptions& run) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(run.out, ec);
  if (ec) throw IoError(rformat("cannot create the run directory '{}': {}", run.out.string(), ec.message()));
  {  // Fail now, not after the first epoch, when nothing can be written there.
    const auto probe = run.out / rformat(".write-test-{}", ::getpid());
    std::FILE* f = std::fopen(probe.c_str(), "wb");
    if (!f) throw IoError(rformat("cannot write in the run directory '{}': {}", run.out.string(), std::strerror(errno)));
    std::fclose(f);
    fs::remove(probe, ec);
  }
  // Temporary files of a save that a crash interrupted: the file they were to replace is
  // intact (saves are atomic), so they are only litter.
  for (const auto& e : fs::directory_iterator(run.out, ec))
    if (e.path().filename().string().find(".safetensors.tmp-") != std::string::npos) fs::remove(e.path(), ec);
  auto existing = list_checkpoints(run.out);
  if (!run.resume && !existing.empty())
    throw SettingError("resume", rformat("'{}' already holds a run ({}); resume it, or choose another run directory",
                                         run.out.string(), existing.back().filename().string()));
  if (run.resume && existing.empty())
    throw SettingError("resume", rformat("cannot resume: '{}' holds no checkpoint", run.out.string()));
  return existing;
}

/// Throws SettingError when `file`'s metadata says it was made with other settings than
/// `run_settings` (or does not say). A setting the file does not name (it predates the
/// setting) counts as its value in `defaults`.
inline void expect_same_settings(const std::filesystem::path& file, const Metadata& metadata,
                                 const nlohmann::json& run_settings, const nlohmann::json& defaults) {
  const auto saved = metadata.find("odyssey.settings");
  nlohmann::json a;
  if (saved != metadata.end()) {
    a = nlohmann::json::parse(saved->second, nullptr, false);
    if (!a.is_discarded() && a.is_object())
      for (const auto& [k, v] : defaults.items())
        if (!a.contains(k)) a[k] = v;
  }
  if (saved != metadata.end() && a == run_settings) return;
  std::string diff;
  if (saved != metadata.end()) {
    const bool readable = !a.is_discarded() && a.is_object();
    for (const auto& [k, v] : run_settings.items())
      if (!readable || !a.contains(k) || a[k] != v)
        diff += rformat("\n  {}: the run has {}, now {}", k, readable && a.contains(k) ? a[k].dump() : "nothing",
                        v.dump());
  }
  throw SettingError("resume", rformat("cannot resume: {} was made with other settings; resume with the run's own "
                                       "settings (or start a new run in another directory):{}",
                                       file.string(), diff));
}

/// Loads the newest readable checkpoint into net and opt after checking that it was made with
/// the run's settings `run_settings` (before its tensors, whose names depend on the optimizer,
/// are bound); reports skipped (damaged) ones.
template <Layer Net, class T>
CheckpointInfo resume_from(const std::vector<std::filesystem::path>& existing, Net& net, Optimizer<T>& opt,
                           WeightAverage<T>* average, const nlohmann::json& run_settings,
                           const nlohmann::json& defaults, std::vector<std::string>& skipped) {
  CheckpointInfo info;
  for (auto it = existing.rbegin(); it != existing.rend(); ++it) {
    Metadata metadata;
    try {
      metadata = SafeTensors::read(*it).metadata();
    } catch (const Error& e) {  // a damaged file: fall back to the one before it
      skipped.emplace_back(e.what());
      continue;
    }
    expect_same_settings(*it, metadata, run_settings, defaults);
    try {
      info = load_checkpoint(*it, net, opt, average);
      break;
    } catch (const Error& e) {
      skipped.emplace_back(e.what());
      info.file.clear();
    }
  }
  if (info.file.empty()) {
    std::string problems;
    for (const auto& p : skipped) problems += "\n  " + p;
    throw FormatError("cannot resume: no checkpoint could be loaded:" + problems);
  }
  return info;
}

/// The running figures of an epoch in progress. A mid-epoch checkpoint stores them
/// ("odyssey.epoch_sums"), so the epoch's report after a resume is what it would have been.
struct EpochSums {
  double loss = 0, window_loss = 0;  // loss * images, over the epoch and since the last csv row
  std::size_t correct = 0, seen = 0, window_correct = 0, window_seen = 0;
  double seconds = 0;  // training time of the epoch before this invocation

  void add(double batch_loss, std::size_t batch_correct, std::size_t images) {
    loss += batch_loss * double(images);
    correct += batch_correct;
    seen += images;
    window_loss += batch_loss * double(images);
    window_correct += batch_correct;
    window_seen += images;
  }
  [[nodiscard]] std::string dump() const {
    // Doubles go through JSON in their shortest exact form, so they come back bit for bit.
    return nlohmann::json{{"loss", loss}, {"correct", correct}, {"seen", seen}, {"window_loss", window_loss},
                          {"window_correct", window_correct}, {"window_seen", window_seen}, {"seconds", seconds}}
        .dump();
  }
  /// From a checkpoint's metadata; FormatError when a mid-epoch checkpoint lacks them.
  static EpochSums from(const CheckpointInfo& info) {
    EpochSums e;
    if (info.batches_done == 0) return e;
    const auto it = info.metadata.find("odyssey.epoch_sums");
    const auto j = it == info.metadata.end() ? nlohmann::json() : nlohmann::json::parse(it->second, nullptr, false);
    try {
      e.loss = j.at("loss").template get<double>();
      e.correct = j.at("correct").template get<std::size_t>();
      e.seen = j.at("seen").template get<std::size_t>();
      e.window_loss = j.at("window_loss").template get<double>();
      e.window_correct = j.at("window_correct").template get<std::size_t>();
      e.window_seen = j.at("window_seen").template get<std::size_t>();
      e.seconds = j.at("seconds").template get<double>();
    } catch (const nlohmann::json::exception&) {
      throw FormatError(rformat("{}: a mid-epoch checkpoint without readable 'odyssey.epoch_sums' metadata",
                                info.file.string()));
    }
    return e;
  }
};

/// Thrown through the evaluation's progress callback when a stop is requested.
struct StopRequested {};

/// Rank 0's values of `entries` (tensors and counters) on every rank.
template <class T>
void broadcast_entries(Communicator& comm, const std::vector<StateEntry<T>>& entries) {
  for (const auto& e : entries) {
    if (e.counter) comm.broadcast(std::as_writable_bytes(std::span(e.counter, 1)), 0);
    else comm.broadcast(std::as_writable_bytes(e.value), 0);
  }
}

/// FNV-1a over the bytes of every state entry: equal on every rank, or the ranks diverged.
template <class T>
std::uint64_t state_checksum(const std::vector<StateEntry<T>>& entries) {
  std::uint64_t h = 1469598103934665603ull;
  auto add = [&](std::span<const std::byte> bytes) {
    for (const std::byte b : bytes) h = (h ^ std::uint64_t(b)) * 1099511628211ull;
  };
  for (const auto& e : entries) {
    if (e.counter) add(std::as_bytes(std::span(e.counter, 1)));
    else add(std::as_bytes(e.value));
  }
  return h;
}

/// Throws (on every rank) when a rank's parameters, statistics or optimizer state are not
/// bitwise rank 0's after epoch `epoch`.
template <class T>
void expect_same_state(Communicator& comm, const std::vector<StateEntry<T>>& entries, std::size_t epoch) {
  const std::uint64_t h = state_checksum(entries);
  const double mine[2] = {double(h >> 32), double(h & 0xffffffffu)};
  std::vector<double> all(2 * std::size_t(comm.size()));
  comm.allgather(mine, all);
  std::string differ;
  for (std::size_t r = 1; r < std::size_t(comm.size()); ++r)
    if (all[2 * r] != all[0] || all[2 * r + 1] != all[1]) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
  if (differ.empty()) return;
  failure_agreed() = true;
  throw Error(rformat("after epoch {} the state of rank(s) {} differs from rank 0's (checksums of parameters, "
                      "statistics and optimizer state); the ranks no longer train the same model",
                      epoch, differ));
}

inline double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace detail

/// Trains `net` (a model the caller built and initialised) with settings `s`, writing the run
/// into run.out; returns the final test evaluation and where the files are. With run.resume,
/// continues from the newest checkpoint in run.out (which must have been made with `s`).
/// `model_name` is recorded in the weights' metadata ("model"); the model name and its input
/// shape are part of what a resumed run must match.
template <Layer Net>
TrainResult train(Net& net, const TrainSettings& s, const RunOptions& run, const Dataset& train_set,
                  const Dataset& test_set, const std::string& model_name, TrainObserver* observer = nullptr) {
  using T = typename Net::value_type;
  TrainObserver quiet;
  TrainObserver& obs = observer ? *observer : quiet;
  s.check();
  expect_images<typename Net::input_shape>(train_set, model_name);
  expect_images<typename Net::input_shape>(test_set, model_name);
  if (train_set.count % s.batch_size == 1)
    throw SettingError("batch_size", detail::rformat("the last batch would hold a single image ({} images, batch {}); "
                                                     "batch norm needs two: change the batch size or the number of "
                                                     "training images",
                                                     train_set.count, s.batch_size));
  Communicator* const comm = distributed(run.comm) ? run.comm : nullptr;
  const bool lead = !comm || comm->rank() == 0;  // the rank that writes the run directory
  const std::size_t ranks = comm ? std::size_t(comm->size()) : 1;
  if (s.batch_size % ranks != 0)
    throw SettingError("batch_size", detail::rformat("a batch of {} images does not split into {} equal shards, one per "
                                                     "process: use a batch size divisible by {}",
                                                     s.batch_size, ranks, ranks));
  if (const std::size_t last = train_set.count % s.batch_size; last != 0 && last < ranks)
    throw SettingError("batch_size", detail::rformat("the last batch would hold {} image(s) for {} processes ({} "
                                                     "images, batch {}): change the batch size or the number of "
                                                     "training images",
                                                     last, ranks, train_set.count, s.batch_size));
  // Before the run directory is touched: a file that does not fit leaves nothing behind.
  collectively(comm, [&] {
    if (!run.resume && !s.init_weights.empty()) load_initial_weights(s.init_weights, net, s.reset_classifier);
  });
  if (!run.resume && s.zero_init_residual) zero_init_residual(net);
  std::vector<std::filesystem::path> existing;
  collectively(comm, [&] {
    if (lead) existing = detail::prepare_run_directory(run);
  });
  // What a resumed run must match: the settings, the model and its input shape.
  nlohmann::json run_settings = s.to_json();
  run_settings["model"] = model_name;
  run_settings["input"] = Net::input_shape::str();

  const auto optimizer = make_optimizer<T>(parameters(net), s);
  Optimizer<T>& opt = *optimizer;
  std::unique_ptr<WeightAverage<T>> average;
  if (s.ema_decay > 0) average = std::make_unique<WeightAverage<T>>(state(net), s.ema_decay);
  LoaderOptions loader_options{s.batch_size, true, s.augment, s.seed};
  loader_options.augmentation = s.augmentation;
  loader_options.shard = comm ? std::size_t(comm->rank()) : 0;
  loader_options.shards = ranks;
  BatchLoader loader(train_set, loader_options);
  const std::size_t steps_per_epoch = loader.batches_per_epoch();
  const LrSchedule schedule(s.schedule, s.epochs, steps_per_epoch);

  std::size_t first_epoch = 0, first_batch = 0, step = 0;
  detail::EpochSums resumed_sums;
  if (run.resume) {
    std::vector<std::string> skipped;
    CheckpointInfo info;
    collectively(comm, [&] {
      if (lead)
        info = detail::resume_from(existing, net, opt, average.get(), run_settings, TrainSettings{}.to_json(), skipped);
    });
    if (comm) {  // the other ranks take the position from rank 0 (their state comes below)
      std::uint64_t position[3] = {info.epochs_done, info.batches_done, info.step};
      comm->broadcast(std::as_writable_bytes(std::span(position)), 0);
      info.epochs_done = position[0];
      info.batches_done = position[1];
      info.step = position[2];
      const auto sums = info.metadata.find("odyssey.epoch_sums");
      info.metadata["odyssey.epoch_sums"] =
          broadcast_string(*comm, sums == info.metadata.end() ? std::string() : sums->second, 0);
      info.file = broadcast_string(*comm, info.file.string(), 0);
    }
    first_epoch = info.epochs_done;
    first_batch = info.batches_done;
    step = info.step;
    if (first_batch > steps_per_epoch)
      throw FormatError(detail::rformat("{}: {} batches done in an epoch of {}", info.file.string(), first_batch,
                                        steps_per_epoch));
    resumed_sums = detail::EpochSums::from(info);
    obs.resumed(info, skipped);
  }

  if (comm) {  // every rank starts from rank 0's model, optimizer and average
    detail::broadcast_entries(*comm, state(net));
    detail::broadcast_entries(*comm, opt.state());
    if (average) detail::broadcast_entries(*comm, average->state());
  }

  TrainResult result;
  result.metrics = run.out / "metrics.csv";
  result.weights = run.out / "weights.safetensors";
  std::optional<MetricsCsv> csv;
  collectively(comm, [&] {
    if (lead) csv.emplace(result.metrics, first_epoch, step, run.resume);
  });
  Metadata meta = dataset_metadata(train_set, s.dataset);
  meta["model"] = model_name;
  meta["odyssey.settings"] = run_settings.dump();

  // What the run produces: the weight average (when evaluated) or the last weights, with
  // their batch-norm statistics re-estimated when asked; `f` runs with them in `net`. Nothing
  // of the training state changes: the average is swapped back out, the statistics restored.
  const bool evaluate_average = average && s.ema_eval;
  auto with_evaluated_weights = [&](auto&& f) {
    AverageSwapped<T> swapped(evaluate_average ? average.get() : nullptr);
    RunningStatsKept<T> kept(s.bn_recalibrate ? state(net) : std::vector<StateEntry<T>>{});
    reestimate_batch_norm(net, train_set, s.bn_recalibrate, s.batch_size, s.seed);
    f();
  };
  // The stop request, agreed by all ranks (the first rank's that has one), so that every
  // rank stops at the same step.
  auto stop_requested = [&]() -> int {
    const int mine = run.stop ? run.stop->load(std::memory_order_relaxed) : 0;
    if (!comm) return mine;
    const double v = mine;
    std::vector<double> all(ranks);
    comm->allgather(std::span<const double>(&v, 1), all);
    for (const double r : all)
      if (r != 0) return int(r);
    return 0;
  };
  bool stoppable = true;  // an evaluation may be cut short by a stop request
  int stop_reason = 0;
  const EvalProgress eval_progress = [&](std::size_t done, std::size_t total) {
    if (stoppable && (stop_reason = stop_requested()) != 0) throw detail::StopRequested{};
    obs.evaluating(done, total);
  };
  auto evaluate_run = [&] {
    with_evaluated_weights(
        [&] { result.test = evaluate(net, test_set, EvalOptions{run.eval_batch, s.eval_flip}, eval_progress); });
  };
  auto save_results = [&] {
    if (!lead) {
      if (average) result.other_weights = run.out / (evaluate_average ? "weights-last.safetensors" : "weights-average.safetensors");
      return;
    }
    with_evaluated_weights([&] {
      Metadata m = meta;
      m["odyssey.weights"] = evaluate_average ? "the average of the weights" : "the last weights";
      save_weights(result.weights, net, m);
    });
    if (!average) return;
    // The other of the two: the last weights beside a saved average, or the average.
    AverageSwapped<T> swapped(evaluate_average ? nullptr : average.get());
    Metadata m = meta;
    m["odyssey.weights"] = evaluate_average ? "the last weights" : "the average of the weights";
    result.other_weights = run.out / (evaluate_average ? "weights-last.safetensors" : "weights-average.safetensors");
    save_weights(result.other_weights, net, m);
  };
  auto last_checkpoint_time = std::chrono::steady_clock::now();
  // The checkpoint of the run after `epochs_done` epochs and `batches_done` batches of the
  // next (with that epoch's running figures). The random state: shuffling and augmentation
  // draw from generators seeded by (seed, epoch, batch position), so the seed and the
  // position are all there is to restore.
  auto save_at = [&](std::size_t epochs_done, std::size_t batches_done, const detail::EpochSums& sums) {
    const auto ckpt = checkpoint_path(run.out, epochs_done, batches_done);
    Metadata ckpt_meta = meta;
    ckpt_meta["odyssey.rng"] =
        nlohmann::json{{"seed", s.seed}, {"next_epoch", epochs_done}, {"next_batch", batches_done},
                       {"scheme", "counter-based: batch b of epoch e derives from (seed, e, b)"}}
            .dump();
    if (batches_done) ckpt_meta["odyssey.epoch_sums"] = sums.dump();
    collectively(comm, [&] {
      if (!lead) return;
      save_checkpoint(ckpt, net, opt, epochs_done, step, ckpt_meta, average.get(), batches_done);
      prune_checkpoints(run.out, std::max<std::size_t>(1, run.keep_checkpoints));
    });
    last_checkpoint_time = std::chrono::steady_clock::now();
    return ckpt;
  };
  auto checkpoint_due = [&] {
    if (run.checkpoint_every && step % run.checkpoint_every == 0) return true;
    if (!(run.checkpoint_minutes > 0)) return false;
    double due = detail::seconds_since(last_checkpoint_time) >= 60 * run.checkpoint_minutes ? 1 : 0;
    if (comm) {  // rank 0's clock decides, so that every rank enters the save together
      std::vector<double> all(ranks);
      comm->allgather(std::span<const double>(&due, 1), all);
      due = all[0];
    }
    return due != 0;
  };

  TrainStep<Net> trainer(s.label_smoothing, s.seed, comm);
  Batch batch;
  const auto run_start = std::chrono::steady_clock::now();
  std::size_t images_total = 0;
  auto finish_stopped = [&](std::size_t epoch, std::size_t batches_done, const detail::EpochSums& sums) {
    StopPoint p{stop_reason, epoch + 1, batches_done, steps_per_epoch, step, {}};
    p.checkpoint = save_at(epoch, batches_done, sums);
    result.stopped = p;
    result.weights.clear();
    result.seconds = detail::seconds_since(run_start);
    result.images_per_second = result.seconds > 0 ? double(images_total) / result.seconds : 0;
    return result;
  };
  for (std::size_t epoch = first_epoch; epoch < s.epochs; ++epoch) {
    const std::size_t start_batch = epoch == first_epoch ? first_batch : 0;
    loader.start_epoch(epoch, start_batch);
    obs.epoch_started(epoch + 1, s.epochs, steps_per_epoch, start_batch);
    const auto epoch_start = std::chrono::steady_clock::now();
    detail::EpochSums sums = epoch == first_epoch ? resumed_sums : detail::EpochSums{};
    const std::size_t seen_before = sums.seen;
    std::size_t done = start_batch;
    auto epoch_seconds = [&] { return sums.seconds + detail::seconds_since(epoch_start); };
    while (loader.next(batch)) {
      const double lr = schedule.at(step);
      const auto st = trainer.run(net, opt, batch, lr, step);
      if (!std::isfinite(st.loss)) {
        const auto last = list_checkpoints(run.out);
        throw TrainingDiverged(
            detail::rformat("training diverged: the loss is {} at epoch {}, step {} (learning rate {:.4g}). {}", st.loss,
                            epoch + 1, step + 1, lr,
                            last.empty() ? std::string("No checkpoint was written yet.")
                                         : detail::rformat("The last good checkpoint is {}.", last.back().string())),
            epoch + 1, step + 1, lr, last.empty() ? std::filesystem::path() : last.back());
      }
      ++step;
      if (average) average->update(step);
      ++done;
      // The loss and the correct count are of the whole (global) batch, so are the images.
      sums.add(st.loss, st.correct, batch.global_size ? batch.global_size : batch.size);
      const double elapsed = detail::seconds_since(epoch_start);
      obs.step_done({epoch + 1, s.epochs, step, done, steps_per_epoch, sums.seen, sums.loss / double(sums.seen),
                     double(sums.correct) / double(sums.seen), lr, elapsed});
      if (step % run.log_every == 0) {
        if (csv) csv->step(epoch + 1, step, lr, sums.window_loss / double(sums.window_seen),
                 double(sums.window_correct) / double(sums.window_seen), double(sums.seen - seen_before) / elapsed,
                 detail::seconds_since(run_start));
        sums.window_loss = 0;
        sums.window_correct = sums.window_seen = 0;
      }
      if ((stop_reason = stop_requested()) != 0) {
        images_total += sums.seen - seen_before;
        sums.seconds = epoch_seconds();
        return finish_stopped(epoch, done, sums);
      }
      if (done < steps_per_epoch && checkpoint_due()) {
        detail::EpochSums now = sums;
        now.seconds = epoch_seconds();
        obs.checkpoint_saved(save_at(epoch, done, now), epoch + 1, done);
      }
    }
    sums.seconds = epoch_seconds();
    images_total += sums.seen - seen_before;
    try {
      evaluate_run();
    } catch (const detail::StopRequested&) {  // the epoch's batches are done, its evaluation is not
      return finish_stopped(epoch, steps_per_epoch, sums);
    }
    const double ips = sums.seconds > 0 ? double(sums.seen) / sums.seconds : 0;
    const double total = detail::seconds_since(run_start);
    const double train_loss = sums.loss / double(sums.seen), train_accuracy = double(sums.correct) / double(sums.seen);
    if (csv) csv->epoch(epoch + 1, step, schedule.at(step ? step - 1 : 0), train_loss, train_accuracy, result.test, ips, total);
    if (comm) detail::expect_same_state(*comm, state(net), epoch + 1);
    const auto ckpt = save_at(epoch + 1, 0, sums);
    ++result.epochs_run;
    obs.epoch_done({epoch + 1, s.epochs, step, train_loss, train_accuracy, result.test, ips, total, ckpt});
  }
  stoppable = false;
  if (result.epochs_run == 0) evaluate_run();
  collectively(comm, save_results);
  result.seconds = detail::seconds_since(run_start);
  result.images_per_second = result.seconds > 0 ? double(images_total) / result.seconds : 0;
  result.plot = run.out / "curves.png";
  if (lead) {
    csv.reset();  // closes metrics.csv before it is plotted
    result.plot_problem = plot_metrics(result.metrics, result.plot, detail::rformat("{} on {}", model_name, s.dataset));
  }
  return result;
}

/// The same for a model type built from the run's seed, Net(s.seed), as the shipped models are.
template <Layer Net>
  requires std::constructible_from<Net, std::uint64_t>
TrainResult train(const TrainSettings& s, const RunOptions& run, const Dataset& train_set, const Dataset& test_set,
                  const std::string& model_name, TrainObserver* observer = nullptr) {
  auto net = std::make_unique<Net>(s.seed);
  return train(*net, s, run, train_set, test_set, model_name, observer);
}

}  // namespace odyssey
