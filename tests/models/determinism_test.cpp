// Determinism of the full ResNet-18 (width 64, 32x32): a few training steps at a small batch
// give bitwise identical weights, momentum and running statistics with 1, 2, 3, 16 and 64
// threads (oversubscribed on a small machine, as a server's arena would be) and across runs
// with the same seed; another seed gives other weights.
#define BOOST_TEST_MODULE determinism
#include <boost/test/unit_test.hpp>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>
import odyssey;

using namespace odyssey;
using Net = models::ResNet18<float, 3, 32, 32, 10>;

namespace {

/// Every float of the model's state and the optimizer's momentum after `steps` steps.
std::vector<float> run(std::uint64_t seed, std::size_t threads, std::size_t steps = 3, std::size_t batch = 6) {
  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  auto net = std::make_unique<Net>(seed);
  Sgd<float> sgd(net->parameters(), SgdOptions{0.9, 5e-4, true, false});
  SoftmaxCrossEntropy<float, 10> loss(0.1);
  Context<float> ctx;
  Activation<float, Shape<3, 32, 32>> x(batch);
  Activation<float, Shape<10>> dlogits;
  std::vector<std::int32_t> labels(batch);
  Rng data(seed + 100);
  for (std::size_t s = 0; s < steps; ++s) {
    fill_normal(x.span(), 0.0, 1.0, data);
    for (auto& l : labels) l = std::int32_t(data.below(10));
    loss.forward(net->forward(x, ctx), labels);
    loss.backward(dlogits);
    net->backward(dlogits, nullptr, ctx);
    sgd.step(0.05);
  }
  std::vector<float> out;
  for (const auto& e : net->state())
    if (!e.counter) out.insert(out.end(), e.value.begin(), e.value.end());
  for (const auto& e : sgd.state()) out.insert(out.end(), e.value.begin(), e.value.end());
  return out;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

BOOST_AUTO_TEST_CASE(any_thread_count_and_repeated_runs_agree_bitwise) {
  const auto one = run(7, 1);
  BOOST_TEST(one.size() > 11'000'000u);
  for (std::size_t threads : {2, 3, 16, 64}) {
    // A task arena of that many threads, whatever the machine's core count.
    tbb::task_arena arena{int(threads)};
    std::vector<float> many;
    arena.execute([&] { many = run(7, threads); });
    BOOST_TEST(bitwise_equal(one, many), threads << " threads give other weights than 1");
  }
  const auto again = run(7, 2);
  BOOST_TEST(bitwise_equal(one, again));
  const auto other = run(8, 2);
  BOOST_TEST(!bitwise_equal(one, other));
}
