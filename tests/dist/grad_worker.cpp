// One data-parallel training step against the single-process step over the same batch, run
// under `mpirun -np N` by mpi_test.sh. Every rank takes its shard of a batch of 24 augmented
// images and runs TrainStep with the MPI communicator (synchronised batch norm, the loss
// over the global batch, gradients summed in rank order); rank 0 also runs the step of one
// process over the whole batch. It prints the largest differences of the gradients (relative
// to each tensor's largest value), of the batch norms' running statistics and of the loss,
// and fails (exit 1) when one exceeds its tolerance:
//   grad_worker [--local-bn]
// --local-bn is the control: batch norm normalises each shard on its own statistics (no
// synchronisation), which must fail the same check.
//   grad_worker --checksum
// checks the per-epoch state comparison: equal models pass, and when the last rank's model
// differs in one value every rank stops with the message naming it.
//   grad_worker --steps K
// trains K steps (SGD, momentum 0.9, lr 0.01) sharded and whole, and as a yardstick whole
// again with each batch's images in reverse order (the same math, other float summation
// orders): it prints each step's losses and the final weights' relative L2 distances from
// whole. Float rounding differences grow in training; this shows how fast, and that the
// shards' grow no faster than another order's.
//   grad_worker --sum-order
// checks the communicator under timing that differs by rank: several sums in flight, blocking
// allgathers between them, and odd ranks pausing in progress() so that their sums' halves
// complete at other moments than the even ranks'. Every sum must equal the rank-order sum
// computed locally, bitwise, on every rank.
#include <chrono>
#include <thread>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>
import odyssey;
import odyssey.mpi;
import odyssey.testing;

using namespace odyssey;
using Net = models::ResNet18<float, 1, 8, 8, 10, 4>;

namespace {

/// An optimizer that only records the gradients (and zeroes them, as an update does).
struct Capture final : Optimizer<float> {
  std::vector<StateEntry<float>> params;
  std::vector<std::vector<float>> grads;
  explicit Capture(std::vector<StateEntry<float>> p) : params(std::move(p)) {}
  void step(double) override {
    grads.clear();
    for (auto& p : params) {
      grads.emplace_back(p.grad.begin(), p.grad.end());
      std::fill(p.grad.begin(), p.grad.end(), 0.0f);
    }
  }
  std::vector<StateEntry<float>> state() override { return {}; }
};

/// The largest |a - b| of each pair of tensors over the largest |b| of that tensor.
double worst(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  double w = 0;
  for (std::size_t t = 0; t < a.size(); ++t) {
    double scale = 0, diff = 0;
    for (std::size_t i = 0; i < a[t].size(); ++i) {
      scale = std::max(scale, std::abs(double(b[t][i])));
      diff = std::max(diff, std::abs(double(a[t][i]) - double(b[t][i])));
    }
    if (scale > 0) w = std::max(w, diff / scale);
  }
  return w;
}

std::vector<std::vector<float>> running_stats(Net& net) {
  std::vector<std::vector<float>> out;
  for (const auto& e : state(net))
    if (e.kind == StateKind::running_mean || e.kind == StateKind::running_var) out.emplace_back(e.value.begin(), e.value.end());
  return out;
}

struct Result {
  double loss = 0;
  std::size_t correct = 0;
  std::size_t buckets = 0, early = 0;  // of the gradient exchange: all, started during backward
  std::vector<std::vector<float>> grads, stats;
};

Result one_step(Communicator* comm, std::size_t shard, std::size_t shards, bool local_bn) {
  static const Dataset data = testing::synthetic_dataset(48, 7);
  auto net = std::make_unique<Net>(3);
  Capture capture(parameters(*net));
  LoaderOptions o{24, true, true, 9};
  o.shard = shard;
  o.shards = shards;
  BatchLoader loader(data, o);
  loader.start_epoch(1);
  Batch batch;
  loader.next(batch);
  TrainStep<Net> step(0.1, 5, comm);
  if (local_bn) step.context().comm = nullptr;
  const LossStats st = step.run(*net, capture, batch, 0.1, 0);
  const auto* x = step.exchange();
  return {st.loss, st.correct, x ? x->buckets() : 0, x ? x->started_early() : 0, capture.grads, running_stats(*net)};
}

std::vector<float> flat(Net& net) {
  std::vector<float> out;
  for (const auto& e : parameters(net)) out.insert(out.end(), e.value.begin(), e.value.end());
  return out;
}

double distance(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, n = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    d += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
    n += double(b[i]) * double(b[i]);
  }
  return std::sqrt(d / n);
}

