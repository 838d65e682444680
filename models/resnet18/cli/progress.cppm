// odyssey.cli.progress: what `odyssey` prints while it works. Progress: one live line per
// epoch on a terminal, rewritten in place (step, loss, accuracy, images/s, ETA); when stdout
// is not a terminal, a plain line every tenth of an epoch instead, so logs stay readable.
// ConsoleObserver: the trainer's reports turned into those lines and the per-epoch summary.
module;
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>
#include <fmt/format.h>
export module odyssey.cli.progress;
import odyssey;

export namespace odyssey::cli {

class Progress {
 public:
  explicit Progress(bool quiet = false) : tty_(isatty(STDOUT_FILENO) == 1), quiet_(quiet) {}

  void begin_epoch(std::size_t epoch, std::size_t epochs, std::size_t steps, std::size_t first_step = 0) {
    epoch_ = epoch;
    epochs_ = epochs;
    steps_ = steps;
    first_ = first_step;
    start_ = last_ = std::chrono::steady_clock::now();
    next_plain_ = 0;
  }

  /// After step `done` (1-based within the epoch) of images, with the running loss/accuracy.
  void update(std::size_t done, std::size_t images, double loss, double accuracy, double lr) {
    if (quiet_) return;
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double per_step = (done > first_) ? elapsed / double(done - first_) : 0.0;
    const double eta = per_step * double(steps_ - done);
    const std::string line =
        fmt::format("epoch {}/{} step {}/{} loss {:.4f} acc {:.2f}% lr {:.4g} {:.1f} img/s ETA {}", epoch_, epochs_, done,
                    steps_, loss, 100 * accuracy, lr, elapsed > 0 ? double(images) / elapsed : 0.0, clock(eta));
    if (tty_) {
      if (std::chrono::duration<double>(now - last_).count() < 0.2 && done != steps_) return;
      last_ = now;
      std::printf("\r\033[K%s", line.c_str());
      std::fflush(stdout);
    } else if (done * 10 >= next_plain_ * steps_ || done == steps_) {
      while (next_plain_ * steps_ <= done * 10) ++next_plain_;
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }
  }

  /// Ends the live line (a terminal keeps the last state on screen).
  void end_epoch() {
    if (tty_ && !quiet_) std::printf("\n");
  }

  static std::string clock(double seconds) {
    const long s = long(seconds + 0.5);
    return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60) : fmt::format("{}:{:02}", s / 60, s % 60);
  }

 private:
  bool tty_, quiet_;
  std::size_t epoch_ = 0, epochs_ = 0, steps_ = 0, first_ = 0, next_plain_ = 0;
  std::chrono::steady_clock::time_point start_, last_;
};

/// Prints a run's progress on stdout (nothing when quiet).
class ConsoleObserver final : public TrainObserver {
 public:
  ConsoleObserver(bool quiet, std::vector<std::string> class_names)
      : progress_(quiet), quiet_(quiet), tty_(isatty(STDOUT_FILENO) == 1), class_names_(std::move(class_names)) {}

  void resumed(const CheckpointInfo& from, const std::vector<std::string>& skipped) override {
    if (quiet_) return;
    if (!skipped.empty()) {
      std::printf("skipped unreadable checkpoints:\n");
      for (const auto& s : skipped) std::printf("  %s\n", s.c_str());
    }
    if (from.batches_done)
      std::printf("resuming %s: epoch %zu after its batch %zu (step %zu)\n", from.file.string().c_str(),
                  from.epochs_done + 1, from.batches_done, from.step);
    else
      std::printf("resuming %s after epoch %zu (step %zu)\n", from.file.string().c_str(), from.epochs_done, from.step);
  }
  void epoch_started(std::size_t epoch, std::size_t epochs, std::size_t batches, std::size_t first_batch) override {
    progress_.begin_epoch(epoch, epochs, batches, first_batch);
  }
  void checkpoint_saved(const std::filesystem::path& file, std::size_t, std::size_t) override {
    if (quiet_ || tty_) return;  // on a terminal the progress line stays clean
    std::printf("saved %s\n", file.filename().string().c_str());
  }
  void step_done(const StepReport& r) override {
    progress_.update(r.batch, r.images, r.loss, r.accuracy, r.lr);
    if (r.batch == r.batches) progress_.end_epoch();
  }
  void evaluating(std::size_t done, std::size_t total) override {
    if (quiet_ || !tty_) return;
    std::printf("\r\033[Kevaluating %zu/%zu", done, total);
    if (done == total) std::printf("\r\033[K");
    std::fflush(stdout);
  }
  void epoch_done(const EpochReport& r) override {
    if (quiet_) return;
    std::printf("epoch %zu/%zu: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | %.1f img/s | %s | saved %s\n",
                r.epoch, r.epochs, r.train_loss, 100 * r.train_accuracy, r.test.loss, 100 * r.test.accuracy,
                r.images_per_second, Progress::clock(r.seconds_total).c_str(),
                r.checkpoint.filename().string().c_str());
    const auto per = r.test.per_class();
    std::string line = "  test accuracy per class:";
    for (std::size_t c = 0; c < per.size(); ++c)
      line += fmt::format(" {}={:.1f}%", c < class_names_.size() ? class_names_[c] : std::to_string(c), 100 * per[c]);
    std::printf("%s\n", line.c_str());
  }

 private:
  Progress progress_;
  bool quiet_, tty_;
  std::vector<std::string> class_names_;
};

}  // namespace odyssey::cli
