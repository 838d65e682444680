// ReLU, add, add+ReLU, pooling (average and max), the flatten permutation, linear, softmax
// cross-entropy, dropout, SGD and AdamW: against double references on every SIMD target,
// float against double, gradient checks in double, and determinism across thread counts.
#define BOOST_TEST_MODULE ops
#include <boost/test/unit_test.hpp>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>
import odyssey;
import odyssey.testing;

namespace ok = odyssey::kernels;
namespace ot = odyssey::testing;
using Vec = std::vector<double>;

namespace {

double rms(const Vec& v) {
  double s = 0;
  for (double e : v) s += e * e;
  return std::sqrt(s / double(v.size())) + 1e-30;
}
template <class T>
Vec dbl(const std::vector<T>& v) {
  return Vec(v.begin(), v.end());
}
// Relative tolerance rtol, with an absolute floor of rtol times the typical magnitude
// (`scale`, default the RMS of the expected values).
void expect_close(const Vec& actual, const Vec& expected, double rtol, const std::string& what,
                  double scale = 0) {
  const auto r = ot::compare<double, double>(actual, expected, rtol, rtol * (scale > 0 ? scale : rms(expected)));
  BOOST_TEST(r.passed, what << ": " << r.report());
}
// Runs f(tolerance, name) with every target pinned, for float and double.
template <class F>
void on_every_target(F&& f) {
  for (const auto& t : ok::available_targets()) {
    ok::use_target(t);
    f.template operator()<double>(1e-12, t + " f64");
    f.template operator()<float>(1e-5, t + " f32");
  }
  ok::use_best_target();
}

}  // namespace

BOOST_AUTO_TEST_CASE(elementwise_ops_match_reference) {
  // Sizes around vector and block boundaries: 1, 15, 17, 1000, 16384 + 3.
  for (std::size_t n : {1u, 15u, 17u, 1000u, 16387u}) {
    const Vec a = ot::random_values(n, n), b = ot::random_values(n, n + 1), dy = ot::random_values(n, n + 2);
    Vec relu(n), add(n), add_relu(n), drelu(n), acc(n);
    for (std::size_t i = 0; i < n; ++i) {
      relu[i] = std::max(a[i], 0.0);
      add[i] = a[i] + b[i];
      add_relu[i] = std::max(a[i] + b[i], 0.0);
      drelu[i] = relu[i] > 0 ? dy[i] : 0.0;
      acc[i] = b[i] + a[i];
    }
    on_every_target([&]<class T>(double tol, const std::string& where) {
      const auto at = ot::cast<T>(a), bt = ot::cast<T>(b), dyt = ot::cast<T>(dy);
      std::vector<T> y(n), y2(n), y3(n), dx(n), accum = ot::cast<T>(b);
      ok::relu_forward(n, at.data(), y.data());
      ok::add_forward(n, at.data(), bt.data(), y2.data());
      ok::add_relu_forward(n, at.data(), bt.data(), y3.data());
      ok::relu_backward(n, y.data(), dyt.data(), dx.data());
      ok::accumulate(n, at.data(), accum.data());
      const std::string w = where + " n" + std::to_string(n);
      expect_close(dbl(y), relu, tol, w + " relu");
      expect_close(dbl(y2), add, tol, w + " add");
      expect_close(dbl(y3), add_relu, tol, w + " add_relu");
      expect_close(dbl(dx), drelu, tol, w + " relu_backward");
      expect_close(dbl(accum), acc, tol, w + " accumulate");
    });
  }
}

BOOST_AUTO_TEST_CASE(relu_backward_in_place) {
  const Vec y{0.0, 1.0, -0.0, 2.0, 0.5}, dy{1.0, 2.0, 3.0, 4.0, 5.0};
  Vec g = dy;
  ok::relu_backward(g.size(), y.data(), g.data(), g.data());
  BOOST_TEST(g == (Vec{0.0, 2.0, 0.0, 4.0, 5.0}), boost::test_tools::per_element());
}

struct PoolCase {
  std::size_t n, c, h, w, k, s;
};

