// Measures the fp32 FMA peak: each thread runs independent accumulator chains of FMAs on the
// best SIMD target. Two FMA pipes of 4-cycle latency need 8 chains in flight; the count must
// also fit the target's register file with the two constants, or the loop spills and
// measures loads and stores instead: AVX2 and older have 16 vector registers (12 chains + 2
// constants), AVX-512 32 (24 chains). 16 chains on AVX2 (18 live vectors) spilled and read
// 104-114 GFLOP/s where 12 chains read 145-178 on the same Zen 3.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "machine.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "machine.h"

HWY_BEFORE_NAMESPACE();
namespace odyssey::perf::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET <= HWY_AVX3
constexpr std::size_t kChains = 24;  // of 32 registers
#else
constexpr std::size_t kChains = 12;  // of 16 registers
#endif

double fma_loop(std::size_t iterations) {
  const hn::ScalableTag<float> d;
  hn::Vec<decltype(d)> acc[kChains];
  for (std::size_t i = 0; i < kChains; ++i) acc[i] = hn::Set(d, 0.001f * float(i));
  const auto a = hn::Set(d, 0.9999f), b = hn::Set(d, 0.0001f);
  for (std::size_t it = 0; it < iterations; ++it) {
    HWY_UNROLL(24)
    for (std::size_t i = 0; i < kChains; ++i) acc[i] = hn::MulAdd(acc[i], a, b);
  }
  auto s = acc[0];
  for (std::size_t i = 1; i < kChains; ++i) s = hn::Add(s, acc[i]);
  return double(hn::GetLane(hn::SumOfLanes(d, s))) + 0.0 * double(hn::Lanes(d));
}
/// FLOPs of one fma_loop iteration on this target.
std::size_t flops_per_iteration() { return 2 * kChains * hn::Lanes(hn::ScalableTag<float>()); }

}  // namespace odyssey::perf::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace odyssey::perf {
HWY_EXPORT(fma_loop);
HWY_EXPORT(flops_per_iteration);

namespace {
/// Runs body(t) on `threads` threads at once; seconds from the first start to the last end.
template <class Body>
double timed_on_threads(std::size_t threads, const Body& body) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (std::size_t t = 0; t < threads; ++t) pool.emplace_back([&body, t] { body(t); });
  for (auto& th : pool) th.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

double measured_peak_gflops(std::size_t threads) {
  // 25.6 GFLOP per thread and repetition whatever the target: a fraction of a second.
  const std::size_t iterations = 25'600'000'000ull / HWY_DYNAMIC_DISPATCH(flops_per_iteration)();
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const double s = timed_on_threads(threads, [&](std::size_t) {
      volatile double sink = HWY_DYNAMIC_DISPATCH(fma_loop)(iterations);
      (void)sink;
    });
    const double flops = double(threads) * double(iterations) * double(HWY_DYNAMIC_DISPATCH(flops_per_iteration)());
    best = std::max(best, flops / s / 1e9);
  }
  return best;
}

double measured_clock_ghz(std::size_t threads) {
#if defined(__x86_64__)
  // 10 dependent adds per iteration, 20 M iterations: 200 M cycles, ~0.06 s at 3.5 GHz. The
  // adds take a register, not an immediate: this Xeon (family 6, model 167) folds chains of
  // `add $1, reg` at rename and ran them at 19.7 "GHz"; `add reg, reg` and 3-cycle `imul`
  // chains both measure 3.6 GHz.
  constexpr std::uint64_t kIterations = 20'000'000, kAddsPerIteration = 10;
  auto chain = [](std::size_t) {
    std::uint64_t v = 1;
    for (std::uint64_t i = 0; i < kIterations; ++i)
      asm volatile(
          "add %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\t"
          "add %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\tadd %0, %0\n\tadd %0, %0"
          : "+r"(v));
    volatile std::uint64_t sink = v;
    (void)sink;
  };
  double best = 0;
  for (int rep = 0; rep < 5; ++rep)
    best = std::max(best, double(kIterations * kAddsPerIteration) / timed_on_threads(threads, chain) / 1e9);
  return best;
#else
  (void)threads;
  return 0;
#endif
}

double measured_bandwidth_gbs(std::size_t threads) {
  // 3 arrays of 64 MiB: several times any L3 a 2-core slice of these hosts sees.
  constexpr std::size_t kFloats = std::size_t{16} << 20;
  const std::unique_ptr<float[]> a(new float[kFloats]), b(new float[kFloats]), c(new float[kFloats]);
  const std::size_t part = kFloats / threads;
  auto range = [&](std::size_t t) { return std::pair{t * part, t + 1 == threads ? kFloats : (t + 1) * part}; };
  timed_on_threads(threads, [&](std::size_t t) {  // each thread touches its own pages first
    const auto [lo, hi] = range(t);
    std::fill(a.get() + lo, a.get() + hi, 0.0f);
    std::fill(b.get() + lo, b.get() + hi, 1.0f);
    std::fill(c.get() + lo, c.get() + hi, 2.0f);
  });
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const double s = timed_on_threads(threads, [&](std::size_t t) {
      const auto [lo, hi] = range(t);
      float* HWY_RESTRICT pa = a.get();
      const float* HWY_RESTRICT pb = b.get();
      const float* HWY_RESTRICT pc = c.get();
      for (std::size_t i = lo; i < hi; ++i) pa[i] = pb[i] + pc[i];
    });
    best = std::max(best, 3.0 * sizeof(float) * double(kFloats) / s / 1e9);
  }
  if (a[kFloats / 2] != 3.0f) return 0;  // keeps the loop's result live
  return best;
}

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, name = "unknown CPU", family, model;
  auto value = [](const std::string& l) {
    const auto colon = l.find(':');
    return colon == std::string::npos ? std::string() : l.substr(l.find_first_not_of(" \t", colon + 1));
  };
  while (std::getline(in, line) && !line.empty()) {
    if (line.rfind("model name", 0) == 0) name = value(line);
    else if (line.rfind("cpu family", 0) == 0) family = value(line);
    else if (line.rfind("model", 0) == 0 && line.find("name") == std::string::npos) model = value(line);
  }
  return name + " (family " + family + ", model " + model + ")";
}
}  // namespace odyssey::perf
#endif
