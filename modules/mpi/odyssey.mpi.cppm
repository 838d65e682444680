// odyssey.mpi: the Communicator over MPI (Open MPI, Debian's libopenmpi-dev), for
// `mpirun -np N odyssey train`. One process per rank of MPI_COMM_WORLD; only the thread that
// initialised MPI calls it (MPI_THREAD_FUNNELED), the trainer's main thread.
//
// Sums in rank order, whatever MPI's own algorithms would do: a sum of n values is cut into
// `size` segments; each rank receives every rank's copy of its segment (MPI_Ialltoallv), adds
// them in rank order, and the sums are gathered back to everyone (MPI_Iallgatherv). That is a
// reduce-scatter and an all-gather, the two halves of a ring allreduce: each rank sends and
// receives 2 (size - 1) / size of the data. Both halves are non-blocking; progress() moves
// them on while the caller computes.
//
// MPI matches collectives on a communicator by the order each rank enters them, so every
// rank must enter them in the same order. A sum's second half starts when its first half is
// complete, which is a matter of timing and differs between ranks. So the halves run on
// communicators of their own (duplicates of MPI_COMM_WORLD, which keeps the blocking
// allgather and broadcast), and second halves start strictly in the order the sums were
// started: each communicator then sees the same sequence on every rank.
module;
#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>
export module odyssey.mpi;
import odyssey.dist;

namespace odyssey::detail {

template <class T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() {
  return MPI_FLOAT;
}
template <>
MPI_Datatype mpi_type<double>() {
  return MPI_DOUBLE;
}

inline void mpi_check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  throw std::runtime_error(std::string(what) + ": " + std::string(text, std::size_t(len)));
}

/// One rank-ordered sum in flight: the reduce-scatter half, then the all-gather half.
class PendingSum {
 public:
  virtual ~PendingSum() = default;
  /// Advances without blocking (blocking when `wait`); true once complete. The second half
  /// starts only when `may_gather` (every sum started earlier has started its own).
  virtual bool advance(bool wait, bool may_gather) = 0;
  [[nodiscard]] virtual bool gathering() const noexcept = 0;
  /// Blocks until the first half is complete and starts the second.
  virtual void start_gather() = 0;
};

template <class T>
class RankOrderSum final : public PendingSum {
 public:
  RankOrderSum(std::span<T> data, MPI_Comm scatter, MPI_Comm gather, int rank, int size)
      : data_(data), gather_(gather), rank_(rank) {
    const std::size_t n = data.size(), p = std::size_t(size);
    counts_.resize(p);
    displs_.resize(p);
    for (std::size_t r = 0; r < p; ++r) {
      const std::size_t a = n * r / p, b = n * (r + 1) / p;
      if (b - a > std::size_t(INT32_MAX)) throw std::length_error("odyssey.mpi: a sum of more than 2^31 values per rank");
      counts_[r] = int(b - a);
      displs_[r] = int(a);
    }
    // Every rank's copy of my segment, rank r's at r * mine.
    const int mine = counts_[std::size_t(rank)];
    received_.resize(std::size_t(mine) * p);
    recv_counts_.assign(p, mine);
    recv_displs_.resize(p);
    for (std::size_t r = 0; r < p; ++r) recv_displs_[r] = int(r) * mine;
    mpi_check(MPI_Ialltoallv(data_.data(), counts_.data(), displs_.data(), mpi_type<T>(), received_.data(),
                             recv_counts_.data(), recv_displs_.data(), mpi_type<T>(), scatter, &request_),
              "MPI_Ialltoallv");
  }

  /// Whether the all-gather half has started (every earlier sum's has too).
  [[nodiscard]] bool gathering() const noexcept override { return phase_ > 0; }

  void start_gather() override {
    if (phase_ != 0) return;
    mpi_check(MPI_Wait(&request_, MPI_STATUS_IGNORE), "MPI_Wait");
    phase_ = 1;
    reduce_and_gather();
  }

  bool advance(bool wait, bool may_gather) override {
    while (phase_ < 2) {
      if (phase_ == 0 && !may_gather) return false;
      int done = 0;
      if (wait) {
        mpi_check(MPI_Wait(&request_, MPI_STATUS_IGNORE), "MPI_Wait");
        done = 1;
      } else {
        mpi_check(MPI_Test(&request_, &done, MPI_STATUS_IGNORE), "MPI_Test");
      }
      if (!done) return false;
      if (phase_++ == 0) reduce_and_gather();
    }
    return true;
  }