BOOST_AUTO_TEST_CASE(pooling_matches_reference) {
  const std::vector<PoolCase> cases = {{1, 1, 1, 1, 1, 1}, {2, 3, 5, 7, 2, 2}, {3, 17, 8, 8, 3, 2},
                                       {2, 5, 7, 5, 3, 1}, {1, 64, 4, 4, 4, 4}};
  for (const auto& pc : cases) {
    const ok::Pool2dShape s{pc.n, pc.c, pc.h, pc.w, pc.k, pc.s};
    const Vec x = ot::random_values(pc.n * pc.h * pc.w * pc.c, 3);
    const Vec dy = ot::random_values(pc.n * s.p() * s.q() * pc.c, 4);
    const Vec gdy = ot::random_values(pc.n * pc.c, 5);
    const Vec y_ref = ot::ref::avgpool_forward(pc.n, pc.c, pc.h, pc.w, pc.k, pc.s, x);
    const Vec dx_ref = ot::ref::avgpool_backward(pc.n, pc.c, pc.h, pc.w, pc.k, pc.s, dy);
    on_every_target([&]<class T>(double tol, const std::string& where) {
      const auto xt = ot::cast<T>(x), dyt = ot::cast<T>(dy), gdyt = ot::cast<T>(gdy);
      std::vector<T> y(y_ref.size()), dx(x.size()), gy(pc.n * pc.c), gdx(x.size());
      ok::avgpool2d_forward(s, xt.data(), y.data());
      ok::avgpool2d_backward(s, dyt.data(), dx.data());
      ok::global_avgpool_forward(pc.n, pc.h * pc.w, pc.c, xt.data(), gy.data());
      ok::global_avgpool_backward(pc.n, pc.h * pc.w, pc.c, gdyt.data(), gdx.data());
      const std::string w = where + " n" + std::to_string(pc.n) + " c" + std::to_string(pc.c) + " " +
                            std::to_string(pc.h) + "x" + std::to_string(pc.w) + " k" + std::to_string(pc.k) +
                            " s" + std::to_string(pc.s);
      expect_close(dbl(y), y_ref, tol, w + " avgpool forward");
      expect_close(dbl(dx), dx_ref, tol, w + " avgpool backward");
      Vec gmean(pc.n * pc.c, 0.0), gdx_ref(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) {
        const std::size_t n = i / (pc.h * pc.w * pc.c), c = i % pc.c;
        gmean[n * pc.c + c] += x[i] / double(pc.h * pc.w);
        gdx_ref[i] = gdy[n * pc.c + c] / double(pc.h * pc.w);
      }
      expect_close(dbl(gy), gmean, tol, w + " global forward");
      expect_close(dbl(gdx), gdx_ref, tol, w + " global backward");
    });
  }
}

BOOST_AUTO_TEST_CASE(pooling_gradient_check) {
  for (const PoolCase pc : {PoolCase{2, 3, 5, 7, 3, 2}, PoolCase{1, 5, 7, 5, 2, 1}}) {
    const ok::Pool2dShape s{pc.n, pc.c, pc.h, pc.w, pc.k, pc.s};
    Vec x = ot::random_values(pc.n * pc.h * pc.w * pc.c, 8);
    const Vec R = ot::random_values(pc.n * s.p() * s.q() * pc.c, 9), Rg = ot::random_values(pc.n * pc.c, 10);
    Vec y(R.size()), gy(Rg.size());
    auto loss = [&] {
      ok::avgpool2d_forward(s, x.data(), y.data());
      ok::global_avgpool_forward(pc.n, pc.h * pc.w, pc.c, x.data(), gy.data());
      double l = 0;
      for (std::size_t i = 0; i < y.size(); ++i) l += R[i] * y[i];
      for (std::size_t i = 0; i < gy.size(); ++i) l += Rg[i] * gy[i];
      return l;
    };
    Vec dx(x.size()), gdx(x.size());
    ok::avgpool2d_backward(s, R.data(), dx.data());
    ok::global_avgpool_backward(pc.n, pc.h * pc.w, pc.c, Rg.data(), gdx.data());
    for (std::size_t i = 0; i < dx.size(); ++i) dx[i] += gdx[i];
    const auto r = ot::check_gradient("pooling dx", x, dx, loss);
    BOOST_TEST(r.passed, r.report());
  }
}

struct MaxPoolCase {
  std::size_t n, c, h, w, k, s, pad;
};

std::string describe(const MaxPoolCase& m) {
  return "n" + std::to_string(m.n) + " c" + std::to_string(m.c) + " " + std::to_string(m.h) + "x" +
         std::to_string(m.w) + " k" + std::to_string(m.k) + " s" + std::to_string(m.s) + " pad" + std::to_string(m.pad);
}

