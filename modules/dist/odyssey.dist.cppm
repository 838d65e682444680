// odyssey.dist: what data-parallel training needs from the processes it runs on, without
// naming a transport. A Communicator is the group of ranks of one run; odyssey.mpi provides
// one over MPI, and a run without one (or of size 1) is a single process.
//
// Every collective is entered by every rank in the same order. The results are the same on
// every rank and, for a given size, bitwise the same on every run: whatever the transport
// does underneath, values from different ranks are combined in rank order, 0 first.
module;
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <vector>
export module odyssey.dist;

export namespace odyssey {

class Communicator {
 public:
  virtual ~Communicator() = default;
  [[nodiscard]] virtual int rank() const noexcept = 0;
  [[nodiscard]] virtual int size() const noexcept = 0;

  /// all[r * mine.size() + i] = rank r's mine[i]; `mine` has the same size on every rank.
  virtual void allgather(std::span<const double> mine, std::span<double> all) = 0;
  /// Rank `root`'s `data` into every rank's (the same size everywhere).
  virtual void broadcast(std::span<std::byte> data, int root) = 0;

  /// Starts summing `data` over the ranks, in place, and returns a handle for wait_sum().
  /// For each element the sum is ((x_0 + x_1) + x_2) + ..., x_r being rank r's value. `data`
  /// must stay untouched until wait_sum() returns.
  virtual std::size_t start_sum(std::span<float> data) = 0;
  virtual std::size_t start_sum(std::span<double> data) = 0;
  /// Lets started sums advance (transports that need the caller's thread to move data).
  virtual void progress() {}
  /// Blocks until sum `handle` is complete; its data then holds the sum on every rank.
  virtual void wait_sum(std::size_t handle) = 0;

  /// Ends every rank of the run at once with exit code `code` (for failures the others
  /// cannot be told about in an orderly way).
  [[noreturn]] virtual void abort(int code) noexcept = 0;
};

/// Another communicator, timed: the seconds spent inside its calls (waiting for the other
/// ranks, or moving data), to measure communication's share of a step.
class TimedCommunicator final : public Communicator {
 public:
  explicit TimedCommunicator(Communicator& inner) : inner_(inner) {}
  [[nodiscard]] int rank() const noexcept override { return inner_.rank(); }
  [[nodiscard]] int size() const noexcept override { return inner_.size(); }
  void allgather(std::span<const double> mine, std::span<double> all) override {
    timed([&] { inner_.allgather(mine, all); });
  }
  void broadcast(std::span<std::byte> data, int root) override {
    timed([&] { inner_.broadcast(data, root); });
  }
  std::size_t start_sum(std::span<float> data) override {
    std::size_t h = 0;
    timed([&] { h = inner_.start_sum(data); });
    return h;
  }
  std::size_t start_sum(std::span<double> data) override {
    std::size_t h = 0;
    timed([&] { h = inner_.start_sum(data); });
    return h;
  }
  void progress() override {
    timed([&] { inner_.progress(); });
  }
  void wait_sum(std::size_t handle) override {
    timed([&] { inner_.wait_sum(handle); });
  }
  [[noreturn]] void abort(int code) noexcept override { inner_.abort(code); }

  /// Seconds inside calls since the last reset().
  [[nodiscard]] double seconds() const noexcept { return seconds_; }
  void reset() noexcept { seconds_ = 0; }

 private:
  template <class F>
  void timed(F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  Communicator& inner_;
  double seconds_ = 0;
};

/// Whether a run is spread over more than one process.
inline bool distributed(const Communicator* c) noexcept { return c && c->size() > 1; }

/// Sums `values` over the ranks in place, in rank order (small vectors: per-channel
/// statistics, loss and counts).
inline void sum_in_rank_order(Communicator& c, std::span<double> values) {
  std::vector<double> all(values.size() * std::size_t(c.size()));
  c.allgather(values, all);
  for (std::size_t i = 0; i < values.size(); ++i) {
    double s = all[i];
    for (std::size_t r = 1; r < std::size_t(c.size()); ++r) s += all[r * values.size() + i];
    values[i] = s;
  }
}

/// Set when a failure was made known to every rank (each throws, in step), so the process
/// may end normally; a failure of one rank alone leaves the others waiting in a collective,
/// and only Communicator::abort() ends them.
inline bool& failure_agreed() noexcept {
  static bool agreed = false;
  return agreed;
}

/// Rank `root`'s string on every rank.
inline std::string broadcast_string(Communicator& c, std::string s, int root) {
  std::uint64_t n = s.size();
  c.broadcast(std::as_writable_bytes(std::span(&n, 1)), root);
  s.resize(n);
  c.broadcast(std::as_writable_bytes(std::span(s.data(), s.size())), root);
  return s;
}

}  // namespace odyssey
