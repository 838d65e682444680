// The perf suites' shared main: pins the thread count with oneTBB, measures the peak and
// prints the context every table needs to be read.
#include "bench_main.h"

#include <odyssey/kernels/dispatch.h>
#include <tbb/global_control.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "machine.h"

namespace odyssey::perf {

std::size_t bench_threads() {
  static const std::size_t threads = [] {
    const char* env = std::getenv("ODYSSEY_THREADS");
    const long v = env ? std::strtol(env, nullptr, 10) : 2;
    return static_cast<std::size_t>(v > 0 ? v : 2);
  }();
  return threads;
}

double machine_peak_gflops() {
  static const double peak = measured_peak_gflops(bench_threads());
  return peak;
}

double machine_bandwidth_gbs() {
  static const double gbs = measured_bandwidth_gbs(bench_threads());
  return gbs;
}

void report_flops(benchmark::State& state, double flops) {
  const double total = flops * double(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(total / 1e9, benchmark::Counter::kIsRate);
  state.counters["%design"] =
      benchmark::Counter(total / 1e9 / kDesignPeakGflops * 100, benchmark::Counter::kIsRate);
  state.counters["%peak"] =
      benchmark::Counter(total / 1e9 / machine_peak_gflops() * 100, benchmark::Counter::kIsRate);
}

void report_bytes(benchmark::State& state, double bytes) {
  const double total = bytes * double(state.iterations());
  state.counters["GB/s"] = benchmark::Counter(total / 1e9, benchmark::Counter::kIsRate);
  state.counters["%design"] =
      benchmark::Counter(total / 1e9 / kDesignBandwidthGBs * 100, benchmark::Counter::kIsRate);
  state.counters["%bandwidth"] =
      benchmark::Counter(total / 1e9 / machine_bandwidth_gbs() * 100, benchmark::Counter::kIsRate);
}

int run_benchmarks(int argc, char** argv, const char* suite) {
  tbb::global_control threads(tbb::global_control::max_allowed_parallelism, bench_threads());
  // ODYSSEY_TARGET=AVX2 (say) runs the kernels, and the peak measurement, on that target.
  if (const char* target = std::getenv("ODYSSEY_TARGET"); target && *target) odyssey::kernels::use_target(target);
  const double ghz = measured_clock_ghz(bench_threads());
  std::printf("%s: %s, SIMD target %s, %zu threads, fp32 peak measured %.0f GFLOP/s (DESIGN.md: %.0f; "
              "%.1f FLOP per cycle per thread at the %.2f GHz a dependent-add chain measures), "
              "memory bandwidth measured %.1f GB/s (DESIGN.md: %.0f)\n",
              suite, cpu_name().c_str(), odyssey::kernels::active_target().c_str(), bench_threads(),
              machine_peak_gflops(), kDesignPeakGflops,
              ghz > 0 ? machine_peak_gflops() / double(bench_threads()) / ghz : 0.0, ghz, machine_bandwidth_gbs(),
              kDesignBandwidthGBs);
  benchmark::AddCustomContext("cpu", cpu_name());
  benchmark::AddCustomContext("simd_target", odyssey::kernels::active_target());
  benchmark::AddCustomContext("peak_gflops", std::to_string(machine_peak_gflops()));
  benchmark::AddCustomContext("clock_ghz", std::to_string(ghz));
  benchmark::AddCustomContext("bandwidth_gbs", std::to_string(machine_bandwidth_gbs()));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace odyssey::perf
