// Helpers shared by the kernel translation units that do not depend on the SIMD target:
// rounding, and the fixed-chunk parallel loops that keep results independent of the
// thread count.
#pragma once
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <cstddef>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

// ThreadSanitizer cannot see the synchronisation inside libtbb (Debian's is not
// instrumented), so it would report the hand-over of every parallel loop's captures between
// the calling thread and the workers as races. These annotations state the happens-before
// edges TBB guarantees: the call starts before any item, every item ends before the call
// returns.
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ODYSSEY_TSAN 1
#endif
#endif
#ifdef ODYSSEY_TSAN
extern "C" void AnnotateHappensBefore(const char* file, int line, const volatile void* addr);
extern "C" void AnnotateHappensAfter(const char* file, int line, const volatile void* addr);
#define ODYSSEY_HAPPENS_BEFORE(addr) AnnotateHappensBefore(__FILE__, __LINE__, addr)
#define ODYSSEY_HAPPENS_AFTER(addr) AnnotateHappensAfter(__FILE__, __LINE__, addr)
#else
#define ODYSSEY_HAPPENS_BEFORE(addr) (void)(addr)
#define ODYSSEY_HAPPENS_AFTER(addr) (void)(addr)
#endif

namespace odyssey::kernels::detail {

constexpr std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }
constexpr std::size_t round_up(std::size_t a, std::size_t b) { return ceil_div(a, b) * b; }

/// Whether the processor is AMD's (cpuid vendor "AuthenticAMD"), read once. For tuning
/// choices that Highway's targets cannot tell apart and that leave the arithmetic unchanged.
inline bool amd_cpu() {
  static const bool amd = [] {
#if defined(__x86_64__) || defined(__i386__)
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return false;
    return ebx == 0x68747541u && edx == 0x69746e65u && ecx == 0x444d4163u;  // "Auth" "enti" "cAMD"
#else
    return false;
#endif
  }();
  return amd;
}

/// Threads of the task arena the caller runs in (the most that can run items at once).
inline std::size_t arena_threads() {
  const int n = tbb::this_task_arena::max_concurrency();
  return n > 0 ? static_cast<std::size_t>(n) : 1;
}

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
  int start = 0, finish = 0;  // addresses for the sanitizer annotations
  ODYSSEY_HAPPENS_BEFORE(&start);
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, count, 1),
                    [&](const tbb::blocked_range<std::size_t>& r) {
                      ODYSSEY_HAPPENS_AFTER(&start);
                      for (std::size_t i = r.begin(); i != r.end(); ++i) body(i);
                      ODYSSEY_HAPPENS_BEFORE(&finish);
                    });
  ODYSSEY_HAPPENS_AFTER(&finish);
}

/// db[k] += sum over m < M of dy[m * K + k], summed in double in order (per output channel).
template <class T>
void add_bias_gradient(const T* dy, std::size_t M, std::size_t K, T* db) {
  parallel_items(ceil_div(K, 16), [&](std::size_t kb) {
    for (std::size_t k = kb * 16; k < K && k < kb * 16 + 16; ++k) {
      double sum = 0;
      for (std::size_t m = 0; m < M; ++m) sum += dy[m * K + k];
      db[k] += static_cast<T>(sum);
    }
  });
}

}  // namespace odyssey::kernels::detail