 private:
  void reduce_and_gather() {
    const std::size_t mine = std::size_t(counts_[std::size_t(rank_)]), p = counts_.size();
    T* out = data_.data() + displs_[std::size_t(rank_)];
    for (std::size_t i = 0; i < mine; ++i) {
      T s = received_[i];
      for (std::size_t r = 1; r < p; ++r) s += received_[r * mine + i];
      out[i] = s;
    }
    mpi_check(MPI_Iallgatherv(MPI_IN_PLACE, 0, mpi_type<T>(), data_.data(), counts_.data(), displs_.data(),
                              mpi_type<T>(), gather_, &request_),
              "MPI_Iallgatherv");
  }

  std::span<T> data_;
  MPI_Comm gather_;
  int rank_;
  std::vector<int> counts_, displs_, recv_counts_, recv_displs_;
  std::vector<T> received_;
  MPI_Request request_ = MPI_REQUEST_NULL;
  int phase_ = 0;  // 0: exchanging segments, 1: gathering sums, 2: done
};

}  // namespace odyssey::detail

export namespace odyssey {

/// Whether this process was started by mpirun (Open MPI's or another launcher's variables).
inline bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

/// MPI for the life of the object: MPI_Init_thread (FUNNELED) and MPI_Finalize.
class MpiSession {
 public:
  MpiSession(int& argc, char**& argv) {
    int provided = 0;
    detail::mpi_check(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    if (provided < MPI_THREAD_FUNNELED) {
      MPI_Finalize();
      throw std::runtime_error("odyssey.mpi: the MPI library does not support MPI_THREAD_FUNNELED");
    }
  }
  ~MpiSession() { MPI_Finalize(); }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
};

/// MPI_COMM_WORLD as a Communicator. Needs a live MpiSession.
class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    // Errors come back as codes (turned into exceptions) instead of aborting the job.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    detail::mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &scatter_), "MPI_Comm_dup");
    detail::mpi_check(MPI_Comm_dup(MPI_COMM_WORLD, &gather_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(scatter_, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(gather_, MPI_ERRORS_RETURN);
  }
  ~MpiCommunicator() override {
    pending_.clear();
    MPI_Comm_free(&gather_);
    MPI_Comm_free(&scatter_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  [[nodiscard]] int rank() const noexcept override { return rank_; }
  [[nodiscard]] int size() const noexcept override { return size_; }

  void allgather(std::span<const double> mine, std::span<double> all) override {
    if (all.size() != mine.size() * std::size_t(size_))
      throw std::invalid_argument("MpiCommunicator::allgather: the output must hold size() inputs");
    detail::mpi_check(MPI_Allgather(mine.data(), int(mine.size()), MPI_DOUBLE, all.data(), int(mine.size()),
                                    MPI_DOUBLE, MPI_COMM_WORLD),
                      "MPI_Allgather");
  }

  void broadcast(std::span<std::byte> data, int root) override {
    constexpr std::size_t chunk = std::size_t(1) << 30;
    for (std::size_t at = 0; at < data.size(); at += chunk) {
      const std::size_t n = std::min(chunk, data.size() - at);
      detail::mpi_check(MPI_Bcast(data.data() + at, int(n), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
    }
  }

  std::size_t start_sum(std::span<float> data) override { return start(data); }
  std::size_t start_sum(std::span<double> data) override { return start(data); }

  void progress() override {
    // Second halves start in start order: none after a sum whose first half is still out.
    bool may_gather = true;
    for (auto& [handle, p] : pending_) {
      if (!p) continue;
      if (p->advance(false, may_gather)) p.reset();  // complete: kept (empty) until waited for
      else if (!p->gathering()) may_gather = false;
    }
  }

  void wait_sum(std::size_t handle) override {
    const auto it = pending_.find(handle);
    if (it == pending_.end()) throw std::invalid_argument("MpiCommunicator::wait_sum: no such sum in flight");
    // Every earlier sum's second half first, in order, so that this one's may start.
    for (auto e = pending_.begin(); e != it; ++e)
      if (e->second && !e->second->gathering()) e->second->start_gather();
    if (it->second) it->second->advance(true, true);
    pending_.erase(it);
  }

  [[noreturn]] void abort(int code) noexcept override {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

 private:
  template <class T>
  std::size_t start(std::span<T> data) {
    const std::size_t handle = next_handle_++;
    pending_.emplace(handle, std::make_unique<detail::RankOrderSum<T>>(data, scatter_, gather_, rank_, size_));
    return handle;
  }

  int rank_ = 0, size_ = 1;
  MPI_Comm scatter_ = MPI_COMM_NULL, gather_ = MPI_COMM_NULL;  // the two halves of every sum
  std::map<std::size_t, std::unique_ptr<detail::PendingSum>> pending_;  // by handle, in start order
  std::size_t next_handle_ = 0;
};

}  // namespace odyssey
