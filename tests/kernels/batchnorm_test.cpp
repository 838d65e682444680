// batch_norm2d in training and inference modes: against the textbook double reference on
// every SIMD target, float against double, gradient checks in double (including a constant
// channel), running statistics, errors, and determinism across thread counts.
#define BOOST_TEST_MODULE batchnorm
#include <boost/test/unit_test.hpp>
#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>
import odyssey;
import odyssey.testing;

namespace ok = odyssey::kernels;
namespace ot = odyssey::testing;
using Vec = std::vector<double>;

namespace {

constexpr double kMomentum = 0.1, kEps = 1e-5;

double rms(const Vec& v) {
  double s = 0;
  for (double e : v) s += e * e;
  return std::sqrt(s / double(v.size())) + 1e-30;
}
void expect_close(const Vec& actual, const Vec& expected, double rtol, const std::string& what) {
  const auto r = ot::compare<double, double>(actual, expected, rtol, rtol * rms(expected));
  BOOST_TEST(r.passed, what << ": " << r.report());
}
template <class T>
Vec to_double(const std::vector<T>& v) {
  return Vec(v.begin(), v.end());
}

struct Case {
  std::size_t m, c;
};
// Rows are N*H*W: batch 1..3 of 5x7, 8x8, 1x1 (inference only when the batch is 1).
const std::vector<Case> kCases = {{1 * 5 * 7, 1}, {2 * 5 * 7, 3},  {3 * 8 * 8, 5},
                                  {2 * 8 * 8, 17}, {3 * 1 * 1, 64}, {2 * 4 * 4, 33}};

struct Outputs {
  Vec y, mean, rstd, rm, rv, dx, dg, db, y_inf, dx_inf, dg_inf, db_inf;
};

template <class T>
Outputs run(const Case& cs, const Vec& x, const Vec& g, const Vec& b, const Vec& rm0, const Vec& rv0,
            const Vec& dy) {
  const ok::BatchNormShape s{cs.m, cs.c};
  const auto xt = ot::cast<T>(x), gt = ot::cast<T>(g), bt = ot::cast<T>(b), dyt = ot::cast<T>(dy);
  auto rm = ot::cast<T>(rm0), rv = ot::cast<T>(rv0);
  std::vector<T> y(x.size()), mean(cs.c), rstd(cs.c), dx(x.size()), dg(cs.c, T(0)), db(cs.c, T(0));
  odyssey::AlignedBuffer<double> ws(ok::batchnorm_workspace_size(s));
  ok::batchnorm_forward_training(s, xt.data(), gt.data(), bt.data(), y.data(), mean.data(), rstd.data(),
                                 rm.data(), rv.data(), kMomentum, kEps, ws.data());
  ok::batchnorm_backward_training(s, xt.data(), dyt.data(), gt.data(), mean.data(), rstd.data(), dx.data(),
                                  dg.data(), db.data(), ws.data());
  Outputs o{to_double(y), to_double(mean), to_double(rstd), to_double(rm), to_double(rv),
            to_double(dx), to_double(dg), to_double(db)};
  std::vector<T> yi(x.size()), dxi(x.size()), dgi(cs.c, T(0)), dbi(cs.c, T(0));
  const auto rmt = ot::cast<T>(rm0), rvt = ot::cast<T>(rv0);
  ok::batchnorm_forward_inference(s, xt.data(), gt.data(), bt.data(), rmt.data(), rvt.data(), kEps, yi.data());
  ok::batchnorm_backward_inference(s, xt.data(), dyt.data(), gt.data(), rmt.data(), rvt.data(), kEps,
                                   dxi.data(), dgi.data(), dbi.data(), ws.data());
  o.y_inf = to_double(yi);
  o.dx_inf = to_double(dxi);
  o.dg_inf = to_double(dgi);
  o.db_inf = to_double(dbi);
  return o;
}

struct Inputs {
  Vec x, g, b, rm, rv, dy;
};
Inputs inputs(const Case& cs, std::uint64_t seed) {
  return {ot::random_values(cs.m * cs.c, seed, -2, 3), ot::random_values(cs.c, seed + 1, 0.5, 1.5),
          ot::random_values(cs.c, seed + 2), ot::random_values(cs.c, seed + 3),
          ot::random_values(cs.c, seed + 4, 0.5, 2), ot::random_values(cs.m * cs.c, seed + 5)};
}

}  // namespace

