// Evaluation results (loss, top-1 accuracy, per-class accuracy, confusion matrix) and the
// run's metrics CSV.
module;
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>
#include <fmt/format.h>
export module odyssey.train:metrics;
import odyssey.tensor;

export namespace odyssey {

/// counts[true][predicted].
class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(std::size_t classes = 0) : k_(classes), counts_(classes * classes, 0) {}

  void add(std::size_t truth, std::size_t predicted) { ++counts_[truth * k_ + predicted]; }
  [[nodiscard]] std::size_t classes() const noexcept { return k_; }
  [[nodiscard]] std::size_t at(std::size_t truth, std::size_t predicted) const { return counts_[truth * k_ + predicted]; }

  /// Recall of each class: correct / samples of that class (0 for an absent class).
  [[nodiscard]] std::vector<double> per_class_accuracy() const {
    std::vector<double> acc(k_, 0.0);
    for (std::size_t t = 0; t < k_; ++t) {
      std::size_t total = 0;
      for (std::size_t p = 0; p < k_; ++p) total += at(t, p);
      acc[t] = total ? double(at(t, t)) / double(total) : 0.0;
    }
    return acc;
  }

  /// A table with class names down the side (truth) and indices across (prediction).
  [[nodiscard]] std::string format(const std::vector<std::string>& names) const {
    std::string s = fmt::format("{:>14} ", "true \\ pred");
    for (std::size_t p = 0; p < k_; ++p) s += fmt::format("{:>6}", p);
    s += '\n';
    for (std::size_t t = 0; t < k_; ++t) {
      const std::string name = t < names.size() ? names[t] : std::to_string(t);
      s += fmt::format("{:>11.11} {:>2} ", name, t);
      for (std::size_t p = 0; p < k_; ++p) s += fmt::format("{:>6}", at(t, p));
      s += '\n';
    }
    return s;
  }

 private:
  std::size_t k_;
  std::vector<std::size_t> counts_;
};

struct EvalResult {
  double loss = 0;
  double accuracy = 0;
  std::size_t count = 0;
  ConfusionMatrix confusion;
  [[nodiscard]] std::vector<double> per_class() const { return confusion.per_class_accuracy(); }
};

/// metrics.csv in the run directory: one row per epoch (kind "epoch", with test figures)
/// and one every N steps (kind "step"). On resume, rows after the resumed position are dropped.
class MetricsCsv {
 public:
  static constexpr const char* header =
      "kind,epoch,step,lr,train_loss,train_accuracy,test_loss,test_accuracy,images_per_second,elapsed_seconds";

  MetricsCsv() = default;
  /// Opens (creating) path. On resume keeps the rows of the position resumed from: epoch rows
  /// of epochs <= keep_epochs and step rows of steps <= keep_steps.
  MetricsCsv(const std::filesystem::path& path, std::size_t keep_epochs, std::size_t keep_steps, bool resume)
      : path_(path) {
    std::vector<std::string> kept;
    if (resume) {
      std::ifstream in(path);
      std::string line;
      while (std::getline(in, line)) {
        if (line.empty() || line.rfind("kind,", 0) == 0) continue;
        std::istringstream fields(line);
        std::string kind, epoch, step;
        std::getline(fields, kind, ',');
        std::getline(fields, epoch, ',');
        std::getline(fields, step, ',');
        // Epochs are counted from 1 in the file. Keep what the checkpoint covers: the epochs
        // it completed, and the steps it took (a mid-epoch checkpoint's too).
        if (epoch.empty() || step.empty()) continue;
        if (kind == "epoch" ? std::stoul(epoch) <= keep_epochs : std::stoul(step) <= keep_steps) kept.push_back(line);
      }
    }
    out_.open(path, std::ios::trunc);
    if (!out_) throw IoError(fmt::format("cannot write '{}': {}", path.string(), std::strerror(errno)));
    out_ << header << '\n';
    for (const auto& l : kept) out_ << l << '\n';
    out_.flush();
  }

  void step(std::size_t epoch, std::size_t step, double lr, double loss, double accuracy, double ips,
            double elapsed) {
    out_ << fmt::format("step,{},{},{:.6g},{:.6f},{:.6f},,,{:.2f},{:.1f}\n", epoch, step, lr, loss, accuracy, ips,
                        elapsed);
    out_.flush();
  }
  void epoch(std::size_t epoch, std::size_t step, double lr, double loss, double accuracy, const EvalResult& test,
             double ips, double elapsed) {
    out_ << fmt::format("epoch,{},{},{:.6g},{:.6f},{:.6f},{:.6f},{:.6f},{:.2f},{:.1f}\n", epoch, step, lr, loss,
                        accuracy, test.loss, test.accuracy, ips, elapsed);
    out_.flush();
  }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace odyssey
