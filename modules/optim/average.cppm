// An exponential moving average of a network's weights: after every optimizer step,
// average = d * average + (1 - d) * weights, over the parameters and the batch-norm running
// statistics (as timm's ModelEmaV2 averages the whole state dict), with the warm-up of
// TensorFlow's ExponentialMovingAverage, d = min(decay, (1 + t) / (10 + t)) at update t, so
// the early average does not remember the random initialisation for thousands of steps.
// Evaluating the average often beats the last weights of a run; swap() puts it into the
// network for that (and back), with no copy of the network.
module;
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>
export module odyssey.optim:average;
import odyssey.tensor;
import odyssey.layers;

export namespace odyssey {

template <class T>
class WeightAverage {
 public:
  /// Averages every entry of `entries` (a network's state: parameters, running statistics,
  /// batch counters), starting from their current values. ValueError unless 0 < decay < 1.
  WeightAverage(std::vector<StateEntry<T>> entries, double decay) : decay_(decay), live_(std::move(entries)) {
    if (!(decay > 0 && decay < 1))
      throw ValueError("WeightAverage: the decay must be in (0, 1), not " + std::to_string(decay));
    for (const auto& e : live_) {
      if (e.counter) {
        counters_.push_back(*e.counter);
        average_.emplace_back();
      } else {
        counters_.push_back(0);
        average_.emplace_back(e.value.size());
        std::copy(e.value.begin(), e.value.end(), average_.back().data());
      }
    }
  }

  [[nodiscard]] double decay() const noexcept { return decay_; }

  /// The factor of update `t` (1-based): min(decay, (1 + t) / (10 + t)).
  [[nodiscard]] double factor(std::uint64_t t) const noexcept {
    return std::min(decay_, (1.0 + double(t)) / (10.0 + double(t)));
  }

  /// Folds the network's current values in, as update `t` (1-based: the optimizer steps
  /// taken so far). Counters are copied.
  void update(std::uint64_t t) {
    const T d = T(factor(t)), e = T(1) - d;
    for (std::size_t i = 0; i < live_.size(); ++i) {
      if (live_[i].counter) {
        counters_[i] = *live_[i].counter;
        continue;
      }
      T* a = average_[i].data();
      const T* v = live_[i].value.data();
      const std::size_t n = live_[i].value.size();
      for (std::size_t k = 0; k < n; ++k) a[k] = d * a[k] + e * v[k];
    }
  }

  /// Exchanges the average with the network's values; a second call restores them.
  void swap() {
    for (std::size_t i = 0; i < live_.size(); ++i) {
      if (live_[i].counter) std::swap(counters_[i], *live_[i].counter);
      else std::swap_ranges(live_[i].value.begin(), live_[i].value.end(), average_[i].data());
    }
  }

  /// The average as entries named as the network's ("ema." is the checkpoints' prefix).
  [[nodiscard]] std::vector<StateEntry<T>> state() {
    std::vector<StateEntry<T>> out;
    for (std::size_t i = 0; i < live_.size(); ++i) {
      const auto& l = live_[i];
      if (l.counter) out.push_back({l.name, StateKind::counter, {}, {}, {}, &counters_[i]});
      else out.push_back({l.name, l.kind, l.shape, average_[i].span(), {}, nullptr});
    }
    return out;
  }

 private:
  double decay_;
  std::vector<StateEntry<T>> live_;
  std::vector<AlignedBuffer<T>> average_;
  std::vector<std::int64_t> counters_;
};

/// Swaps a WeightAverage into its network for a scope and back out at its end; does
/// nothing for a null average.
template <class T>
class AverageSwapped {
 public:
  explicit AverageSwapped(WeightAverage<T>* average) : average_(average) {
    if (average_) average_->swap();
  }
  ~AverageSwapped() {
    if (average_) average_->swap();
  }
  AverageSwapped(const AverageSwapped&) = delete;
  AverageSwapped& operator=(const AverageSwapped&) = delete;

 private:
  WeightAverage<T>* average_;
};

}  // namespace odyssey
