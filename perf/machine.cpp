// Measures the fp32 FMA peak: each thread runs 16 independent accumulator chains (enough
// for two pipes of 4-cycle latency, with room to spare) on the best SIMD target.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "machine.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <chrono>
#include <thread>
#include <vector>

#include "machine.h"

HWY_BEFORE_NAMESPACE();
namespace odyssey::perf::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

double fma_loop(std::size_t iterations) {
  const hn::ScalableTag<float> d;
  hn::Vec<decltype(d)> acc[16];
  for (std::size_t i = 0; i < 16; ++i) acc[i] = hn::Set(d, 0.001f * float(i));
  const auto a = hn::Set(d, 0.9999f), b = hn::Set(d, 0.0001f);
  for (std::size_t it = 0; it < iterations; ++it) {
    HWY_UNROLL(16)
    for (std::size_t i = 0; i < 16; ++i) acc[i] = hn::MulAdd(acc[i], a, b);
  }
  auto s = acc[0];
  for (std::size_t i = 1; i < 16; ++i) s = hn::Add(s, acc[i]);
  return double(hn::GetLane(hn::SumOfLanes(d, s))) + 0.0 * double(hn::Lanes(d));
}
std::size_t lanes() { return hn::Lanes(hn::ScalableTag<float>()); }

}  // namespace odyssey::perf::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace odyssey::perf {
HWY_EXPORT(fma_loop);
HWY_EXPORT(lanes);

double measured_peak_gflops(std::size_t threads) {
  const std::size_t iterations = 50'000'000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (std::size_t t = 0; t < threads; ++t)
      pool.emplace_back([&] { volatile double sink = HWY_DYNAMIC_DISPATCH(fma_loop)(iterations); (void)sink; });
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double flops = double(threads) * double(iterations) * 16.0 * 2.0 *
                         double(HWY_DYNAMIC_DISPATCH(lanes)());
    best = std::max(best, flops / s / 1e9);
  }
  return best;
}
}  // namespace odyssey::perf
#endif
