// The gradient check every backward pass is proven with, and tensor comparison that reports
// the worst element.
module;
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <span>
#include <string>
#include <vector>
export module odyssey.testing:gradcheck;

export namespace odyssey::testing {

struct GradCheckOptions {
  /// Step h of the central differences. They are Richardson-extrapolated from steps h and
  /// h/2, (4 D(h/2) - D(h)) / 3, which cancels the h^2 truncation term, so h can be large
  /// enough that rounding in the loss stays small. Make it smaller for functions with kinks
  /// (ReLU) near the point.
  double step = 1e-4;
  /// An element passes when |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|).
  double rtol = 1e-6;
  /// Absolute floor. It is raised to the rounding noise of the differences themselves,
  /// 32 * machine epsilon * |loss| / step, below which no numerical derivative is accurate.
  double atol = 1e-12;
};

struct GradCheckResult {
  bool passed = true;
  std::size_t checked = 0;
  std::size_t worst_index = 0;
  double worst_ratio = 0;     // |a - n| / (atol + rtol * max(|a|, |n|)); passes when <= 1
  double worst_relative = 0;  // |a - n| / max(|a|, |n|) at the worst element
  double analytic = 0;
  double numeric = 0;
  double atol = 0;            // the absolute floor used
  std::string what;

  [[nodiscard]] std::string report() const {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "%s: %s, %zu elements, worst at [%zu]: analytic %.12g numeric %.12g, relative "
                  "error %.3g (absolute floor %.3g)",
                  what.c_str(), passed ? "passed" : "FAILED", checked, worst_index, analytic,
                  numeric, worst_relative, atol);
    return buf;
  }
};

/// Compares `analytic`, the gradient of `loss()` with respect to `x`, with central
/// differences: x[i] is moved, `loss` re-evaluated, and x[i] restored. Checks the elements
/// in `indices`, or all of them when `indices` is empty.
GradCheckResult check_gradient(std::string what, std::span<double> x,
                               std::span<const double> analytic,
                               const std::function<double()>& loss,
                               const GradCheckOptions& opt = {},
                               std::span<const std::size_t> indices = {}) {
  GradCheckResult r;
  r.what = std::move(what);
  const double f0 = loss();
  r.atol = std::max(opt.atol, 32 * 2.220446049250313e-16 * std::abs(f0) / opt.step);
  auto diff = [&](std::size_t i, double h) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = loss();
    x[i] = saved - h;
    const double down = loss();
    x[i] = saved;
    return (up - down) / (2 * h);
  };
  auto check_one = [&](std::size_t i) {
    const double numeric = (4 * diff(i, opt.step / 2) - diff(i, opt.step)) / 3;
    const double a = analytic[i];
    const double scale = std::max(std::abs(a), std::abs(numeric));
    const double err = std::abs(a - numeric);
    double ratio = err / (r.atol + opt.rtol * scale);
    if (!std::isfinite(a) || !std::isfinite(numeric)) ratio = INFINITY;
    if (r.checked == 0 || ratio > r.worst_ratio) {
      r.worst_ratio = ratio;
      r.worst_index = i;
      r.worst_relative = scale > 0 ? err / scale : 0;
      r.analytic = a;
      r.numeric = numeric;
    }
    ++r.checked;
  };
  if (indices.empty()) {
    for (std::size_t i = 0; i < x.size(); ++i) check_one(i);
  } else {
    for (const std::size_t i : indices) check_one(i);
  }
  r.passed = r.worst_ratio <= 1.0;
  return r;
}

/// `count` distinct indices below n, always including the first and the last, chosen by a
/// fixed hash of `seed` (so a failing sample can be replayed).
std::vector<std::size_t> sample_indices(std::size_t n, std::size_t count, std::uint64_t seed = 1) {
  std::vector<std::size_t> out;
  if (n <= count) {
    for (std::size_t i = 0; i < n; ++i) out.push_back(i);
    return out;
  }
  out.push_back(0);
  out.push_back(n - 1);
  std::uint64_t s = seed;
  while (out.size() < count) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    const std::size_t i = static_cast<std::size_t>((s >> 33) % n);
    if (std::find(out.begin(), out.end(), i) == out.end()) out.push_back(i);
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// n values uniform in [lo, hi) from a fixed seed (a small LCG: tests need repeatable data,
/// not statistical quality).
std::vector<double> random_values(std::size_t n, std::uint64_t seed, double lo = -1, double hi = 1) {
  std::vector<double> v(n);
  std::uint64_t s = seed * 2862933555777941757ULL + 3037000493ULL;
  for (auto& e : v) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    e = lo + (hi - lo) * static_cast<double>(s >> 11) * 0x1.0p-53;
  }
  return v;
}

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

struct CompareResult {
  bool passed = true;
  std::size_t worst_index = 0;
  double worst_relative = 0;
  double actual = 0;
  double expected = 0;

  [[nodiscard]] std::string report() const {
    return std::string(passed ? "match" : "MISMATCH") + ": worst at [" +
           std::to_string(worst_index) + "] actual " + std::to_string(actual) + " expected " +
           std::to_string(expected) + " relative error " + std::to_string(worst_relative);
  }
};

/// Element-wise comparison; an element passes when |a - e| <= atol + rtol * |e|.
template <class A, class E>
CompareResult compare(std::span<const A> actual, std::span<const E> expected, double rtol,
                      double atol = 0) {
  CompareResult r;
  if (actual.size() != expected.size()) {
    r.passed = false;
    r.worst_index = std::min(actual.size(), expected.size());
    r.worst_relative = INFINITY;
    return r;
  }
  double worst_ratio = -1;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double a = static_cast<double>(actual[i]), e = static_cast<double>(expected[i]);
    const double diff = std::abs(a - e);
    double ratio = diff / (atol + rtol * std::abs(e));
    if (!(ratio == ratio)) ratio = INFINITY;  // NaN in either
    if (diff == 0) ratio = 0;
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      r.worst_index = i;
      r.worst_relative = e != 0 ? diff / std::abs(e) : diff;
      r.actual = a;
      r.expected = e;
    }
  }
  r.passed = worst_ratio <= 1.0;
  return r;
}

}  // namespace odyssey::testing
