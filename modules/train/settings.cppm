// What defines a training run (TrainSettings, saved in every checkpoint), how to run it
// (RunOptions, free to change on resume), and the errors a run ends with. Messages name the
// settings by their field names; a front end (the CLI) adds its own flag names.
module;
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>
#include <nlohmann/json.hpp>
export module odyssey.train:settings;
import odyssey.tensor;
import odyssey.dist;
import odyssey.layers;
import odyssey.optim;
import odyssey.data;

export namespace odyssey {

/// A setting (named by its TrainSettings or RunOptions field, e.g. "batch_size") cannot be
/// used as given.
class SettingError : public ValueError {
 public:
  SettingError(std::string setting, const std::string& message) : ValueError(message), setting_(std::move(setting)) {}
  [[nodiscard]] const std::string& setting() const noexcept { return setting_; }

 private:
  std::string setting_;
};

/// Training stopped because the loss became NaN or infinite. Nothing was updated by the
/// step that diverged; `last_checkpoint` (empty if none was written) holds the last good state.
class TrainingDiverged : public Error {
 public:
  TrainingDiverged(const std::string& message, std::size_t epoch, std::size_t step, double lr,
                   std::filesystem::path last_checkpoint)
      : Error(message), epoch(epoch), step(step), lr(lr), last_checkpoint(std::move(last_checkpoint)) {}
  std::size_t epoch, step;  // 1-based
  double lr;
  std::filesystem::path last_checkpoint;
};

/// In a data-parallel run: another rank failed (its message, prefixed with its rank); every
/// rank stops with it.
class RankFailed : public Error {
 public:
  RankFailed(int rank, const std::string& message)
      : Error("rank " + std::to_string(rank) + ": " + message), rank(rank) {}
  int rank;
};

enum class OptimizerKind { sgd, adamw };

/// What defines a run. Saved in checkpoints; resuming requires the same settings.
struct TrainSettings {
  std::string dataset = "fashion-mnist";
  std::size_t train_subset = 0;  // 0: the whole training set
  std::size_t test_subset = 0;   // 0: the whole test set
  std::size_t epochs = 1;
  std::size_t batch_size = 128;
  ScheduleOptions schedule;
  OptimizerKind optimizer = OptimizerKind::sgd;
  SgdOptions sgd;      // when optimizer is sgd
  AdamWOptions adamw;  // when optimizer is adamw
  double label_smoothing = 0;
  bool augment = true;
  AugmentOptions augmentation;  // when augment
  // An exponential moving average of the weights (0: none; else its decay, e.g. 0.999),
  // kept in checkpoints. With ema_eval it is what is evaluated and saved as the weights.
  double ema_decay = 0;
  bool ema_eval = true;
  // Batch norms' running statistics re-estimated over this many training batches (no
  // augmentation) before every evaluation; 0: as training left them.
  std::size_t bn_recalibrate = 0;
  bool eval_flip = false;  // flip test-time augmentation in the evaluation after each epoch
  // Weights the run starts from (empty: a fresh initialisation); with reset_classifier the
  // file's classifier is not used and the model's own initial one is kept.
  std::string init_weights;
  bool reset_classifier = false;
  // A fresh initialisation with every residual branch's last batch-norm scale at 0.
  bool zero_init_residual = false;
  std::uint64_t seed = 0;