BOOST_AUTO_TEST_CASE(maxpool_matches_reference) {
  // Channel counts 3, 5, 17 (not multiples of any vector width), padding 0 and 1,
  // overlapping (k3 s2, k3 s1) and non-overlapping (k2 s2) windows, odd extents (the last
  // window clipped by the padding) and 1-pixel outputs.
  const std::vector<MaxPoolCase> cases = {{2, 3, 7, 7, 3, 2, 1}, {2, 5, 6, 6, 2, 2, 0}, {1, 17, 9, 8, 3, 2, 1},
                                          {3, 3, 5, 7, 3, 2, 0}, {1, 5, 4, 5, 2, 2, 1}, {2, 17, 8, 8, 2, 2, 0},
                                          {1, 5, 5, 5, 3, 1, 1}, {1, 17, 2, 2, 2, 2, 0}, {2, 3, 1, 1, 1, 1, 0}};
  for (const auto& mc : cases) {
    const ot::ref::MaxPool g{mc.n, mc.c, mc.h, mc.w, mc.k, mc.s, mc.pad};
    const ok::MaxPool2dShape s{mc.n, mc.c, mc.h, mc.w, mc.k, mc.s, mc.pad};
    BOOST_REQUIRE(s.p() == g.p() && s.q() == g.q());
    const std::size_t nx = s.x_size(), ny = s.y_size();
    // Inputs: distinct random values; many ties (values in {-1, 0, 1}); all equal (every
    // window a tie, so every argmax is its window's first pixel inside the image).
    const Vec random = ot::random_values(nx, 20 + mc.c);
    const Vec flat(nx, 0.25), ties = [&] {
      Vec t(nx);
      for (std::size_t i = 0; i < nx; ++i) t[i] = std::round(random[i] * 1.2);
      return t;
    }();
    const Vec dy = ot::random_values(ny, 30 + mc.c);
    for (const auto& [input, kind] : {std::pair{&random, "random"}, std::pair{&ties, "ties"}, std::pair{&flat, "equal"}}) {
      on_every_target([&]<class T>(double tol, const std::string& where) {
        const auto xt = ot::cast<T>(*input), dyt = ot::cast<T>(dy);
        // The reference sees the same (rounded) inputs, so ties are the same ties.
        std::vector<std::int32_t> arg_ref;
        const Vec y_ref = ot::ref::maxpool_forward(g, dbl(xt), arg_ref);
        const Vec dx_ref = ot::ref::maxpool_backward(g, dbl(dyt), arg_ref);
        std::vector<T> y(ny), dx(nx, T(7));  // dx is overwritten, not accumulated into
        std::vector<std::int32_t> arg(ny, -5);
        ok::maxpool2d_forward(s, xt.data(), y.data(), arg.data());
        ok::maxpool2d_backward(s, dyt.data(), arg.data(), dx.data());
        const std::string w = where + " " + describe(mc) + " " + kind;
        BOOST_TEST(dbl(y) == y_ref, w << " maxpool y (a max is exact)");
        std::size_t bad = 0;
        for (std::size_t i = 0; i < ny; ++i) bad += arg[i] != arg_ref[i];
        BOOST_TEST(bad == 0u, w << " maxpool argmax: " << bad << " of " << ny << " differ");
        expect_close(dbl(dx), dx_ref, tol, w + " maxpool backward", 1.0);
      });
    }
  }
}

BOOST_AUTO_TEST_CASE(maxpool_propagates_nan_and_checks_its_shape) {
  // One NaN in channel 1 at pixel (3, 3) of a 5x5 input. With k3 s2 p1, window p covers input
  // rows 2p-1 .. 2p+1, so rows and columns 3 lie in windows 1 and 2: four outputs hold it.
  const ok::MaxPool2dShape s{1, 3, 5, 5, 3, 2, 1};
  Vec x = ot::random_values(s.x_size(), 40);
  x[(3 * 5 + 3) * 3 + 1] = std::numeric_limits<double>::quiet_NaN();
  Vec y(s.y_size());
  std::vector<std::int32_t> arg(s.y_size());
  ok::maxpool2d_forward(s, x.data(), y.data(), arg.data());
  std::vector<std::int32_t> arg_ref;
  const Vec y_ref = ot::ref::maxpool_forward({1, 3, 5, 5, 3, 2, 1}, x, arg_ref);
  std::size_t nans = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    BOOST_TEST(std::isnan(y[i]) == std::isnan(y_ref[i]), "output " << i);
    BOOST_TEST(arg[i] == arg_ref[i], "output " << i);
    if (std::isnan(y[i])) {
      ++nans;
      BOOST_TEST(i % 3 == 1u);
      BOOST_TEST(arg[i] == 3 * 5 + 3);
    }
  }
  BOOST_TEST(nans == 4u);
  // kernel >= 1, stride >= 1, pad <= kernel/2, padded input >= kernel.
  Vec big(1000);
  std::vector<std::int32_t> ia(1000);
  for (const ok::MaxPool2dShape bad : {ok::MaxPool2dShape{1, 3, 5, 5, 0, 1, 0}, ok::MaxPool2dShape{1, 3, 5, 5, 2, 0, 0},
                                       ok::MaxPool2dShape{1, 3, 5, 5, 3, 2, 2}, ok::MaxPool2dShape{1, 3, 5, 5, 1, 1, 1},
                                       ok::MaxPool2dShape{1, 3, 2, 5, 5, 1, 1}, ok::MaxPool2dShape{1, 3, 5, 1, 4, 1, 1}}) {
    BOOST_CHECK_THROW(ok::maxpool2d_forward(bad, big.data(), big.data(), ia.data()), std::invalid_argument);
    BOOST_CHECK_THROW(ok::maxpool2d_backward(bad, big.data(), ia.data(), big.data()), std::invalid_argument);
  }
  // The limits themselves are accepted: pad == kernel/2, padded input == kernel.
  BOOST_CHECK_NO_THROW(ok::maxpool2d_forward(ok::MaxPool2dShape{1, 3, 1, 1, 3, 1, 1}, big.data(), big.data(), ia.data()));
  BOOST_CHECK_NO_THROW(ok::maxpool2d_forward(ok::MaxPool2dShape{1, 3, 5, 5, 2, 3, 1}, big.data(), big.data(), ia.data()));
}

