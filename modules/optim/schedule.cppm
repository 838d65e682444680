// Learning-rate schedules, as functions of the global step: constant, step (x gamma every
// N epochs, PyTorch's StepLR), cosine annealing to a floor, and one-cycle (PyTorch's
// OneCycleLR, cosine phases); any of them after an optional linear warm-up.
module;
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numbers>
#include <string>
export module odyssey.optim:schedule;
import odyssey.tensor;

export namespace odyssey {

enum class ScheduleKind { constant, step, cosine, onecycle };

struct ScheduleOptions {
  ScheduleKind kind = ScheduleKind::cosine;
  double lr = 0.1;              // base (step, cosine, constant) or peak (one-cycle) rate
  double step_epochs = 60;      // step: epochs between decays
  double step_gamma = 0.2;      // step: decay factor
  double min_lr = 0;            // cosine: final rate
  double warmup_epochs = 0;     // linear warm-up from lr/warmup_start_div
  double warmup_start_div = 10;
  double onecycle_pct = 0.3;    // one-cycle: fraction of the run spent rising
  double onecycle_div = 25;     // one-cycle: initial rate = lr / div
  double onecycle_final_div = 1e4;
};

inline ScheduleKind parse_schedule(const std::string& name) {
  if (name == "step") return ScheduleKind::step;
  if (name == "cosine") return ScheduleKind::cosine;
  if (name == "onecycle") return ScheduleKind::onecycle;
  if (name == "constant") return ScheduleKind::constant;
  throw ValueError("unknown learning-rate schedule '" + name + "' (step, cosine, onecycle, constant)");
}

class LrSchedule {
 public:
  LrSchedule(ScheduleOptions o, std::size_t epochs, std::size_t steps_per_epoch)
      : o_(o), steps_per_epoch_(std::max<std::size_t>(1, steps_per_epoch)),
        total_(std::max<std::size_t>(1, epochs * steps_per_epoch_)) {
    if (!(o.lr > 0)) throw ValueError("learning rate must be positive");
  }

  /// The rate for global step `step` (0-based).
  [[nodiscard]] double at(std::size_t step) const {
    const double epoch = double(step) / double(steps_per_epoch_);  // fractional
    const double t = std::min(1.0, double(step) / double(total_));
    double lr = o_.lr;
    switch (o_.kind) {
      case ScheduleKind::constant:
        break;
      case ScheduleKind::step:
        lr = o_.lr * std::pow(o_.step_gamma, std::floor(epoch / o_.step_epochs));
        break;
      case ScheduleKind::cosine:
        lr = o_.min_lr + (o_.lr - o_.min_lr) * 0.5 * (1 + std::cos(std::numbers::pi * t));
        break;
      case ScheduleKind::onecycle: {
        const double lo = o_.lr / o_.onecycle_div, end = lo / o_.onecycle_final_div;
        const double up = o_.onecycle_pct;
        lr = t < up ? anneal(lo, o_.lr, t / up) : anneal(o_.lr, end, (t - up) / (1 - up));
        return lr;  // one-cycle has its own warm-up
      }
    }
    if (epoch < o_.warmup_epochs) {
      const double start = 1.0 / o_.warmup_start_div;
      lr *= start + (1 - start) * epoch / o_.warmup_epochs;
    }
    return lr;
  }

 private:
  static double anneal(double from, double to, double f) {
    return to + (from - to) * 0.5 * (1 + std::cos(std::numbers::pi * std::clamp(f, 0.0, 1.0)));
  }
  ScheduleOptions o_;
  std::size_t steps_per_epoch_, total_;
};

}  // namespace odyssey
