// Helpers shared by the kernel translation units that do not depend on the SIMD target:
// rounding, and the fixed-chunk parallel loops that keep results independent of the
// thread count.
#pragma once
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cstddef>

namespace odyssey::kernels::detail {

constexpr std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }
constexpr std::size_t round_up(std::size_t a, std::size_t b) { return ceil_div(a, b) * b; }

/// Calls body(i) for every i in [0, count), in parallel, one task per index. Work is split
/// into exactly the given items whatever the thread count, so anything an item computes
/// does not depend on how many threads run.
template <class Body>
void parallel_items(std::size_t count, const Body& body) {
  if (count == 0) return;
  if (count == 1) {
    body(std::size_t{0});
    return;
  }
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, count, 1),
                    [&](const tbb::blocked_range<std::size_t>& r) {
                      for (std::size_t i = r.begin(); i != r.end(); ++i) body(i);
                    });
}

}  // namespace odyssey::kernels::detail