/// The batch's images (and labels) in reverse order.
void reverse(Batch& b) {
  const std::size_t per = b.pixels.size() / b.size;
  for (std::size_t i = 0, j = b.size - 1; i < j; ++i, --j) {
    std::swap_ranges(b.pixels.begin() + std::ptrdiff_t(i * per), b.pixels.begin() + std::ptrdiff_t((i + 1) * per),
                     b.pixels.begin() + std::ptrdiff_t(j * per));
    std::swap(b.labels[i], b.labels[j]);
  }
}

/// K steps from the seed-3 model (each batch reversed when `reversed`); the losses and the
/// final parameters.
std::pair<std::vector<double>, std::vector<float>> train_steps(Communicator* comm, std::size_t shard,
                                                               std::size_t shards, std::size_t k, bool reversed) {
  static const Dataset data = testing::synthetic_dataset(24 * 8, 7);
  auto net = std::make_unique<Net>(3);
  SgdOptions so;
  so.momentum = 0.9;
  Sgd<float> sgd(parameters(*net), so);
  LoaderOptions o{24, true, true, 9};
  o.shard = shard;
  o.shards = shards;
  BatchLoader loader(data, o);
  TrainStep<Net> step(0, 5, comm);
  std::vector<double> losses;
  Batch batch;
  for (std::size_t s = 0; s < k; ++s) {
    if (s % loader.batches_per_epoch() == 0) loader.start_epoch(s / loader.batches_per_epoch());
    loader.next(batch);
    if (reversed) reverse(batch);
    losses.push_back(step.run(*net, sgd, batch, 0.01, s).loss);
  }
  return {losses, flat(*net)};
}

/// Rank r's value at element i of sum s (the same formula on every rank).
float value(int r, std::size_t s, std::size_t i) {
  return float(std::sin(double(r * 7919 + int(s) * 104729 + int(i)) * 0.001)) * float(1 + r);
}

