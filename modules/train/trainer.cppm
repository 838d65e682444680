// The training loop: SGD over a dataset for some epochs with a learning-rate schedule,
// evaluation after every epoch, metrics, checkpoints, resume, and the final weights.
//
// A run is defined by its TrainSettings (saved in every checkpoint): the same settings and
// seed give bitwise the same weights, whatever the thread count, and a resumed run ends
// where the uninterrupted one does.
module;
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>
#include <unistd.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
export module odyssey.train:trainer;
import odyssey.tensor;
import odyssey.layers;
import odyssey.optim;
import odyssey.io;
import odyssey.data;
import :format;
import :metrics;
import :progress;
import :checkpoint;
import :plot;

export namespace odyssey {

/// Training stopped because the loss became NaN or infinite.
class TrainingDiverged : public Error {
 public:
  using Error::Error;
};

/// What defines a run. Saved in checkpoints; --resume requires the same settings.
struct TrainSettings {
  std::string dataset = "fashion-mnist";
  std::size_t train_subset = 0;  // 0: the whole training set
  std::size_t test_subset = 0;   // 0: the whole test set
  std::size_t epochs = 1;
  std::size_t batch_size = 128;
  ScheduleOptions schedule;
  SgdOptions sgd;
  double label_smoothing = 0;
  bool augment = true;
  std::uint64_t seed = 0;