BOOST_AUTO_TEST_CASE(maxpool_gradient_check) {
  for (const MaxPoolCase mc : {MaxPoolCase{2, 3, 7, 7, 3, 2, 1}, MaxPoolCase{1, 5, 6, 6, 2, 2, 0}}) {
    const ok::MaxPool2dShape s{mc.n, mc.c, mc.h, mc.w, mc.k, mc.s, mc.pad};
    // Distinct values at least 1/size apart (a shuffled ramp), far more than the step, so no
    // perturbation changes a window's winner.
    Vec x(s.x_size());
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = double((i * 7919) % x.size()) / double(x.size()) - 0.5;
    const Vec R = ot::random_values(s.y_size(), 41);
    Vec y(s.y_size()), dx(x.size());
    std::vector<std::int32_t> arg(s.y_size());
    auto loss = [&] {
      ok::maxpool2d_forward(s, x.data(), y.data(), arg.data());
      return std::inner_product(R.begin(), R.end(), y.begin(), 0.0);
    };
    loss();
    ok::maxpool2d_backward(s, R.data(), arg.data(), dx.data());
    const auto r = ot::check_gradient("maxpool dx " + describe(mc), x, dx, loss, {.step = 1e-6});
    BOOST_TEST(r.passed, r.report());
  }
}

BOOST_AUTO_TEST_CASE(flatten_is_pytorch_order_and_round_trips) {
  // Extents around the 32-wide transpose tile: below, at, across it; hw = 1 (after global pooling).
  struct F {
    std::size_t n, c, hw;
  };
  for (const F f : {F{2, 3, 5}, F{3, 17, 49}, F{1, 64, 1}, F{2, 40, 37}, F{1, 32, 32}, F{2, 1, 70}}) {
    const std::size_t size = f.n * f.c * f.hw;
    const Vec x = ot::random_values(size, f.c + f.hw);
    Vec y(size, 9.0), back(size, 9.0), expected(size);
    // PyTorch: x as NCHW is xc[n][k][p] = x[n][p][k]; flatten(1) is row-major over (k, p).
    for (std::size_t n = 0; n < f.n; ++n)
      for (std::size_t k = 0; k < f.c; ++k)
        for (std::size_t p = 0; p < f.hw; ++p) expected[(n * f.c + k) * f.hw + p] = x[(n * f.hw + p) * f.c + k];
    ok::flatten_nhwc_to_nchw(f.n, f.c, f.hw, x.data(), y.data());
    ok::unflatten_nchw_to_nhwc(f.n, f.c, f.hw, y.data(), back.data());
    const std::string w = "n" + std::to_string(f.n) + " c" + std::to_string(f.c) + " hw" + std::to_string(f.hw);
    BOOST_TEST(y == expected, w << " flatten");
    BOOST_TEST(back == x, w << " unflatten(flatten(x))");
    const auto xf = ot::cast<float>(x);
    std::vector<float> yf(size), backf(size);
    ok::flatten_nhwc_to_nchw(f.n, f.c, f.hw, xf.data(), yf.data());
    ok::unflatten_nchw_to_nhwc(f.n, f.c, f.hw, yf.data(), backf.data());
    BOOST_TEST(yf == ot::cast<float>(expected), w << " flatten f32");
    BOOST_TEST(backf == xf, w << " round trip f32");
  }
}

namespace dropout_hash {
// The hash eltwise.h documents, written again from that text (not shared with the kernel).
std::uint64_t mix(std::uint64_t z) {
  z ^= z >> 30;
  z *= 0xBF58476D1CE4E5B9u;
  z ^= z >> 27;
  z *= 0x94D049BB133111EBu;
  z ^= z >> 31;
  return z;
}
constexpr std::uint64_t G = 0x9E3779B97F4A7C15u;
bool keep(const ok::DropoutParams& p, std::uint64_t i) {
  const std::uint64_t key = mix(p.seed ^ mix(p.stream + G));
  const double u = double(mix(key + (i + 1) * G) >> 11) * 0x1.0p-53;
  return u >= p.p;
}
}  // namespace dropout_hash

