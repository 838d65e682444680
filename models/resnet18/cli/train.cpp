// `odyssey train`: train a model (ResNet-18, ResNet-34, PreAct ResNet-18), with checkpoints
// every epoch and --resume.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <unistd.h>

#include "commands.h"
import odyssey;
import odyssey.cli;
import odyssey.cli.progress;

namespace odyssey::cli {

namespace {

struct TrainArgs {
  std::string dataset = "fashion-mnist", data, out, schedule = "cosine", model = "resnet18";
  std::size_t image_size = 32;
  std::string optimizer = "sgd", flip = "random", tta = "none", checkpoint_every;
  double weight_decay = -1;  // -1: the optimizer's default
  double norm_lr_scale = 1;
  bool decay_all = false, no_ema_eval = false;
  TrainSettings settings;
  RunOptions run;
  std::size_t threads = 0;
  bool no_augment = false, quiet = false;
};

// The first SIGINT or SIGTERM asks the trainer to stop after its current step with a
// checkpoint; a second one stops at once (the default action, so the exit status says which).
std::atomic<int> stop_signal{0};
bool print_stop_notice = true;  // rank 0 of a data-parallel run says it, the others do not
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_stop_signal(int sig) {
  if (stop_signal.exchange(sig) != 0) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  static const char msg[] =
      "\nodyssey: stopping after this step with a checkpoint (send the signal again to stop at once)\n";
  if (print_stop_notice) [[maybe_unused]] const auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
}

void catch_stop_signals() {
  struct sigaction sa{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

/// --checkpoint-every: N (global steps) or Nm (minutes).
void parse_checkpoint_every(const std::string& v, RunOptions& run) {
  if (v.empty()) return;
  std::size_t used = 0;
  double n = -1;
  try {
    n = std::stod(v, &used);
  } catch (const std::exception&) {
  }
  const std::string unit = v.substr(used);
  if (!(n > 0) || (unit != "" && unit != "m" && unit != "min") || (unit.empty() && n != double(std::size_t(n))))
    throw SettingError("checkpoint_every",
                       "'" + v + "' is neither a number of steps (e.g. 500) nor of minutes (e.g. 15m)");
  if (unit.empty()) run.checkpoint_every = std::size_t(n);
  else run.checkpoint_minutes = n;
}

/// A data-parallel run stopping on a signal waits for the other ranks at the end of its
/// step; if one of them is gone (mpirun signals the survivors after a rank died) that wait
/// never ends. The watchdog ends this process when no step, evaluation batch or checkpoint
/// has come for max(10 s, 3 x the longest gap between them seen) since the signal.
class StopWatchdog final : public TrainObserver {
 public:
  StopWatchdog(TrainObserver& inner, std::string run_dir)
      : inner_(inner), dir_(std::move(run_dir)), thread_([this](std::stop_token st) { watch(st); }) {}

  void resumed(const CheckpointInfo& from, const std::vector<std::string>& skipped) override {
    beat();
    inner_.resumed(from, skipped);
  }
  void epoch_started(std::size_t e, std::size_t n, std::size_t b, std::size_t f) override {
    beat();
    inner_.epoch_started(e, n, b, f);
  }
  void step_done(const StepReport& r) override {
    beat();
    inner_.step_done(r);
  }
  void evaluating(std::size_t done, std::size_t total) override {
    beat();
    inner_.evaluating(done, total);
  }
  void epoch_done(const EpochReport& r) override {
    beat();
    inner_.epoch_done(r);
  }
  void checkpoint_saved(const std::filesystem::path& f, std::size_t e, std::size_t b) override {
    beat();
    inner_.checkpoint_saved(f, e, b);
  }

 private:
  using clock = std::chrono::steady_clock;
  static std::int64_t now() { return clock::now().time_since_epoch().count(); }
  void beat() {
    const std::int64_t t = now(), gap = t - last_.exchange(t);
    if (gap > longest_) longest_ = gap;
  }
  void watch(std::stop_token st) {
    std::int64_t signalled = 0;
    while (!st.stop_requested()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      const int sig = stop_signal.load();
      if (sig == 0) continue;
      const std::int64_t t = now();
      if (signalled == 0) signalled = t;
      const std::int64_t deadline =
          std::max<std::int64_t>(std::chrono::duration_cast<clock::duration>(std::chrono::seconds(10)).count(),
                                 3 * longest_.load());
      if (t - std::max(signalled, last_.load()) < deadline) continue;
      if (lead_rank())
        std::fprintf(stderr,
                     "odyssey: no progress for %.0f s after %s: another rank is gone (see mpirun's message); "
                     "stopped without a checkpoint; the newest checkpoint in %s continues the run (--resume)\n",
                     std::chrono::duration<double>(clock::duration(deadline)).count(),
                     sig == SIGINT ? "SIGINT" : "SIGTERM", dir_.c_str());
      std::fflush(stderr);
      std::_Exit(128 + sig);
    }
  }

  TrainObserver& inner_;
  std::string dir_;
  std::atomic<std::int64_t> last_{now()}, longest_{0};
  std::jthread thread_;  // last: stops before the members it reads go
};

std::string signal_name(int sig) {
  return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal " + std::to_string(sig);
}

/// What `odyssey train` ends with when it was stopped: where, the checkpoint, and the
/// command that continues the run. Returns the exit code, 128 + the signal.
int report_stop(const StopPoint& p, const TrainArgs& a) {
  if (!lead_rank()) return 128 + p.reason;
  std::vector<std::string> again = command_line();
  bool has_resume = false, has_out = false;
  for (const auto& arg : again) {
    has_resume = has_resume || arg == "--resume";
    has_out = has_out || arg == "--out" || arg.rfind("--out=", 0) == 0;
  }
  if (!has_out) {
    again.emplace_back("--out");
    again.push_back(a.run.out.string());
  }
  if (!has_resume) again.emplace_back("--resume");
  std::fprintf(stderr,
               "odyssey: stopped by %s in epoch %zu/%zu after batch %zu/%zu%s (step %zu); saved %s\n"
               "odyssey: to continue the run: %s\n",
               signal_name(p.reason).c_str(), p.epoch, a.settings.epochs, p.batch, p.batches,
               p.batch == p.batches ? ", before its evaluation" : "", p.step, p.checkpoint.string().c_str(),
               shell_command(again).c_str());
  return 128 + p.reason;
}

std::string default_out(const std::string& dataset) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  return "runs/" + dataset + "-" + stamp;
}

int run_train(TrainArgs& a) {
  auto threads = use_threads(a.threads);
  a.settings.dataset = a.dataset;
  a.settings.schedule.kind = parse_schedule(a.schedule);
  a.settings.augment = !a.no_augment;
  a.settings.optimizer = a.optimizer == "adamw" ? OptimizerKind::adamw : OptimizerKind::sgd;
  if (a.weight_decay >= 0) a.settings.sgd.weight_decay = a.settings.adamw.weight_decay = a.weight_decay;
  a.settings.sgd.decay_all = a.settings.adamw.decay_all = a.decay_all;
  a.settings.sgd.norm_lr_scale = a.settings.adamw.norm_lr_scale = a.norm_lr_scale;
  a.settings.augmentation.flip = parse_flip(a.flip);
  a.settings.ema_eval = !a.no_ema_eval;
  a.settings.eval_flip = a.tta == "flip";
  a.settings.check();
  a.run.out = a.out.empty() ? default_out(a.dataset) : a.out;
  if (a.run.resume && a.out.empty())
    throw SettingError("resume", "--resume needs --out, the run directory to continue");
  parse_checkpoint_every(a.checkpoint_every, a.run);
  a.run.stop = &stop_signal;
  a.run.comm = communicator();
  print_stop_notice = lead_rank();
  catch_stop_signals();

  const auto t0 = std::chrono::steady_clock::now();
  Dataset train_set, test_set;
  collectively(a.run.comm, [&] {  // a rank that cannot read its data stops every rank
    train_set = load_dataset(a.dataset, a.data, Split::train, a.image_size);
    if (a.settings.train_subset) train_set = subset(train_set, a.settings.train_subset);
    test_set = load_dataset(a.dataset, a.data, Split::test, a.image_size);
    if (a.settings.test_subset) test_set = subset(test_set, a.settings.test_subset);
  });
  if (!a.quiet && distributed(a.run.comm) && a.settings.batch_size % std::size_t(a.run.comm->size()) == 0)
    std::printf("data parallel: %d processes, %zu images of each batch of %zu per process\n", a.run.comm->size(),
                a.settings.batch_size / std::size_t(a.run.comm->size()), a.settings.batch_size);
  if (!a.quiet)
    std::printf("%s: %zu training and %zu test images of %zux%zux%zu; %s, %zu epoch(s), batch %zu, lr %g (%s), "
                "seed %llu; run directory %s\n",
                a.dataset.c_str(), train_set.count, test_set.count, train_set.channels, train_set.height,
                train_set.width, a.model.c_str(), a.settings.epochs,
                a.settings.batch_size, a.settings.schedule.lr, a.schedule.c_str(),
                static_cast<unsigned long long>(a.settings.seed), a.run.out.string().c_str());
  ConsoleObserver console(a.quiet, test_set.class_names);
  std::unique_ptr<StopWatchdog> watchdog;
  if (distributed(a.run.comm)) watchdog = std::make_unique<StopWatchdog>(console, a.run.out.string());
  TrainObserver& observer = watchdog ? static_cast<TrainObserver&>(*watchdog) : console;
  const ModelSpec spec{a.model, train_set.channels, train_set.height};
  const TrainResult r = with_model(spec, [&]<class Net>() {
    return train<Net>(a.settings, a.run, train_set, test_set, spec.arch, &observer);
  });
  if (r.stopped) return report_stop(*r.stopped, a);
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto per_class = r.test.per_class();
  std::printf("\ntest accuracy %.2f%% (loss %.4f) on %zu images; %s in all\n", 100 * r.test.accuracy, r.test.loss,
              r.test.count, Progress::clock(total).c_str());
  std::printf("per class:");
  for (std::size_t c = 0; c < per_class.size(); ++c)
    std::printf("%s %s %.1f%%", c ? "," : "", test_set.class_names[c].c_str(), 100 * per_class[c]);
  std::printf("\nconfusion matrix (rows: true class, columns: predicted):\n%s",
              r.test.confusion.format(test_set.class_names).c_str());
  std::printf("weights: %s%s\n", r.weights.string().c_str(),
              a.settings.ema_decay > 0 ? (a.settings.ema_eval ? " (the weight average)" : " (the last weights)") : "");
  if (!r.other_weights.empty())
    std::printf("         %s (%s)\n", r.other_weights.string().c_str(),
                a.settings.ema_eval ? "the last weights" : "the weight average");
  if (auto* comm = communicator(); distributed(comm))
    std::printf("data parallel: %d processes, %.1f training images/s; rank 0 spent %.1f s (%.1f%% of the run) in "
                "communication (moving data and waiting for the other ranks)\n",
                comm->size(), r.images_per_second, comm->seconds(), 100 * comm->seconds() / r.seconds);
  std::printf("metrics: %s\n", r.metrics.string().c_str());
  if (r.plot_problem.empty()) std::printf("plot:    %s\n", r.plot.string().c_str());
  else std::printf("plot:    none: %s\n", r.plot_problem.c_str());
  return 0;
}

}  // namespace

std::function<int()> add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* c = app.add_subcommand(
      "train",
      "Train a model (--model: ResNet-18 by default, ResNet-34, PreAct ResNet-18). Checkpoints after every epoch in the run directory (the last "
      "--keep-checkpoints kept; mid-epoch ones with --checkpoint-every), metrics.csv, curves.png and "
      "weights.safetensors at the end. "
      "Ctrl-C (SIGINT) or SIGTERM stops the run after the current step with a checkpoint there and prints the "
      "command that continues it (exit code 130 or 143); a second signal stops at once. "
      "--resume continues a stopped run from its newest checkpoint and ends bitwise where the "
      "uninterrupted run would (same settings; any thread count).");
  auto& s = a->settings;
  s.epochs = 30;
  s.schedule.lr = 0.1;
  c->add_option("--dataset", a->dataset, "fashion-mnist (default; Debian's dataset-fashion-mnist) or cifar10")
      ->check(CLI::IsMember({"fashion-mnist", "cifar10"}));
  c->add_option("--model", a->model,
                "resnet18 (default), resnet34 (3-4-6-3 blocks) or preact-resnet18 (pre-activation blocks); "
                "recorded in the weights, so eval, predict and info need not be told")
      ->check(CLI::IsMember({"resnet18", "resnet34", "preact-resnet18"}))
      ->capture_default_str();
  c->add_option("--image-size", a->image_size,
                "Fashion-MNIST: 28 (native) or 32 (padded by 2 pixels, CIFAR's size); CIFAR-10: 32")
      ->check(CLI::IsMember({28, 32}))
      ->capture_default_str();
  c->add_option("--data", a->data,
                "dataset folder (default: /usr/share/datasets/fashion-mnist, or data/cifar-10-batches-bin "
                "for cifar10: the binary version of CIFAR-10)");
  c->add_option("--epochs", s.epochs, "passes over the training set")->check(CLI::Range(1, 100000))->capture_default_str();
  c->add_option("--batch-size", s.batch_size, "images per step")->check(CLI::Range(2, 65536))->capture_default_str();
  c->add_option("--lr", s.schedule.lr, "learning rate (the peak, for onecycle)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c->add_option("--schedule", a->schedule,
                "learning-rate schedule: step (x--step-gamma every --step-epochs), cosine (to --min-lr), "
                "onecycle, or constant")
      ->check(CLI::IsMember({"step", "cosine", "onecycle", "constant"}))
      ->capture_default_str();
  c->add_option("--step-epochs", s.schedule.step_epochs, "step schedule: epochs between decays")->capture_default_str();
  c->add_option("--step-gamma", s.schedule.step_gamma, "step schedule: decay factor")->capture_default_str();
  c->add_option("--min-lr", s.schedule.min_lr, "cosine schedule: final learning rate")->capture_default_str();
  c->add_option("--warmup-epochs", s.schedule.warmup_epochs,
                "linear warm-up from lr/10 over this many epochs (fractions allowed)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  c->add_option("--optimizer", a->optimizer,
                "sgd (momentum, L2 weight decay; PyTorch's SGD) or adamw (decoupled weight decay; PyTorch's AdamW)")
      ->check(CLI::IsMember({"sgd", "adamw"}))
      ->capture_default_str();
  c->add_option("--momentum", s.sgd.momentum, "SGD momentum")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  c->add_option("--weight-decay", a->weight_decay,
                "weight decay of conv and linear weights (default: 5e-4 for sgd, as L2 in the gradient; 0.01 for "
                "adamw, decoupled)")
      ->check(CLI::NonNegativeNumber);
  c->add_flag("--nesterov", s.sgd.nesterov, "SGD: Nesterov momentum");
  c->add_option("--beta1", s.adamw.beta1, "AdamW: first-moment decay")->check(CLI::Range(0.0, 0.999999))->capture_default_str();
  c->add_option("--beta2", s.adamw.beta2, "AdamW: second-moment decay")->check(CLI::Range(0.0, 0.999999))->capture_default_str();
  c->add_option("--eps", s.adamw.eps, "AdamW: denominator epsilon")->check(CLI::PositiveNumber)->capture_default_str();
  c->add_flag("--decay-all", a->decay_all, "weight decay on biases and batch-norm parameters too");
  c->add_option("--norm-lr-scale", a->norm_lr_scale,
                "parameter groups: the learning rate of biases and batch-norm parameters is --lr times this")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  c->add_option("--label-smoothing", s.label_smoothing, "label smoothing of the cross-entropy")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  c->add_flag("--no-augment", a->no_augment, "no training augmentation at all (--translate, --flip, --erase)");
  c->add_option("--translate", s.augmentation.translate,
                "augmentation: shift each training image by up to this many pixels each way, zero-filled (a random "
                "crop of the padded image); 0: none")
      ->check(CLI::Range(0, 16))
      ->capture_default_str();
  c->add_option("--flip", a->flip,
                "augmentation: horizontal flip of training images: random (a coin per image and epoch), alternate "
                "(a coin per image in epoch 1, then flipped every other epoch), or none")
      ->check(CLI::IsMember({"random", "alternate", "none"}))
      ->capture_default_str();
  c->add_option("--erase", s.augmentation.erase,
                "augmentation: probability of random erasing (a rectangle of 2-33% of the image, aspect 0.3-3.3, "
                "set to the mean)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  c->add_option("--ema", s.ema_decay,
                "keep an exponential moving average of the weights with this decay (e.g. 0.999; warm-up "
                "min(decay, (1+t)/(10+t)) at step t); it is evaluated and saved as the weights; 0: none")
      ->check(CLI::Range(0.0, 0.999999))
      ->capture_default_str();
  c->add_flag("--no-ema-eval", a->no_ema_eval,
              "with --ema: evaluate and save the last weights, the average as weights-average.safetensors");
  c->add_option("--bn-recalibrate", s.bn_recalibrate,
                "before each evaluation, re-estimate the batch norms' running statistics over this many training "
                "batches (unaugmented); 0: as training left them")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  c->add_option("--tta", a->tta,
                "test-time augmentation of the evaluation after each epoch: flip (the mean of the probabilities "
                "of each image and its mirror image) or none")
      ->check(CLI::IsMember({"none", "flip"}))
      ->capture_default_str();
  c->add_option("--init-weights", s.init_weights,
                "start from these weights (odyssey's weights or checkpoint, or a state dict saved from PyTorch in "
                "safetensors) instead of a fresh initialisation, e.g. to fine-tune")
      ->check(CLI::ExistingFile);
  c->add_flag("--zero-init-residual", s.zero_init_residual,
              "start every residual block's last batch-norm scale at 0, so each block begins as its shortcut "
              "(torchvision's zero_init_residual; no effect on preact-resnet18, whose blocks end in a convolution)");
  c->add_flag("--reset-classifier", s.reset_classifier,
              "with --init-weights: keep the fresh classifier (fc) instead of the file's, e.g. for another class "
              "count");
  c->add_option("--train-subset", s.train_subset, "train on the first N training images only")
      ->check(CLI::PositiveNumber);
  c->add_option("--test-subset", s.test_subset, "evaluate on the first N test images only")
      ->check(CLI::PositiveNumber);
  c->add_option("--seed", s.seed, "seed of initialisation, shuffling and augmentation")->capture_default_str();
  c->add_option("--out", a->out, "run directory (default: runs/<dataset>-<date>-<time>)");
  c->add_flag("--resume", a->run.resume, "continue the run in --out from its newest checkpoint");
  c->add_option("--keep-checkpoints", a->run.keep_checkpoints, "end-of-epoch checkpoints to keep")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  c->add_option("--checkpoint-every", a->checkpoint_every,
                "also checkpoint within epochs: every N steps (e.g. 500) or every N minutes (e.g. 15m); a mid-epoch "
                "checkpoint is kept until a newer one is written");
  c->add_option("--log-every", a->run.log_every, "steps between rows of metrics.csv")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  c->add_option("--eval-batch-size", a->run.eval_batch, "images per evaluation pass")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  c->add_option("--threads", a->threads, "threads (default: every core)")->check(CLI::Range(1, 1024));
  c->add_flag("--quiet", a->quiet, "no progress output");
  return [a] { return run_train(*a); };
}

}  // namespace odyssey::cli
