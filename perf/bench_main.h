// Shared by the perf suites: thread count, the machine's peak, and counters that report a
// kernel's rate as GFLOP/s or GB/s and as a percentage of the machine's limits.
#pragma once
#include <benchmark/benchmark.h>

#include <cstddef>

namespace odyssey::perf {

/// Threads the suites run with: ODYSSEY_THREADS, default 2 (the machine kind's cores).
std::size_t bench_threads();

/// This machine's measured fp32 peak with bench_threads() threads (measured once).
double machine_peak_gflops();

/// This machine's measured memory bandwidth with bench_threads() threads (measured once).
double machine_bandwidth_gbs();

/// Sets GFLOP/s, % of DESIGN.md's 229 GFLOP/s and % of the measured peak.
void report_flops(benchmark::State& state, double flops_per_iteration);

/// Sets GB/s, % of DESIGN.md's 45 GB/s and % of the measured bandwidth.
void report_bytes(benchmark::State& state, double bytes_per_iteration);

/// Runs the registered benchmarks after printing the SIMD target, threads and peaks.
int run_benchmarks(int argc, char** argv, const char* suite);

}  // namespace odyssey::perf
