// What the perf suites compare against: DESIGN.md's reference peaks for this machine kind,
// and this machine's own fp32 FMA peak, measured at start-up with a loop of independent
// FMAs on the widest vectors the CPU has (Highway's best target).
#pragma once
#include <cstddef>
#include <string>

namespace odyssey::perf {

/// DESIGN.md: 2 threads on the development machine kind (Zen 4, 2 x 256-bit FMA pipes).
inline constexpr double kDesignPeakGflops = 229.0;
inline constexpr double kDesignBandwidthGBs = 45.0;

/// Measured fp32 FMA peak of this machine with `threads` threads, GFLOP/s, on the active
/// SIMD target (chains sized to its register file).
double measured_peak_gflops(std::size_t threads);

/// The CPU, for perf tables: "<model name> (family F, model M)" from /proc/cpuinfo.
std::string cpu_name();

}  // namespace odyssey::perf
