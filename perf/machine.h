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

/// Core clock in GHz while `threads` threads run, from chains of dependent register-register
/// integer adds (one cycle each on every x86 core): an independent check of measured_peak_gflops, whose
/// FLOPs per cycle per thread must come out as the core's FMA width (32 for two 256-bit FMA
/// pipes, 64 for two 512-bit ones); a lower figure means the peak loop is not at the limit.
/// 0 where no such loop is written (not x86-64).
double measured_clock_ghz(std::size_t threads);

/// Memory bandwidth with `threads` threads, GB/s: STREAM's add (a = b + c) over arrays far
/// larger than the caches, bytes read and written counted once (as the kernels' floors are).
double measured_bandwidth_gbs(std::size_t threads);

/// The CPU, for perf tables: "<model name> (family F, model M)" from /proc/cpuinfo.
std::string cpu_name();

}  // namespace odyssey::perf