BOOST_AUTO_TEST_CASE(matches_reference_on_every_target) {
  for (const auto& target : ok::available_targets()) {
    ok::use_target(target);
    for (const auto& cs : kCases) {
      const Inputs in = inputs(cs, cs.m * 131 + cs.c);
      const std::string where = target + " m" + std::to_string(cs.m) + " c" + std::to_string(cs.c);
      const auto ref = ot::ref::batchnorm_forward_training(cs.m, cs.c, in.x, in.g, in.b, in.rm, in.rv, kMomentum, kEps);
      const auto bref = ot::ref::batchnorm_backward_training(cs.m, cs.c, in.x, in.dy, in.g, ref.mean, ref.rstd);
      const auto yinf = ot::ref::batchnorm_forward_inference(cs.m, cs.c, in.x, in.g, in.b, in.rm, in.rv, kEps);
      Vec dxinf(in.x.size()), dginf(cs.c, 0.0), dbinf(cs.c, 0.0);
      for (std::size_t i = 0; i < in.x.size(); ++i) {
        const std::size_t c = i % cs.c;
        const double r = 1 / std::sqrt(in.rv[c] + kEps);
        dxinf[i] = in.dy[i] * in.g[c] * r;
        dginf[c] += in.dy[i] * (in.x[i] - in.rm[c]) * r;
        dbinf[c] += in.dy[i];
      }
      const Outputs d = run<double>(cs, in.x, in.g, in.b, in.rm, in.rv, in.dy);
      const Outputs f = run<float>(cs, in.x, in.g, in.b, in.rm, in.rv, in.dy);
      for (auto [tol, o, type] : {std::tuple{1e-10, &d, "f64"}, std::tuple{1e-4, &f, "f32"}}) {
        const std::string w = where + " " + type;
        expect_close(o->y, ref.y, tol, w + " y");
        expect_close(o->mean, ref.mean, tol, w + " mean");
        expect_close(o->rstd, ref.rstd, tol, w + " rstd");
        expect_close(o->rm, ref.running_mean, tol, w + " running_mean");
        expect_close(o->rv, ref.running_var, tol, w + " running_var");
        expect_close(o->dx, bref[0], tol, w + " dx");
        expect_close(o->dg, bref[1], tol, w + " dgamma");
        expect_close(o->db, bref[2], tol, w + " dbeta");
        expect_close(o->y_inf, yinf, tol, w + " inference y");
        expect_close(o->dx_inf, dxinf, tol, w + " inference dx");
        expect_close(o->dg_inf, dginf, tol, w + " inference dgamma");
        expect_close(o->db_inf, dbinf, tol, w + " inference dbeta");
      }
    }
  }
  ok::use_best_target();
}

BOOST_AUTO_TEST_CASE(fused_residual_and_relu_match_reference_on_every_target) {
  const Case cs{2 * 5 * 7, 17};
  const Inputs in = inputs(cs, 3);
  const Vec res = ot::random_values(cs.m * cs.c, 8, -1, 1);
  const auto ref = ot::ref::batchnorm_forward_training(cs.m, cs.c, in.x, in.g, in.b, in.rm, in.rv, kMomentum, kEps);
  const auto inf = ot::ref::batchnorm_forward_inference(cs.m, cs.c, in.x, in.g, in.b, in.rm, in.rv, kEps);
  const ok::BatchNormShape s{cs.m, cs.c};
  for (const auto& target : ok::available_targets()) {
    ok::use_target(target);
    for (int variant = 0; variant < 3; ++variant) {  // relu; residual; residual + relu
      const bool relu = variant != 1, residual = variant != 0;
      Vec expect_train(ref.y.size()), expect_inf(inf.size());
      for (std::size_t i = 0; i < ref.y.size(); ++i) {
        const double r = residual ? res[i] : 0.0;
        expect_train[i] = relu ? std::max(ref.y[i] + r, 0.0) : ref.y[i] + r;
        expect_inf[i] = relu ? std::max(inf[i] + r, 0.0) : inf[i] + r;
      }
      for (const bool f32 : {false, true}) {
        auto run = [&]<class T>() {
          const auto xt = ot::cast<T>(in.x), gt = ot::cast<T>(in.g), bt = ot::cast<T>(in.b), rt = ot::cast<T>(res);
          auto rm = ot::cast<T>(in.rm), rv = ot::cast<T>(in.rv);
          std::vector<T> y(in.x.size()), yi(in.x.size()), mean(cs.c), rstd(cs.c);
          odyssey::AlignedBuffer<double> ws(ok::batchnorm_workspace_size(s));
          ok::batchnorm_forward_inference(s, xt.data(), gt.data(), bt.data(), rm.data(), rv.data(), kEps, yi.data(),
                                          residual ? rt.data() : nullptr, relu);
          ok::batchnorm_forward_training(s, xt.data(), gt.data(), bt.data(), y.data(), mean.data(), rstd.data(),
                                         rm.data(), rv.data(), kMomentum, kEps, ws.data(),
                                         residual ? rt.data() : nullptr, relu);
          const double tol = f32 ? 1e-5 : 1e-12;
          const std::string w = target + (f32 ? " f32" : " f64") + " variant " + std::to_string(variant);
          expect_close(to_double(y), expect_train, tol, w + " training");
          expect_close(to_double(yi), expect_inf, tol, w + " inference");
        };
        if (f32) run.template operator()<float>();
        else run.template operator()<double>();
      }
    }
  }
  ok::use_best_target();
}

