// The gradient-check helper itself: it must pass a correct analytic gradient and fail one
// that is wrong by a factor 1.001 in a single element, or in all of them.
#define BOOST_TEST_MODULE gradcheck_helper
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstddef>
#include <vector>
import odyssey.testing;

namespace ot = odyssey::testing;

namespace {
// f(x) = sum_i sin(x_i) * x_{i+1}^2 + exp(0.1 x_0) couples neighbours, so a wrong index
// mapping shows up too.
double f(const std::vector<double>& x) {
  double s = std::exp(0.1 * x[0]);
  for (std::size_t i = 0; i + 1 < x.size(); ++i) s += std::sin(x[i]) * x[i + 1] * x[i + 1];
  return s;
}
std::vector<double> grad_f(const std::vector<double>& x) {
  std::vector<double> g(x.size(), 0.0);
  g[0] += 0.1 * std::exp(0.1 * x[0]);
  for (std::size_t i = 0; i + 1 < x.size(); ++i) {
    g[i] += std::cos(x[i]) * x[i + 1] * x[i + 1];
    g[i + 1] += 2 * std::sin(x[i]) * x[i + 1];
  }
  return g;
}
std::vector<double> point() { return {0.3, -1.2, 0.7, 2.1, -0.4, 1.5, 0.9}; }
}  // namespace

BOOST_AUTO_TEST_CASE(passes_a_correct_gradient) {
  auto x = point();
  const auto g = grad_f(x);
  const auto r = ot::check_gradient("f", x, g, [&] { return f(x); });
  BOOST_TEST(r.passed, r.report());
  BOOST_TEST(r.checked == x.size());
  BOOST_TEST(r.worst_relative < 1e-8, r.report());
  BOOST_TEST(x == point());  // every element restored
}

BOOST_AUTO_TEST_CASE(fails_when_one_element_is_off_by_1_001) {
  auto x = point();
  auto g = grad_f(x);
  g[3] *= 1.001;
  const auto r = ot::check_gradient("f", x, g, [&] { return f(x); });
  BOOST_TEST(!r.passed, r.report());
  BOOST_TEST(r.worst_index == 3u);
  BOOST_TEST(r.worst_relative > 0.9e-3);
  BOOST_TEST(r.worst_relative < 1.1e-3);
}

BOOST_AUTO_TEST_CASE(fails_when_every_element_is_off_by_1_001) {
  auto x = point();
  auto g = grad_f(x);
  for (auto& v : g) v *= 1.001;
  BOOST_TEST(!ot::check_gradient("f", x, g, [&] { return f(x); }).passed);
}

BOOST_AUTO_TEST_CASE(fails_on_a_swapped_pair_and_on_nan) {
  auto x = point();
  auto g = grad_f(x);
  std::swap(g[1], g[2]);
  BOOST_TEST(!ot::check_gradient("f", x, g, [&] { return f(x); }).passed);
  g = grad_f(x);
  g[5] = NAN;
  const auto r = ot::check_gradient("f", x, g, [&] { return f(x); });
  BOOST_TEST(!r.passed);
  BOOST_TEST(r.worst_index == 5u);
}

BOOST_AUTO_TEST_CASE(checks_only_the_sampled_indices) {
  auto x = point();
  auto g = grad_f(x);
  g[2] *= 1.001;
  const std::vector<std::size_t> idx{0, 4, 6};
  const auto r = ot::check_gradient("f", x, g, [&] { return f(x); }, {}, idx);
  BOOST_TEST(r.passed, r.report());  // element 2 is not in the sample
  BOOST_TEST(r.checked == 3u);
  const auto s = ot::sample_indices(1000, 10, 7);
  BOOST_TEST(s.size() == 10u);
  BOOST_TEST(s.front() == 0u);
  BOOST_TEST(s.back() == 999u);
}

BOOST_AUTO_TEST_CASE(compare_reports_the_worst_element) {
  const std::vector<float> a{1.0f, 2.0f, 3.0001f};
  const std::vector<double> e{1.0, 2.0, 3.0};
  auto r = ot::compare<float, double>(a, e, 1e-6);
  BOOST_TEST(!r.passed);
  BOOST_TEST(r.worst_index == 2u);
  r = ot::compare<float, double>(a, e, 1e-4);
  BOOST_TEST(r.passed, r.report());
}
