// Which SIMD target the kernels run on. Every kernel is compiled for each Highway target
// odyssey builds (EMU128 as the portable fallback, AVX2, AVX3 = AVX-512) and dispatched at
// run time to the best one the CPU supports; tests pin each target in turn.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace odyssey::kernels {

/// Targets compiled in and supported by this CPU, best first (e.g. {"AVX3", "AVX2", "EMU128"}).
std::vector<std::string> available_targets();

/// Restricts dispatch to `name` (one of available_targets()); throws std::invalid_argument
/// naming the available targets otherwise.
void use_target(std::string_view name);

/// Returns dispatch to the best available target.
void use_best_target();

/// The target the next kernel call runs on.
std::string active_target();

}  // namespace odyssey::kernels