int sum_order(Communicator& world) {
  const int n = world.size(), rank = world.rank();
  constexpr std::size_t rounds = 20, per_round = 4;
  std::size_t wrong = 0;
  for (std::size_t round = 0; round < rounds; ++round) {
    std::vector<std::vector<float>> data(per_round);
    std::vector<std::size_t> handles;
    for (std::size_t k = 0; k < per_round; ++k) {
      const std::size_t s = round * per_round + k;
      data[k].resize(1000 + 997 * s % 50000);
      for (std::size_t i = 0; i < data[k].size(); ++i) data[k][i] = value(rank, s, i);
      handles.push_back(world.start_sum(data[k]));
      if (rank % 2 == 1) {
        // Give this sum's first half time to complete here, not on the even ranks.
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(3);
        while (std::chrono::steady_clock::now() < until) world.progress();
      } else {
        world.progress();
      }
      std::vector<double> mine{double(rank) + double(s)};
      std::vector<double> all(static_cast<std::size_t>(n));
      world.allgather(mine, all);
      for (int r = 0; r < n; ++r)
        if (all[std::size_t(r)] != double(r) + double(s)) ++wrong;
    }
    // Waited for in reverse order on even ranks, in order on odd ones.
    for (std::size_t k = 0; k < per_round; ++k) world.wait_sum(handles[rank % 2 == 0 ? per_round - 1 - k : k]);
    for (std::size_t k = 0; k < per_round; ++k) {
      const std::size_t s = round * per_round + k;
      for (std::size_t i = 0; i < data[k].size(); ++i) {
        float expect = value(0, s, i);
        for (int r = 1; r < n; ++r) expect += value(r, s, i);
        if (data[k][i] != expect) ++wrong;
      }
    }
  }
  std::printf("rank %d: %zu sums, %zu wrong values%s\n", rank, rounds * per_round, wrong,
              wrong ? "" : "; every sum bitwise the rank-order sum");
  return wrong ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  MpiSession session(argc, argv);
  MpiCommunicator world;
  const bool local_bn = argc > 1 && std::strcmp(argv[1], "--local-bn") == 0;
  const int n = world.size(), rank = world.rank();
  if (argc > 1 && std::strcmp(argv[1], "--checksum") == 0) {
    auto net = std::make_unique<Net>(3);
    detail::expect_same_state(world, state(*net), 1);  // the same model everywhere: no error
    if (rank == n - 1) parameters(*net).front().value[0] += 1e-6f;
    try {
      detail::expect_same_state(world, state(*net), 2);
      std::printf("rank %d: a differing rank went unnoticed\n", rank);
      return 1;
    } catch (const Error& e) {
      const bool named = std::string(e.what()).find("rank(s) " + std::to_string(n - 1) + " differs") != std::string::npos;
      if (rank == 0) std::printf("%s: %s\n", named ? "caught" : "WRONG MESSAGE", e.what());
      return named ? 0 : 1;
    }
  }
  if (argc > 1 && std::strcmp(argv[1], "--sum-order") == 0) return sum_order(world);
  if (argc > 2 && std::strcmp(argv[1], "--steps") == 0) {
    const std::size_t k = std::stoul(argv[2]);
    const auto sharded = train_steps(&world, std::size_t(rank), std::size_t(n), k, false);
    if (rank != 0) return 0;
    const auto whole = train_steps(nullptr, 0, 1, k, false), nudged = train_steps(nullptr, 0, 1, k, true);
    std::printf("step  whole      %d ranks   (diff)     reversed   (diff)\n", n);
    for (std::size_t s = 0; s < k; ++s)
      std::printf("%4zu  %.7f  %.7f  %.1e  %.7f  %.1e\n", s + 1, whole.first[s], sharded.first[s],
                  std::abs(sharded.first[s] - whole.first[s]), nudged.first[s], std::abs(nudged.first[s] - whole.first[s]));
    std::printf("weights: %d ranks %.3g from whole; reversed batches %.3g from whole (relative L2)\n", n,
                distance(sharded.second, whole.second), distance(nudged.second, whole.second));
    return 0;
  }
  const Result sharded = one_step(&world, std::size_t(rank), std::size_t(n), local_bn);
  if (rank != 0) return 0;
  const Result whole = one_step(nullptr, 0, 1, false);
  const double dg = worst(sharded.grads, whole.grads), ds = worst(sharded.stats, whole.stats);
  const double dl = std::abs(sharded.loss - whole.loss) / whole.loss;
  // Float sums over a shard and then over the ranks instead of over the whole batch: each
  // element moves by a few units of float's last place (6e-8) times the depth of the sums.
  const double tolerance = 1e-4;
  std::printf("%d ranks%s: gradients %.3g, running statistics %.3g, loss %.3g (relative); correct %zu and %zu; "
              "%zu of %zu gradient buckets sent during backward\n",
              n, local_bn ? " (batch norm per shard)" : "", dg, ds, dl, sharded.correct, whole.correct, sharded.early,
              sharded.buckets);
  // Every layer reports its gradients, so every bucket starts before backward returns.
  const bool overlapped = n == 1 || (sharded.buckets > 0 && sharded.early == sharded.buckets);
  if (!overlapped) std::printf("NOT OVERLAPPED\n");
  const bool same = overlapped && dg < tolerance && ds < tolerance && dl < tolerance && sharded.correct == whole.correct;
  std::printf("%s\n", same ? "SAME within 1e-4" : "DIFFERENT");
  return same ? 0 : 1;
}
