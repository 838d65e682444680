// The kernels against numbers PyTorch 1.13 computed (tests/fixtures/kernels.json, made by
// tests/fixtures/make_references.py): conv2d, batch norm in both modes, cross-entropy with
// label smoothing, average and max pooling, linear, SGD (with and without Nesterov and decay)
// and AdamW.
#define BOOST_TEST_MODULE torch_reference
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>
import odyssey;
import odyssey.testing;

namespace ok = odyssey::kernels;
namespace ot = odyssey::testing;
using Vec = std::vector<double>;
using nlohmann::json;

namespace {

const json& fixtures() {
  static const json j = [] {
    std::ifstream in(std::string(ODYSSEY_FIXTURES) + "/kernels.json");
    BOOST_TEST_REQUIRE(in.good(), "cannot open " << ODYSSEY_FIXTURES << "/kernels.json");
    return json::parse(in);
  }();
  return j;
}

Vec vec(const json& j) { return j.get<Vec>(); }

// PyTorch's NCHW to odyssey's NHWC, and back.
Vec to_nhwc(const Vec& v, std::size_t n, std::size_t c, std::size_t hw) {
  Vec out(v.size());
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = 0; k < c; ++k)
      for (std::size_t p = 0; p < hw; ++p) out[(i * hw + p) * c + k] = v[(i * c + k) * hw + p];
  return out;
}

void expect_close(const Vec& actual, const Vec& expected, const std::string& what, double rtol = 1e-10) {
  double scale = 0;
  for (double e : expected) scale = std::max(scale, std::abs(e));
  const auto r = ot::compare<double, double>(actual, expected, rtol, rtol * scale);
  BOOST_TEST(r.passed, what << ": " << r.report());
}

}  // namespace

BOOST_AUTO_TEST_CASE(conv2d_matches_pytorch) {
  for (const auto& c : fixtures()["conv2d"]) {
    const ok::Conv2dShape g{c["n"], c["c"], c["h"], c["w"], c["k"], c["r"], c["r"], c["stride"], c["pad"]};
    const Vec x = to_nhwc(vec(c["x"]), g.n, g.c, g.h * g.w), w = vec(c["weight"]);
    const Vec dy = to_nhwc(vec(c["dy"]), g.n, g.k, g.p() * g.q());
    const bool bias = c.contains("bias");
    const Vec b = bias ? vec(c["bias"]) : Vec{};
    odyssey::AlignedBuffer<double> ws(ok::conv2d_workspace_size(g));
    Vec y(g.y_size()), dx(g.x_size()), dw(g.w_size(), 0.0), db(g.k, 0.0);
    ok::conv2d_forward(g, x.data(), w.data(), bias ? b.data() : nullptr, y.data(), ws.data());
    ok::conv2d_backward_data(g, dy.data(), w.data(), dx.data(), ws.data());
    ok::conv2d_backward_weights(g, x.data(), dy.data(), dw.data(), db.data(), ws.data());
    expect_close(y, to_nhwc(vec(c["y"]), g.n, g.k, g.p() * g.q()), "conv y");
    expect_close(dx, to_nhwc(vec(c["dx"]), g.n, g.c, g.h * g.w), "conv dx");
    expect_close(dw, vec(c["dweight"]), "conv dweight");
    if (bias) expect_close(db, vec(c["dbias"]), "conv dbias");
  }
}