  [[nodiscard]] nlohmann::json to_json() const {
    const char* kinds[] = {"constant", "step", "cosine", "onecycle"};
    const char* flips[] = {"none", "random", "alternate"};
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
            {"optimizer", optimizer == OptimizerKind::sgd ? "sgd" : "adamw"},
            {"momentum", sgd.momentum},
            {"weight_decay", optimizer == OptimizerKind::sgd ? sgd.weight_decay : adamw.weight_decay},
            {"nesterov", sgd.nesterov},
            {"decay_all", optimizer == OptimizerKind::sgd ? sgd.decay_all : adamw.decay_all},
            {"beta1", adamw.beta1},
            {"beta2", adamw.beta2},
            {"eps", adamw.eps},
            {"norm_lr_scale", optimizer == OptimizerKind::sgd ? sgd.norm_lr_scale : adamw.norm_lr_scale},
            {"label_smoothing", label_smoothing},
            {"augment", augment},
            {"translate", augmentation.translate},
            {"flip", flips[static_cast<int>(augmentation.flip)]},
            {"erase", augmentation.erase},
            {"ema", ema_decay},
            {"ema_eval", ema_eval},
            {"bn_recalibrate", bn_recalibrate},
            {"eval_flip", eval_flip},
            {"init_weights", init_weights},
            {"reset_classifier", reset_classifier},
            {"zero_init_residual", zero_init_residual},
            {"seed", seed}};
  }

  /// SettingError naming the first field whose value no run can use.
  void check() const {
    if (epochs == 0) throw SettingError("epochs", "a run needs at least 1 epoch");
    if (batch_size < 2)
      throw SettingError("batch_size", "the batch size must be at least 2 (batch norm needs two samples)");
    if (augmentation.translate < 0 || augmentation.translate > 16)
      throw SettingError("translate", "the translation must be 0 to 16 pixels, not " +
                                          std::to_string(augmentation.translate));
    if (!(augmentation.erase >= 0 && augmentation.erase <= 1))
      throw SettingError("erase", "the erasing probability must be in [0, 1]");
    if (!(ema_decay == 0 || (ema_decay > 0 && ema_decay < 1)))
      throw SettingError("ema", "the weight average's decay must be 0 (none) or in (0, 1), e.g. 0.999");
    const double scale = optimizer == OptimizerKind::sgd ? sgd.norm_lr_scale : adamw.norm_lr_scale;
    if (!(scale > 0)) throw SettingError("norm_lr_scale", "the learning-rate factor must be positive");
    if (zero_init_residual && !init_weights.empty())
      throw SettingError("zero_init_residual", "zero-initialising the residual branches applies to a fresh "
                                               "initialisation, not to weights to start from (init_weights)");
    if (reset_classifier && init_weights.empty())
      throw SettingError("reset_classifier", "resetting the classifier needs weights to start from (init_weights)");
  }
};

/// How to run it: these may change between a run and its resumption.
struct RunOptions {
  std::filesystem::path out = "runs/latest";
  bool resume = false;
  std::size_t keep_checkpoints = 3;
  std::size_t log_every = 20;  // steps between step rows in metrics.csv
  std::size_t eval_batch = 256;
  // Mid-epoch checkpoints: after every `checkpoint_every` global steps, and/or once
  // `checkpoint_minutes` have passed since the last checkpoint (0: not on that count). An
  // epoch's end always writes one.
  std::size_t checkpoint_every = 0;
  double checkpoint_minutes = 0;
  // When given and non-zero (e.g. set by a signal handler to the signal's number), the run
  // stops after the current step (or during an evaluation) with a checkpoint at that point,
  // which a resume continues exactly (TrainResult::stopped).
  const std::atomic<int>* stop = nullptr;
  // Data parallelism: this process is one rank of `comm` (null, or one rank: a single
  // process). Every rank calls train() with the same settings; each trains on its shard of
  // every batch, and rank 0 alone writes the run directory. The batch size must be a
  // multiple of the rank count.
  Communicator* comm = nullptr;
};

/// The optimizer the settings choose, over `parameters`.
template <class T>
std::unique_ptr<Optimizer<T>> make_optimizer(std::vector<StateEntry<T>> parameters, const TrainSettings& s) {
  if (s.optimizer == OptimizerKind::adamw) return std::make_unique<AdamW<T>>(std::move(parameters), s.adamw);
  return std::make_unique<Sgd<T>>(std::move(parameters), s.sgd);
}

}  // namespace odyssey
