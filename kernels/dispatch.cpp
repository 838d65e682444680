// Run-time control of Highway's dynamic dispatch: listing, pinning and reporting targets.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "dispatch.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace odyssey::kernels::HWY_NAMESPACE {

const char* compiled_target_name() { return hwy::TargetName(HWY_TARGET); }

}  // namespace odyssey::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <stdexcept>

#include "odyssey/kernels/dispatch.h"

namespace odyssey::kernels {

HWY_EXPORT(compiled_target_name);

std::vector<std::string> available_targets() {
  hwy::SetSupportedTargetsForTest(0);  // list what the CPU has, not a pinned subset
  std::vector<std::string> names;
  for (const int64_t t : hwy::SupportedAndGeneratedTargets()) names.emplace_back(hwy::TargetName(t));
  return names;
}

void use_target(std::string_view name) {
  hwy::SetSupportedTargetsForTest(0);
  std::string known;
  for (const int64_t t : hwy::SupportedAndGeneratedTargets()) {
    if (name == hwy::TargetName(t)) {
      hwy::SetSupportedTargetsForTest(t);
      return;
    }
    known += known.empty() ? "" : ", ";
    known += hwy::TargetName(t);
  }
  throw std::invalid_argument("SIMD target '" + std::string(name) +
                              "' is not available on this machine; available: " + known);
}

void use_best_target() { hwy::SetSupportedTargetsForTest(0); }

std::string active_target() { return HWY_DYNAMIC_DISPATCH(compiled_target_name)(); }

}  // namespace odyssey::kernels
#endif  // HWY_ONCE