  [[nodiscard]] nlohmann::json to_json() const {
    const char* kinds[] = {"constant", "step", "cosine", "onecycle"};
    return {{"dataset", dataset},
            {"train_subset", train_subset},
            {"test_subset", test_subset},
            {"epochs", epochs},
            {"batch_size", batch_size},
            {"schedule", kinds[static_cast<int>(schedule.kind)]},
            {"lr", schedule.lr},
            {"step_epochs", schedule.step_epochs},
            {"step_gamma", schedule.step_gamma},
            {"min_lr", schedule.min_lr},
            {"warmup_epochs", schedule.warmup_epochs},
            {"momentum", sgd.momentum},
            {"weight_decay", sgd.weight_decay},
            {"nesterov", sgd.nesterov},
            {"decay_all", sgd.decay_all},
            {"label_smoothing", label_smoothing},
            {"augment", augment},
            {"seed", seed}};
  }
};

/// How to run it: these may change between a run and its resumption.
struct RunOptions {
  std::filesystem::path out = "runs/latest";
  bool resume = false;
  std::size_t keep_checkpoints = 3;
  std::size_t log_every = 20;  // steps between step rows in metrics.csv
  std::size_t eval_batch = 256;
  bool quiet = false;
};

struct TrainResult {
  EvalResult test;
  std::size_t epochs_run = 0;  // in this invocation
  double seconds = 0;
  double images_per_second = 0;
  std::filesystem::path weights, metrics, plot;
  std::string plot_problem;  // why there is no plot, if there is none
};

inline bool isatty_stdout() { return isatty(STDOUT_FILENO) == 1; }

/// Loss, accuracy and confusion matrix of `net` on `data`, in inference mode.
template <Layer Net>
EvalResult evaluate(Net& net, const Dataset& data, std::size_t batch_size, bool show_progress = false) {
  using T = typename Net::value_type;
  constexpr std::size_t classes = Net::output_shape::size;
  expect_images<typename Net::input_shape>(data, "the model");
  BatchLoader loader(data, LoaderOptions{batch_size, false, false, 0});
  loader.start_epoch(0);
  Context<T> ctx;
  ctx.mode = Mode::inference;
  SoftmaxCrossEntropy<T, classes> loss;
  Activation<T, typename Net::input_shape> x;
  Batch batch;
  EvalResult r;
  r.confusion = ConfusionMatrix(classes);
  double loss_sum = 0;
  std::size_t correct = 0;
  while (loader.next(batch)) {
    copy_batch(batch, x);
    const auto st = loss.forward(net.forward(x, ctx), batch.labels);
    loss_sum += st.loss * double(batch.size);
    correct += st.correct;
    const auto& p = loss.probabilities();
    for (std::size_t i = 0; i < batch.size; ++i) {
      const T* row = p.sample(i);
      const std::size_t pred = std::size_t(std::max_element(row, row + classes) - row);
      r.confusion.add(std::size_t(batch.labels[i]), pred);
    }
    r.count += batch.size;
    if (show_progress && isatty_stdout()) {
      std::printf("\r\033[Kevaluating %zu/%zu", r.count, data.count);
      std::fflush(stdout);
    }
  }
  if (show_progress && isatty_stdout()) std::printf("\r\033[K");
  r.loss = r.count ? loss_sum / double(r.count) : 0;
  r.accuracy = r.count ? double(correct) / double(r.count) : 0;
  return r;
}

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

template <Layer Net>
TrainResult train(const TrainSettings& s, const RunOptions& run, const Dataset& train_set, const Dataset& test_set,
                  const std::string& model_name) {
  using T = typename Net::value_type;
  constexpr std::size_t classes = Net::output_shape::size;
  namespace fs = std::filesystem;
  if (s.epochs == 0) throw ValueError("--epochs must be at least 1");
  if (s.batch_size < 2) throw ValueError("--batch-size must be at least 2 (batch norm needs two samples)");

  std::error_code ec;
  fs::create_directories(run.out, ec);
  if (ec) throw IoError(detail::rformat("cannot create the run directory '{}': {}", run.out.string(), ec.message()));
  {  // Fail now, not after the first epoch, when nothing can be written there.
    const auto probe = run.out / detail::rformat(".write-test-{}", ::getpid());
    std::FILE* f = std::fopen(probe.c_str(), "wb");
    if (!f)
      throw IoError(detail::rformat("cannot write in the run directory '{}': {}", run.out.string(), std::strerror(errno)));
    std::fclose(f);
    fs::remove(probe, ec);
  }
  // Temporary files of a save that a crash interrupted: the file they were to replace is
  // intact (saves are atomic), so they are only litter.
  for (const auto& e : fs::directory_iterator(run.out, ec))
    if (e.path().filename().string().find(".safetensors.tmp-") != std::string::npos) fs::remove(e.path(), ec);
  const auto existing = list_checkpoints(run.out);
  if (!run.resume && !existing.empty())
    throw ValueError(detail::rformat("'{}' already holds a run ({}); pass --resume to continue it, or choose "
                                 "another --out",
                                 run.out.string(), existing.back().filename().string()));
  if (run.resume && existing.empty())
    throw ValueError(detail::rformat("--resume: '{}' holds no checkpoint to resume from", run.out.string()));

  expect_images<typename Net::input_shape>(train_set, model_name);
  expect_images<typename Net::input_shape>(test_set, model_name);
  auto net = std::make_unique<Net>(s.seed);
  Sgd<T> sgd(parameters(*net), s.sgd);
  BatchLoader loader(train_set, LoaderOptions{s.batch_size, true, s.augment, s.seed});
  const std::size_t steps_per_epoch = loader.batches_per_epoch();
  if (train_set.count % s.batch_size == 1)
    throw ValueError(detail::rformat("the last batch would hold a single image ({} images, batch {}); batch "
                                 "norm needs two: change --batch-size or --train-subset",
                                 train_set.count, s.batch_size));
  const LrSchedule schedule(s.schedule, s.epochs, steps_per_epoch);
  const std::string settings = s.to_json().dump();

  std::size_t first_epoch = 0, step = 0;
  if (run.resume) {
    CheckpointInfo info;
    std::string problems;
    for (auto it = existing.rbegin(); it != existing.rend(); ++it) {
      try {
        info = load_checkpoint(*it, *net, sgd);
        break;
      } catch (const Error& e) {  // a damaged file: fall back to the one before it
        problems += detail::rformat("\n  {}", e.what());
        info.file.clear();
      }
    }
    if (info.file.empty()) throw FormatError("--resume: no checkpoint could be loaded:" + problems);
    if (!problems.empty()) std::printf("skipped unreadable checkpoints:%s\n", problems.c_str());
    const auto saved = info.metadata.find("odyssey.settings");
    if (saved == info.metadata.end() || saved->second != settings) {
      std::string diff;
      if (saved != info.metadata.end()) {
        const auto a = nlohmann::json::parse(saved->second), b = s.to_json();
        for (const auto& [k, v] : b.items())
          if (!a.contains(k) || a[k] != v) diff += detail::rformat("\n  {}: the run has {}, now {}", k, a.contains(k) ? a[k].dump() : "nothing", v.dump());
      }
      throw ValueError(detail::rformat("--resume: {} was made with other settings; resume with the run's own "
                                   "settings (or start a new run in another --out):{}",
                                   info.file.string(), diff));
    }
    first_epoch = info.epochs_done;
    step = info.step;
    if (!run.quiet)
      std::printf("resuming %s after epoch %zu (step %zu)\n", info.file.string().c_str(), first_epoch, step);
  }

  TrainResult result;
  result.metrics = run.out / "metrics.csv";
  result.weights = run.out / "weights.safetensors";
  MetricsCsv csv(result.metrics, first_epoch, run.resume);
  Metadata meta = dataset_metadata(train_set, s.dataset);
  meta["model"] = model_name;
  meta["odyssey.settings"] = settings;

  Context<T> ctx;
  SoftmaxCrossEntropy<T, classes> loss(s.label_smoothing);
  Activation<T, typename Net::input_shape> x;
  Activation<T, typename Net::output_shape> dlogits;
  Batch batch;
  Progress progress(run.quiet);
  const auto run_start = std::chrono::steady_clock::now();
  std::size_t images_total = 0;
  for (std::size_t epoch = first_epoch; epoch < s.epochs; ++epoch) {
    loader.start_epoch(epoch);
    progress.begin_epoch(epoch + 1, s.epochs, steps_per_epoch);
    const auto epoch_start = std::chrono::steady_clock::now();
    double loss_sum = 0, window_loss = 0;
    std::size_t correct = 0, seen = 0, window_correct = 0, window_seen = 0, done = 0;
    while (loader.next(batch)) {
      copy_batch(batch, x);
      const double lr = schedule.at(step);
      ctx.mode = Mode::training;
      const auto st = loss.forward(net->forward(x, ctx), batch.labels);
      if (!std::isfinite(st.loss)) {
        progress.end_epoch();
        const auto last = list_checkpoints(run.out);
        throw TrainingDiverged(detail::rformat(
            "training diverged: the loss is {} at epoch {}, step {} (learning rate {:.4g}). {} Try a smaller "
            "--lr or a warm-up (--warmup-epochs).",
            st.loss, epoch + 1, step + 1, lr,
            last.empty() ? std::string("No checkpoint was written yet.")
                         : detail::rformat("The last good checkpoint is {}.", last.back().string())));
      }
      loss.backward(dlogits);
      net->backward(dlogits, nullptr, ctx);
      sgd.step(lr);
      ++step;
      ++done;
      loss_sum += st.loss * double(batch.size);
      correct += st.correct;
      seen += batch.size;
      window_loss += st.loss * double(batch.size);
      window_correct += st.correct;
      window_seen += batch.size;
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
      progress.update(done, seen, loss_sum / double(seen), double(correct) / double(seen), lr);
      if (step % run.log_every == 0) {
        csv.step(epoch + 1, step, lr, window_loss / double(window_seen), double(window_correct) / double(window_seen),
                 double(seen) / elapsed,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count());
        window_loss = 0;
        window_correct = window_seen = 0;
      }
    }
    progress.end_epoch();
    const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
    images_total += seen;
    result.test = evaluate(*net, test_set, run.eval_batch, !run.quiet);
    const double ips = double(seen) / train_seconds;
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
    csv.epoch(epoch + 1, step, schedule.at(step ? step - 1 : 0), loss_sum / double(seen), double(correct) / double(seen),
              result.test, ips, total);
    const auto ckpt = checkpoint_path(run.out, epoch + 1);
    // The random state: shuffling and augmentation draw from generators seeded by (seed,
    // epoch, batch position), so the seed and the position are all there is to restore.
    Metadata ckpt_meta = meta;
    ckpt_meta["odyssey.rng"] = nlohmann::json{{"seed", s.seed}, {"next_epoch", epoch + 1}, {"next_batch", 0},
                                              {"scheme", "counter-based: batch b of epoch e derives from (seed, e, b)"}}
                                   .dump();
    save_checkpoint(ckpt, *net, sgd, epoch + 1, step, ckpt_meta);
    prune_checkpoints(run.out, std::max<std::size_t>(1, run.keep_checkpoints));
    ++result.epochs_run;
    if (!run.quiet)
      std::printf("epoch %zu/%zu: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | %.1f img/s | %s | saved %s\n",
                  epoch + 1, s.epochs, loss_sum / double(seen), 100.0 * double(correct) / double(seen), result.test.loss,
                  100 * result.test.accuracy, ips, Progress::clock(total).c_str(), ckpt.filename().string().c_str());
    if (!run.quiet) {
      const auto per = result.test.per_class();
      std::string line = "  test accuracy per class:";
      for (std::size_t c = 0; c < per.size(); ++c)
        line += detail::rformat(" {}={:.1f}%", c < test_set.class_names.size() ? test_set.class_names[c] : std::to_string(c), 100 * per[c]);
      std::printf("%s\n", line.c_str());
    }
  }
  if (result.epochs_run == 0) result.test = evaluate(*net, test_set, run.eval_batch, !run.quiet);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
  result.images_per_second = result.seconds > 0 ? double(images_total) / result.seconds : 0;
  save_weights(result.weights, *net, meta);
  result.plot = run.out / "curves.png";
  result.plot_problem = plot_metrics(result.metrics, result.plot, detail::rformat("{} on {}", model_name, s.dataset));
  return result;
}

}  // namespace odyssey