BOOST_AUTO_TEST_CASE(batchnorm_matches_pytorch) {
  for (const auto& c : fixtures()["batchnorm"]) {
    const std::size_t n = c["n"], ch = c["c"], hw = std::size_t(c["h"]) * std::size_t(c["w"]);
    const ok::BatchNormShape s{n * hw, ch};
    const Vec x = to_nhwc(vec(c["x"]), n, ch, hw), dy = to_nhwc(vec(c["dy"]), n, ch, hw);
    const Vec g = vec(c["weight"]), b = vec(c["bias"]);
    Vec rm = vec(c["running_mean_in"]), rv = vec(c["running_var_in"]);
    Vec y(x.size()), dx(x.size()), mean(ch), rstd(ch), dg(ch, 0.0), db(ch, 0.0);
    odyssey::AlignedBuffer<double> ws(ok::batchnorm_workspace_size(s));
    if (c["training"]) {
      ok::batchnorm_forward_training(s, x.data(), g.data(), b.data(), y.data(), mean.data(), rstd.data(), rm.data(),
                                     rv.data(), 0.1, 1e-5, ws.data());
      ok::batchnorm_backward_training(s, x.data(), dy.data(), g.data(), mean.data(), rstd.data(), dx.data(),
                                      dg.data(), db.data(), ws.data());
    } else {
      ok::batchnorm_forward_inference(s, x.data(), g.data(), b.data(), rm.data(), rv.data(), 1e-5, y.data());
      ok::batchnorm_backward_inference(s, x.data(), dy.data(), g.data(), rm.data(), rv.data(), 1e-5, dx.data(),
                                       dg.data(), db.data(), ws.data());
    }
    const std::string mode = c["training"] ? "training" : "inference";
    expect_close(y, to_nhwc(vec(c["y"]), n, ch, hw), "bn " + mode + " y");
    expect_close(dx, to_nhwc(vec(c["dx"]), n, ch, hw), "bn " + mode + " dx");
    expect_close(dg, vec(c["dweight"]), "bn " + mode + " dweight");
    expect_close(db, vec(c["dbias"]), "bn " + mode + " dbias");
    expect_close(rm, vec(c["running_mean"]), "bn " + mode + " running_mean");
    expect_close(rv, vec(c["running_var"]), "bn " + mode + " running_var");
  }
}

BOOST_AUTO_TEST_CASE(cross_entropy_matches_pytorch) {
  for (const auto& c : fixtures()["cross_entropy"]) {
    const std::size_t n = c["n"], k = c["k"];
    const Vec z = vec(c["logits"]);
    const auto labels = c["labels"].get<std::vector<std::int32_t>>();
    Vec p(n * k), dz(n * k);
    const auto st = ok::softmax_cross_entropy_forward(n, k, z.data(), labels.data(), c["smoothing"], p.data());
    ok::softmax_cross_entropy_backward(n, k, p.data(), labels.data(), c["smoothing"], dz.data());
    const double loss = c["loss"];
    BOOST_TEST(std::abs(st.loss - loss) <= 1e-12 * std::abs(loss), st.loss << " vs PyTorch " << loss);
    expect_close(dz, vec(c["dlogits"]), "cross-entropy dlogits");
  }
}

BOOST_AUTO_TEST_CASE(avgpool_and_linear_match_pytorch) {
  for (const auto& c : fixtures()["avgpool"]) {
    const ok::Pool2dShape s{c["n"], c["c"], c["h"], c["w"], c["kernel"], c["stride"]};
    const Vec x = to_nhwc(vec(c["x"]), s.n, s.c, s.h * s.w), dy = to_nhwc(vec(c["dy"]), s.n, s.c, s.p() * s.q());
    Vec y(dy.size()), dx(x.size());
    ok::avgpool2d_forward(s, x.data(), y.data());
    ok::avgpool2d_backward(s, dy.data(), dx.data());
    expect_close(y, to_nhwc(vec(c["y"]), s.n, s.c, s.p() * s.q()), "avgpool y");
    expect_close(dx, to_nhwc(vec(c["dx"]), s.n, s.c, s.h * s.w), "avgpool dx");
  }
  for (const auto& c : fixtures()["linear"]) {
    const std::size_t n = c["n"], in = c["in"], out = c["out"];
    const Vec x = vec(c["x"]), w = vec(c["weight"]), b = vec(c["bias"]), dy = vec(c["dy"]);
    Vec y(n * out), dx(n * in), dw(out * in, 0.0), db(out, 0.0);
    ok::linear_forward(n, in, out, x.data(), w.data(), b.data(), y.data());
    ok::linear_backward_data(n, in, out, dy.data(), w.data(), dx.data());
    ok::linear_backward_weights(n, in, out, x.data(), dy.data(), dw.data(), db.data());
    expect_close(y, vec(c["y"]), "linear y");
    expect_close(dx, vec(c["dx"]), "linear dx");
    expect_close(dw, vec(c["dweight"]), "linear dweight");
    expect_close(db, vec(c["dbias"]), "linear dbias");
  }
}