BOOST_AUTO_TEST_CASE(dropout_mask_is_the_documented_hash_on_every_target) {
  // 40000 elements: two full 16384-element blocks and a partial one, a length no vector
  // width divides; every element's mask against the hash recomputed here.
  const std::size_t n = 40001;
  const Vec x = ot::random_values(n, 50), dy = ot::random_values(n, 51);
  for (const ok::DropoutParams params : {ok::DropoutParams{0.5, 42, 0}, ok::DropoutParams{0.1, 42, 7},
                                         ok::DropoutParams{0.9, 0, 0}, ok::DropoutParams{0.3, ~0ull, 12345}}) {
    std::vector<std::uint8_t> expected(n);
    for (std::size_t i = 0; i < n; ++i) expected[i] = dropout_hash::keep(params, i);
    const double scale = 1 / (1 - params.p);
    on_every_target([&]<class T>(double tol, const std::string& where) {
      const auto xt = ot::cast<T>(x), dyt = ot::cast<T>(dy);
      std::vector<T> y(n), dx = dyt;
      std::vector<std::uint8_t> mask(n, 9);
      ok::dropout_forward(n, xt.data(), y.data(), mask.data(), params);
      ok::dropout_backward(n, dx.data(), mask.data(), params.p, dx.data());  // in place
      std::size_t wrong = 0, first = n;
      for (std::size_t i = 0; i < n; ++i)
        if (mask[i] != expected[i]) ++wrong, first = std::min(first, i);
      const std::string w = where + " p" + std::to_string(params.p) + " stream" + std::to_string(params.stream);
      BOOST_TEST(wrong == 0u, w << ": " << wrong << " mask bytes differ from the hash, first at " << first);
      Vec y_ref(n), dx_ref(n);
      for (std::size_t i = 0; i < n; ++i) {
        y_ref[i] = expected[i] ? double(xt[i]) * scale : 0.0;
        dx_ref[i] = expected[i] ? double(dyt[i]) * scale : 0.0;
      }
      expect_close(dbl(y), y_ref, tol, w + " dropout forward");
      expect_close(dbl(dx), dx_ref, tol, w + " dropout backward (dx aliasing dy)");
    });
  }
  // Pinned values, from a separate Python transcription of the documented formula, so that
  // changing test and kernel together cannot pass unnoticed: SplitMix64 seeded with 0 gives
  // 0xE220A8397B1DCDAF first; seed 42, stream 0, p 0.5 keeps elements
  // 10001001101010100101101100000000... and 19935 of the first 40001; seed 42, stream 7,
  // p 0.1 keeps 35897 of them.
  BOOST_TEST(dropout_hash::mix(dropout_hash::G) == 0xE220A8397B1DCDAFu);
  std::string first;
  std::size_t kept = 0, kept7 = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const bool k = dropout_hash::keep({0.5, 42, 0}, i);
    if (i < 32) first += k ? '1' : '0';
    kept += k;
    kept7 += dropout_hash::keep({0.1, 42, 7}, i);
  }
  BOOST_TEST(first == "10001001101010100101101100000000");
  BOOST_TEST(kept == 19935u);
  BOOST_TEST(kept7 == 35897u);
}

BOOST_AUTO_TEST_CASE(dropout_keeps_a_binomial_fraction) {
  // For a hash that behaves like independent uniforms, the kept count is Binomial(n, 1 - p):
  // mean n(1-p), standard deviation sqrt(n p (1-p)). A 5-sigma band fails by chance with
  // probability 6e-7 per case, while a bias of 0.3% of n (e.g. a mapping to [0,1) off by one
  // part in 300) leaves it: at n = 1e6, p = 0.5, sigma = 500 = 0.05% of n. Pairs of
  // neighbours are checked too: both kept with probability (1-p)^2 if they are independent.
  const std::size_t n = 1'000'000;
  std::vector<float> x(n, 1.0f), y(n);
  std::vector<std::uint8_t> mask(n);
  for (double p : {0.05, 0.2, 0.5, 0.8}) {
    for (std::uint64_t stream : {0u, 1u}) {
      ok::dropout_forward(n, x.data(), y.data(), mask.data(), ok::DropoutParams{p, 2026, stream});
      double kept = 0, pairs = 0;
      for (std::size_t i = 0; i < n; ++i) kept += mask[i];
      for (std::size_t i = 0; i + 1 < n; i += 2) pairs += mask[i] & mask[i + 1];
      const double q = 1 - p, sigma = std::sqrt(double(n) * p * q);
      BOOST_TEST(std::abs(kept - double(n) * q) <= 5 * sigma,
                 "p " << p << " stream " << stream << ": kept " << kept << ", expected " << double(n) * q
                      << " +- " << 5 * sigma);
      const double np = double(n / 2), pq = q * q, psigma = std::sqrt(np * pq * (1 - pq));
      BOOST_TEST(std::abs(pairs - np * pq) <= 5 * psigma, "p " << p << " pairs kept " << pairs << " vs " << np * pq);
    }
  }
}

BOOST_AUTO_TEST_CASE(dropout_mask_depends_only_on_seed_stream_and_index) {
  const std::size_t n = 3 * 16384 + 1001;
  const auto x = ot::cast<float>(ot::random_values(n, 52));
  const ok::DropoutParams params{0.4, 99, 3};
  auto run = [&](std::size_t count) {
    std::vector<float> y(count);
    std::vector<std::uint8_t> mask(count);
    ok::dropout_forward(count, x.data(), y.data(), mask.data(), params);
    return mask;
  };
  std::vector<std::uint8_t> one, two;
  tbb::task_arena(1).execute([&] { one = run(n); });
  tbb::task_arena(2).execute([&] { two = run(n); });
  BOOST_TEST(one == two);
  // A prefix (a length inside a block and a vector) is the full mask's prefix.
  for (std::size_t m : {1u, 13u, 16385u, 40000u}) {
    const auto prefix = run(m);
    BOOST_TEST(std::equal(prefix.begin(), prefix.end(), one.begin()), "prefix " << m);
  }
  // Another stream or seed gives another mask (they agree on about p^2 + (1-p)^2 = 52%).
  for (const ok::DropoutParams other : {ok::DropoutParams{0.4, 99, 4}, ok::DropoutParams{0.4, 100, 3}}) {
    std::vector<float> y(n);
    std::vector<std::uint8_t> mask(n);
    ok::dropout_forward(n, x.data(), y.data(), mask.data(), other);
    std::size_t same = 0;
    for (std::size_t i = 0; i < n; ++i) same += mask[i] == one[i];
    BOOST_TEST(std::abs(double(same) / double(n) - 0.52) < 0.01, "agreement " << double(same) / double(n));
  }
}