// loss = sum(R * y) for a fixed random R, so dy = R.
void gradient_check(const Case& cs, bool training, bool constant_channel) {
  Inputs in = inputs(cs, 77 + cs.c);
  if (constant_channel)
    for (std::size_t m = 0; m < cs.m; ++m) in.x[m * cs.c] = 0.7;  // channel 0 has zero variance
  const Vec R = ot::random_values(cs.m * cs.c, 99);
  const ok::BatchNormShape s{cs.m, cs.c};
  odyssey::AlignedBuffer<double> ws(ok::batchnorm_workspace_size(s));
  Vec y(in.x.size()), mean(cs.c), rstd(cs.c);
  auto loss = [&] {
    Vec rm = in.rm, rv = in.rv;  // running statistics must not leak between evaluations
    if (training)
      ok::batchnorm_forward_training(s, in.x.data(), in.g.data(), in.b.data(), y.data(), mean.data(), rstd.data(),
                                     rm.data(), rv.data(), kMomentum, kEps, ws.data());
    else
      ok::batchnorm_forward_inference(s, in.x.data(), in.g.data(), in.b.data(), rm.data(), rv.data(), kEps, y.data());
    double l = 0;
    for (std::size_t i = 0; i < y.size(); ++i) l += R[i] * y[i];
    return l;
  };
  loss();
  Vec dy(y.size()), dx(y.size()), dg(cs.c, 0.0), db(cs.c, 0.0);
  for (std::size_t i = 0; i < y.size(); ++i) dy[i] = R[i];
  if (training)
    ok::batchnorm_backward_training(s, in.x.data(), dy.data(), in.g.data(), mean.data(), rstd.data(), dx.data(),
                                    dg.data(), db.data(), ws.data());
  else
    ok::batchnorm_backward_inference(s, in.x.data(), dy.data(), in.g.data(), in.rm.data(), in.rv.data(), kEps,
                                     dx.data(), dg.data(), db.data(), ws.data());
  const std::string where = std::string(training ? "training" : "inference") + (constant_channel ? " constant" : "") +
                            " m" + std::to_string(cs.m) + " c" + std::to_string(cs.c);
  for (auto [what, param, grad] : {std::tuple{"dx", &in.x, &dx}, std::tuple{"dgamma", &in.g, &dg},
                                   std::tuple{"dbeta", &in.b, &db}}) {
    for (double v : *grad) BOOST_REQUIRE(std::isfinite(v));
    const auto r = ot::check_gradient(where + " " + what, *param, *grad, loss);
    BOOST_TEST(r.passed, r.report());
  }
}

BOOST_AUTO_TEST_CASE(gradient_check_training) {
  for (const Case cs : {Case{1 * 5 * 7, 1}, Case{2 * 5 * 7, 3}, Case{3 * 8 * 8, 5}, Case{2 * 2 * 2, 17}})
    gradient_check(cs, true, false);
}

BOOST_AUTO_TEST_CASE(gradient_check_inference_including_1x1_batch_1) {
  for (const Case cs : {Case{1, 3}, Case{1, 17}, Case{2 * 5 * 7, 5}}) gradient_check(cs, false, false);
}

BOOST_AUTO_TEST_CASE(zero_variance_channel_has_finite_checked_gradients) {
  gradient_check({2 * 5 * 7, 3}, true, true);
  gradient_check({3 * 8 * 8, 5}, false, true);
}

BOOST_AUTO_TEST_CASE(training_with_one_value_per_channel_is_an_error) {
  const ok::BatchNormShape s{1, 4};
  std::vector<float> v(4, 1.0f);
  odyssey::AlignedBuffer<double> ws(ok::batchnorm_workspace_size(s));
  BOOST_CHECK_THROW(ok::batchnorm_forward_training(s, v.data(), v.data(), v.data(), v.data(), v.data(), v.data(),
                                                   v.data(), v.data(), kMomentum, kEps, ws.data()),
                    std::invalid_argument);
  // Inference with one pixel is fine.
  BOOST_CHECK_NO_THROW(ok::batchnorm_forward_inference(s, v.data(), v.data(), v.data(), v.data(), v.data(), kEps, v.data()));
}

BOOST_AUTO_TEST_CASE(bitwise_identical_across_thread_counts_and_runs) {
  const Case cs{16 * 16 * 16, 64};  // many chunks
  const Inputs in = inputs(cs, 5);
  Outputs one;
  {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, 1);
    one = run<float>(cs, in.x, in.g, in.b, in.rm, in.rv, in.dy);
  }
  for (int rep = 0; rep < 3; ++rep) {
    tbb::global_control limit(tbb::global_control::max_allowed_parallelism, 2);
    const Outputs two = run<float>(cs, in.x, in.g, in.b, in.rm, in.rv, in.dy);
    BOOST_TEST(two.y == one.y);
    BOOST_TEST(two.mean == one.mean);
    BOOST_TEST(two.rstd == one.rstd);
    BOOST_TEST(two.rv == one.rv);
    BOOST_TEST(two.dx == one.dx);
    BOOST_TEST(two.dg == one.dg);
    BOOST_TEST(two.db == one.db);
    BOOST_TEST(two.dg_inf == one.dg_inf);
  }
}