BOOST_AUTO_TEST_CASE(sgd_matches_pytorch) {
  for (const auto& c : fixtures()["sgd"]) {
    Vec w = vec(c["w0"]), v(w.size(), 0.0);
    const ok::SgdParams p{c["lr"], c["momentum"], c["weight_decay"], c["nesterov"]};
    for (const auto& gj : c["grads"]) {
      Vec g = vec(gj);
      ok::sgd_update(w.size(), w.data(), g.data(), v.data(), p);
    }
    expect_close(w, vec(c["w"]), std::string("sgd nesterov=") + (p.nesterov ? "1" : "0"));
    expect_close(v, vec(c["momentum_buffer"]), "sgd momentum buffer");
  }
}

BOOST_AUTO_TEST_CASE(maxpool_matches_pytorch) {
  for (const auto& c : fixtures()["maxpool"]) {
    const ok::MaxPool2dShape s{c["n"], c["c"], c["h"], c["w"], c["kernel"], c["stride"], c["padding"]};
    const std::size_t pq = s.p() * s.q();
    const Vec x = to_nhwc(vec(c["x"]), s.n, s.c, s.h * s.w), dy = to_nhwc(vec(c["dy"]), s.n, s.c, pq);
    const auto torch_indices = c["indices"].get<std::vector<double>>();  // NCHW, as ih * w + iw
    const auto indices = to_nhwc(torch_indices, s.n, s.c, pq);
    Vec y(s.y_size()), dx(s.x_size());
    std::vector<std::int32_t> argmax(s.y_size());
    ok::maxpool2d_forward(s, x.data(), y.data(), argmax.data());
    ok::maxpool2d_backward(s, dy.data(), argmax.data(), dx.data());
    const std::string what = "maxpool " + std::to_string(s.h) + "x" + std::to_string(s.w) + " k" +
                             std::to_string(s.kernel) + " s" + std::to_string(s.stride) + " p" + std::to_string(s.pad);
    expect_close(y, to_nhwc(vec(c["y"]), s.n, s.c, pq), what + " y");
    std::size_t differ = 0;
    for (std::size_t i = 0; i < argmax.size(); ++i) differ += double(argmax[i]) != indices[i];
    BOOST_TEST(differ == 0u, what << " indices: " << differ << " of " << argmax.size() << " differ from PyTorch's");
    expect_close(dx, to_nhwc(vec(c["dx"]), s.n, s.c, s.h * s.w), what + " dx");
  }
}

BOOST_AUTO_TEST_CASE(adamw_matches_pytorch) {
  for (const auto& c : fixtures()["adamw"]) {
    Vec w = vec(c["w0"]), m(w.size(), 0.0), v(w.size(), 0.0);
    ok::AdamWParams p{c["lr"], c["beta1"], c["beta2"], c["eps"], c["weight_decay"], 0};
    for (const auto& gj : c["grads"]) {
      Vec g = vec(gj);
      ++p.step;
      ok::adamw_update(w.size(), w.data(), g.data(), m.data(), v.data(), p);
    }
    BOOST_TEST(p.step == c["step"].get<std::int64_t>());
    expect_close(w, vec(c["w"]), "adamw w");
    expect_close(m, vec(c["exp_avg"]), "adamw exp_avg");
    expect_close(v, vec(c["exp_avg_sq"]), "adamw exp_avg_sq");
  }
}