BOOST_AUTO_TEST_CASE(dropout_p0_is_identity_and_bad_p_throws) {
  const std::size_t n = 1037;
  Vec x = ot::random_values(n, 53), y(n);
  x[5] = -0.0;
  std::vector<std::uint8_t> mask(n, 0);
  on_every_target([&]<class T>(double, const std::string& where) {
    const auto xt = ot::cast<T>(x);
    std::vector<T> yt(n);
    std::fill(mask.begin(), mask.end(), 0);
    ok::dropout_forward(n, xt.data(), yt.data(), mask.data(), ok::DropoutParams{0.0, 1, 2});
    BOOST_TEST(yt == xt, where << " p = 0: y == x");
    BOOST_TEST(std::signbit(yt[5]), where << " p = 0 keeps -0");
    BOOST_TEST(std::all_of(mask.begin(), mask.end(), [](std::uint8_t m) { return m == 1; }), where << " p = 0 mask");
    std::vector<T> dx(n);
    ok::dropout_backward(n, xt.data(), mask.data(), 0.0, dx.data());
    BOOST_TEST(dx == xt, where << " p = 0 backward");
  });
  for (double p : {1.0, -0.1, 1.5, std::numeric_limits<double>::quiet_NaN()}) {
    BOOST_CHECK_THROW(ok::dropout_forward(n, x.data(), y.data(), mask.data(), ok::DropoutParams{p, 1, 2}),
                      std::invalid_argument);
    BOOST_CHECK_THROW(ok::dropout_backward(n, x.data(), mask.data(), p, y.data()), std::invalid_argument);
  }
}

