// The optimizer interface the trainer and checkpoints use: a step at a learning rate, and the
// optimizer's own state (momentum or moment buffers, step counters) as named entries, so a
// checkpoint can hold it and a resumed run continue bitwise.
module;
#include <vector>
export module odyssey.optim:optimizer;
import odyssey.layers;

export namespace odyssey {

template <class T>
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  /// One update of every parameter at learning rate `lr`; zeroes the gradients.
  virtual void step(double lr) = 0;
  /// The optimizer's buffers and counters, named after their parameters (e.g.
  /// "momentum.conv1.weight"); a checkpoint stores them under "optimizer.".
  [[nodiscard]] virtual std::vector<StateEntry<T>> state() = 0;
};

}  // namespace odyssey
