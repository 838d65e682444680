// ReLU, add, add+ReLU, pooling, linear, softmax cross-entropy and SGD: against double
// references on every SIMD target, float against double, gradient checks in double, and
// determinism of the reductions across thread counts.
#define BOOST_TEST_MODULE ops
#include <boost/test/unit_test.hpp>
#include <tbb/global_control.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
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
  std::vector<std::int32_t> labels(N);
  for (std::size_t i = 0; i < N; ++i) labels[i] = std::int32_t(i % O);
  auto run = [&] {
    std::vector<float> dw(O * I, 0.0f), db(O, 0.0f), dx(N * 9 * 9 * 64), p(N * O), out(N * O);
    ok::linear_backward_weights(N, I, O, x.data(), dy.data(), dw.data(), db.data());
    ok::avgpool2d_backward(s, pdy.data(), dx.data());
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