BOOST_AUTO_TEST_CASE(adamw_matches_reference) {
  // 37 elements: no vector width divides it. Five steps, two hyper-parameter sets.
  const std::size_t n = 37;
  for (const ok::AdamWParams base : {ok::AdamWParams{0.01, 0.9, 0.999, 1e-8, 0.05, 1},
                                     ok::AdamWParams{0.003, 0.8, 0.99, 1e-6, 0.0, 1}}) {
    ot::ref::AdamWState ref{ot::random_values(n, 60)};
    std::vector<Vec> grads;
    for (int step = 1; step <= 5; ++step) {
      grads.push_back(ot::random_values(n, 60 + step, -2, 2));
      if (step == 2) grads.back()[3] = 0;  // a zero gradient
      ot::ref::adamw_step(ref, grads.back(), base.lr, base.beta1, base.beta2, base.eps, base.weight_decay, step);
    }
    on_every_target([&]<class T>(double tol, const std::string& where) {
      auto w = ot::cast<T>(ot::random_values(n, 60));
      std::vector<T> m(n, T(0)), v(n, T(0));
      for (std::int64_t step = 1; step <= 5; ++step) {
        auto g = ot::cast<T>(grads[std::size_t(step - 1)]);
        ok::AdamWParams p = base;
        p.step = step;
        ok::adamw_update(n, w.data(), g.data(), m.data(), v.data(), p);
        BOOST_TEST(std::all_of(g.begin(), g.end(), [](T e) { return e == T(0); }), "the step zeroes the gradient");
      }
      const std::string wh = where + " adamw lr" + std::to_string(base.lr);
      // Float: five steps of a few roundings each, of a ratio m/sqrt(v) near 1.
      expect_close(dbl(w), ref.w, tol * 10, wh + " w");
      expect_close(dbl(m), ref.m, tol * 10, wh + " exp_avg");
      expect_close(dbl(v), ref.v, tol * 10, wh + " exp_avg_sq");
    });
  }
  Vec w(n), g(n), m(n), v(n);
  for (const ok::AdamWParams bad : {ok::AdamWParams{0.01, 0.9, 0.999, 1e-8, 0.01, 0}, ok::AdamWParams{-0.01, 0.9, 0.999, 1e-8, 0.01, 1},
                                    ok::AdamWParams{0.01, 1.0, 0.999, 1e-8, 0.01, 1}, ok::AdamWParams{0.01, 0.9, -0.1, 1e-8, 0.01, 1},
                                    ok::AdamWParams{0.01, 0.9, 0.999, -1e-8, 0.01, 1}, ok::AdamWParams{0.01, 0.9, 0.999, 1e-8, -1, 1}})
    BOOST_CHECK_THROW(ok::adamw_update(n, w.data(), g.data(), m.data(), v.data(), bad), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(linear_matches_reference_and_gradient_check) {
  struct L {
    std::size_t n, in, out;
  };
  for (const L lc : {L{1, 1, 1}, L{3, 17, 5}, L{2, 64, 10}, L{5, 33, 17}}) {
    const Vec x = ot::random_values(lc.n * lc.in, 1), w = ot::random_values(lc.out * lc.in, 2);
    const Vec b = ot::random_values(lc.out, 3), dy = ot::random_values(lc.n * lc.out, 4);
    const Vec y_ref = ot::ref::linear_forward(lc.n, lc.in, lc.out, x, w, b);
    Vec dx_ref(lc.n * lc.in, 0.0), dw_ref(lc.out * lc.in, 0.0), db_ref(lc.out, 0.0);
    for (std::size_t n = 0; n < lc.n; ++n)
      for (std::size_t o = 0; o < lc.out; ++o) {
        db_ref[o] += dy[n * lc.out + o];
        for (std::size_t i = 0; i < lc.in; ++i) {
          dx_ref[n * lc.in + i] += dy[n * lc.out + o] * w[o * lc.in + i];
          dw_ref[o * lc.in + i] += dy[n * lc.out + o] * x[n * lc.in + i];
        }
      }
    Vec yd;
    on_every_target([&]<class T>(double tol, const std::string& where) {
      const auto xt = ot::cast<T>(x), wt = ot::cast<T>(w), bt = ot::cast<T>(b), dyt = ot::cast<T>(dy);
      std::vector<T> y(y_ref.size()), dx(x.size()), dw(w.size(), T(0)), db(b.size(), T(0));
      ok::linear_forward(lc.n, lc.in, lc.out, xt.data(), wt.data(), bt.data(), y.data());
      ok::linear_backward_data(lc.n, lc.in, lc.out, dyt.data(), wt.data(), dx.data());
      ok::linear_backward_weights(lc.n, lc.in, lc.out, xt.data(), dyt.data(), dw.data(), db.data());
      const std::string wh = where + " " + std::to_string(lc.n) + "x" + std::to_string(lc.in) + "->" + std::to_string(lc.out);
      expect_close(dbl(y), y_ref, tol, wh + " forward");
      expect_close(dbl(dx), dx_ref, tol, wh + " backward data");
      expect_close(dbl(dw), dw_ref, tol, wh + " dw");
      expect_close(dbl(db), db_ref, tol, wh + " db");
    });
    // Gradient check in double.
    Vec xg = x, wg = w, bg = b, y(lc.n * lc.out);
    auto loss = [&] {
      ok::linear_forward(lc.n, lc.in, lc.out, xg.data(), wg.data(), bg.data(), y.data());
      double l = 0;
      for (std::size_t i = 0; i < y.size(); ++i) l += dy[i] * y[i];
      return l;
    };
    Vec dx(x.size()), dw(w.size(), 0.0), db(b.size(), 0.0);
    ok::linear_backward_data(lc.n, lc.in, lc.out, dy.data(), wg.data(), dx.data());
    ok::linear_backward_weights(lc.n, lc.in, lc.out, xg.data(), dy.data(), dw.data(), db.data());
    for (auto [what, p, g] : {std::tuple{"dx", &xg, &dx}, std::tuple{"dw", &wg, &dw}, std::tuple{"db", &bg, &db}}) {
      const auto r = ot::check_gradient(std::string("linear ") + what, *p, *g, loss);
      BOOST_TEST(r.passed, r.report());
    }
  }
}

BOOST_AUTO_TEST_CASE(cross_entropy_matches_reference_and_gradient_check) {
  for (double eps : {0.0, 0.1}) {
    for (std::size_t K : {1u, 3u, 10u, 17u}) {
      const std::size_t N = 5;
      Vec z = ot::random_values(N * K, K, -4, 4);
      std::vector<std::int32_t> labels(N);
      for (std::size_t i = 0; i < N; ++i) labels[i] = std::int32_t((i * 7 + 3) % K);
      Vec p_ref, dz_ref;
      const double l_ref = ot::ref::cross_entropy(N, K, z, labels, eps, &p_ref, &dz_ref);
      std::size_t correct_ref = 0;
      for (std::size_t i = 0; i < N; ++i) {
        std::size_t arg = 0;
        for (std::size_t k = 1; k < K; ++k)
          if (z[i * K + k] > z[i * K + arg]) arg = k;
        correct_ref += arg == std::size_t(labels[i]);
      }
      on_every_target([&]<class T>(double tol, const std::string& where) {
        const auto zt = ot::cast<T>(z);
        std::vector<T> p(N * K), dz(N * K);
        const auto st = ok::softmax_cross_entropy_forward(N, K, zt.data(), labels.data(), eps, p.data());
        ok::softmax_cross_entropy_backward(N, K, p.data(), labels.data(), eps, dz.data());
        const std::string w = where + " K" + std::to_string(K) + " eps" + std::to_string(eps);
        BOOST_TEST(std::abs(st.loss - l_ref) <= tol * 10 * std::abs(l_ref) + 1e-12, w << " loss " << st.loss << " vs " << l_ref);
        BOOST_TEST(st.correct == correct_ref, w);
        expect_close(dbl(p), p_ref, tol * 10, w + " probs", 1.0);
        expect_close(dbl(dz), dz_ref, tol * 10, w + " dlogits", 1.0 / double(N));
      });
      Vec p(N * K), dz(N * K);
      auto loss = [&] { return ok::softmax_cross_entropy_forward(N, K, z.data(), labels.data(), eps, p.data()).loss; };
      loss();
      ok::softmax_cross_entropy_backward(N, K, p.data(), labels.data(), eps, dz.data());
      const auto r = ot::check_gradient("cross-entropy dlogits", z, dz, loss);
      BOOST_TEST(r.passed, r.report());
    }
  }
}

BOOST_AUTO_TEST_CASE(cross_entropy_is_stable_and_checks_labels) {
  const std::vector<float> z{1000.0f, -1000.0f, 0.0f, -1000.0f, 1000.0f, 999.0f};
  const std::vector<std::int32_t> labels{0, 2};
  std::vector<float> p(6);
  const auto st = ok::softmax_cross_entropy_forward(2, 3, z.data(), labels.data(), 0.0, p.data());
  // Sample 0: loss ~0; sample 1: logsumexp(-1000,1000,999) - (999) = 1 + log(1 + e^-1).
  const double expected = (0.0 + 1.0 + std::log1p(std::exp(-1.0))) / 2;
  BOOST_TEST(std::isfinite(st.loss));
  BOOST_TEST(std::abs(st.loss - expected) < 1e-5, st.loss << " vs " << expected);
  BOOST_TEST(st.correct == 1u);
  std::vector<std::int32_t> bad{0, 3};
  BOOST_CHECK_THROW(ok::softmax_cross_entropy_forward(2, 3, z.data(), bad.data(), 0.0, p.data()), std::invalid_argument);
  bad[1] = -1;
  BOOST_CHECK_THROW(ok::softmax_cross_entropy_forward(2, 3, z.data(), bad.data(), 0.0, p.data()), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(sgd_matches_pytorch_semantics) {
  const std::size_t n = 37;
  for (bool nesterov : {false, true}) {
    for (double wd : {0.0, 5e-4}) {
      ot::ref::SgdState ref{ot::random_values(n, 1)};
      Vec w = ref.w, v(n, 0.0), g(n);
      const ok::SgdParams params{0.05, 0.9, wd, nesterov};
      for (int step = 0; step < 4; ++step) {
        const Vec grad = ot::random_values(n, 10 + step);
        ot::ref::sgd_step(ref, grad, 0.05, 0.9, wd, nesterov);
        g = grad;
        ok::sgd_update(n, w.data(), g.data(), v.data(), params);
        for (double e : g) BOOST_REQUIRE(e == 0.0);  // the step zeroes the gradient
      }
      expect_close(w, ref.w, 1e-12, std::string("sgd nesterov=") + (nesterov ? "1" : "0"));
      expect_close(v, ref.buf, 1e-12, "sgd momentum buffer");
    }
  }
}

BOOST_AUTO_TEST_CASE(reductions_are_bitwise_identical_across_thread_counts) {
  const std::size_t N = 64, I = 512, O = 10;
  const ok::Pool2dShape s{N, 64, 9, 9, 3, 2};
  const auto x = ot::cast<float>(ot::random_values(N * I, 1)), w = ot::cast<float>(ot::random_values(O * I, 2));
  const auto dy = ot::cast<float>(ot::random_values(N * O, 3));
  const auto pdy = ot::cast<float>(ot::random_values(N * s.p() * s.q() * 64, 4));
  // Max pooling with overlapping windows and ties, so pixels gather several outputs' dy.
  const ok::MaxPool2dShape ms{N, 24, 9, 9, 3, 2, 1};
  std::vector<float> mx(ms.x_size());
  for (std::size_t i = 0; i < mx.size(); ++i) mx[i] = float((i * 37) % 11);
  const auto mdy = ot::cast<float>(ot::random_values(ms.y_size(), 5));
  std::vector<std::int32_t> labels(N);
  for (std::size_t i = 0; i < N; ++i) labels[i] = std::int32_t(i % O);
  auto run = [&] {
    std::vector<float> dw(O * I, 0.0f), db(O, 0.0f), dx(N * 9 * 9 * 64), p(N * O), out(N * O);
    ok::linear_backward_weights(N, I, O, x.data(), dy.data(), dw.data(), db.data());
    ok::avgpool2d_backward(s, pdy.data(), dx.data());
    std::vector<float> my(ms.y_size()), mdx(ms.x_size());
    std::vector<std::int32_t> arg(ms.y_size());
    ok::maxpool2d_forward(ms, mx.data(), my.data(), arg.data());
    ok::maxpool2d_backward(ms, mdy.data(), arg.data(), mdx.data());
    dw.insert(dw.end(), mdx.begin(), mdx.end());
    ok::linear_forward(N, I, O, x.data(), w.data(), nullptr, out.data());
    const double l = ok::softmax_cross_entropy_forward(N, O, out.data(), labels.data(), 0.1, p.data()).loss;
    dw.push_back(float(l));
    dw.insert(dw.end(), db.begin(), db.end());
    dw.insert(dw.end(), dx.begin(), dx.end());
    return dw;
  };
  std::vector<float> one;
  {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, 1);
    one = run();
  }
  for (int rep = 0; rep < 3; ++rep) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, 2);
    BOOST_TEST(run() == one);
  }
}
