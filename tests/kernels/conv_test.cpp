// conv2d forward, backward-data and backward-weights: against the double reference on every
// SIMD target, float against double, gradient checks in double, and determinism across
// thread counts.
#define BOOST_TEST_MODULE conv2d
#include <boost/test/unit_test.hpp>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>
import odyssey;
import odyssey.testing;

namespace ok = odyssey::kernels;
namespace ot = odyssey::testing;

namespace {

ok::Conv2dShape shape(std::size_t n, std::size_t c, std::size_t h, std::size_t w, std::size_t k,
                      std::size_t r, std::size_t s, std::size_t stride, std::size_t pad) {
  return {n, c, h, w, k, r, s, stride, pad};
}
ot::ref::Conv ref_of(const ok::Conv2dShape& g) {
  return {g.n, g.c, g.h, g.w, g.k, g.r, g.s, g.stride, g.pad};
}
std::string name(const ok::Conv2dShape& g) {
  return "n" + std::to_string(g.n) + " c" + std::to_string(g.c) + " " + std::to_string(g.h) + "x" +
         std::to_string(g.w) + " k" + std::to_string(g.k) + " " + std::to_string(g.r) + "x" +
         std::to_string(g.s) + " s" + std::to_string(g.stride) + " p" + std::to_string(g.pad);
}

// Unfriendly shapes: odd channel counts (not multiples of any vector width), batch 1-3,
// stride 2 and 3 on odd extents, padding 0/1/2, 1x1 inputs and kernels, output-channel
// counts that leave a partial register tile, ResNet-18's own three kinds, and long
// reductions that select the other register tile.
const std::vector<ok::Conv2dShape> kShapes = {
    shape(1, 1, 1, 1, 1, 1, 1, 1, 0),    shape(2, 3, 5, 7, 5, 3, 3, 1, 1),
    shape(3, 17, 8, 8, 17, 3, 3, 2, 1),  shape(2, 5, 7, 5, 3, 3, 3, 2, 0),
    shape(1, 3, 8, 8, 64, 3, 3, 1, 1),   shape(2, 17, 5, 7, 70, 1, 1, 2, 0),
    shape(3, 64, 4, 4, 65, 3, 3, 1, 1),  shape(1, 5, 6, 6, 3, 5, 5, 1, 2),
    shape(2, 3, 9, 9, 4, 3, 3, 3, 1),    shape(1, 1, 3, 3, 2, 3, 3, 1, 0),
    shape(2, 32, 8, 8, 64, 3, 3, 2, 1),  shape(2, 64, 8, 8, 128, 1, 1, 2, 0),
    // Reductions of 256 channels or more take the tall register tile (12 x 2 on AVX-512).
    shape(2, 260, 3, 3, 33, 3, 3, 1, 1), shape(1, 20, 5, 4, 300, 3, 3, 2, 1),
    // Winograd (3x3, stride 1): odd extents leave partial 2x2 and 4x4 tiles, padding 2 runs
    // backward-data with padding 0; more tiles than one block holds.
    shape(2, 17, 5, 6, 19, 3, 3, 1, 2),  shape(3, 20, 11, 9, 24, 3, 3, 1, 1),
    shape(3, 16, 2, 2, 16, 3, 3, 1, 1),
    // Winograd blocks that stream their transformed weights (xi_outer), several per call:
    // 64 channels on AVX-512, 256 (the tall tile) on AVX2 too.
    shape(4, 64, 12, 12, 64, 3, 3, 1, 1), shape(2, 256, 10, 10, 20, 3, 3, 1, 1),
    // F(4x4, 3x3) with more than 4 Mi transformed weights runs whole (kernels/winograd.h):
    // forward on the wide tile, backward-data on the tall one, partial register tiles.
    shape(4, 250, 6, 6, 500, 3, 3, 1, 1),
    // The whole weight gradient in two blocks of tiles (F(2x2, 3x3): 336 tiles of 272-float
    // rows, over 320 KiB), output channels in two tasks of 64 with a partial register group.
    shape(21, 250, 7, 7, 70, 3, 3, 1, 1),
    // Weight gradients whose reduction is cut into parts summed separately, then in order
    // (kernels/weight_parts.h): 6 parts direct and 3 Winograd; 3 parts for the strided 1x1.
    shape(8, 19, 30, 30, 21, 3, 3, 1, 1), shape(8, 13, 30, 30, 9, 1, 1, 2, 0),
    // The stride-2 forms (and the stride-2 3x3 shapes above): partial 4x4 and 8x8 tiles
    // (odd outputs, padding 0 and 2) over several blocks; blocks that stream their weights
    // (64 channels on AVX-512, 256 on AVX2 with the tall tile); more than 4 Mi transformed
    // weights, run whole.
    shape(3, 20, 23, 19, 24, 3, 3, 2, 1), shape(2, 33, 17, 18, 40, 3, 3, 2, 2),
    shape(2, 19, 16, 15, 18, 3, 3, 2, 0), shape(4, 64, 24, 24, 64, 3, 3, 2, 1),
    shape(2, 256, 12, 12, 20, 3, 3, 2, 1), shape(4, 250, 12, 12, 500, 3, 3, 2, 1),
    // The stride-2 weight gradient cut into 5 parts (the other stride-2 shapes run it whole),
    // each over sub-chunks of 24 tiles and a partial one.
    shape(8, 5, 66, 66, 7, 3, 3, 2, 1),
    // 1x1 weight gradients on packed x (conv_weights.cpp): stride 1 with a packed output
    // gradient (K = 300) over several chunks and a partial channel tile, and stride 3 (AVX2
    // packs these); x pixels 1 KB or more apart, which AVX-512 targets pack too, with partial
    // channel tiles and output groups.
    shape(4, 40, 19, 23, 300, 1, 1, 1, 0), shape(2, 7, 10, 9, 20, 1, 1, 3, 0),
    shape(2, 130, 9, 7, 70, 1, 1, 2, 0),   shape(2, 260, 5, 5, 33, 1, 1, 1, 0),
};

// The algorithms that can compute all three of g's passes: direct always, both
// Winograd tiles for 3x3 stride 1, winograd4 (the stride-2 forms) for 3x3 stride 2.
std::vector<ok::ConvAlgorithm> algorithms(const ok::Conv2dShape& g) {
  if (ok::conv2d_winograd_applies(g))
    return {ok::ConvAlgorithm::direct, ok::ConvAlgorithm::winograd, ok::ConvAlgorithm::winograd4};
  if (ok::conv2d_winograd_stride2_applies(g)) return {ok::ConvAlgorithm::direct, ok::ConvAlgorithm::winograd4};
  return {ok::ConvAlgorithm::direct};
}
std::string name(ok::ConvAlgorithm a) {
  switch (a) {
    case ok::ConvAlgorithm::direct: return "direct";
    case ok::ConvAlgorithm::winograd: return "winograd";
    case ok::ConvAlgorithm::winograd4: return "winograd4";
    default: return "automatic";
  }
}
// Relative tolerance of float results against double: F(4x4, 3x3)'s transforms (entries up
// to 8 and down to 1/24) round more than the others' (measured below, winograd_error).
double float_rtol(ok::ConvAlgorithm a) { return a == ok::ConvAlgorithm::winograd4 ? 5e-4 : 1e-4; }

// Tolerance for float results: relative 1e-4 of the value, with an absolute floor of 1e-4 of
// the typical magnitude of an output (values that nearly cancel have no relative accuracy).
double rms(const std::vector<double>& v) {
  double s = 0;
  for (double e : v) s += e * e;
  return std::sqrt(s / double(v.size())) + 1e-30;
}

struct Results {
  std::vector<double> y, dx, dw, db;
};

template <class T>
Results run(const ok::Conv2dShape& g, const std::vector<double>& x, const std::vector<double>& w,
            const std::vector<double>& b, const std::vector<double>& dy,
            ok::ConvAlgorithm algo = ok::ConvAlgorithm::automatic) {
  const auto xt = ot::cast<T>(x), wt = ot::cast<T>(w), bt = ot::cast<T>(b), dyt = ot::cast<T>(dy);
  // Outputs that are not accumulated start as NaN, so a pixel the kernels leave unwritten
  // (a backward-data phase no tap reaches must still be zeroed) fails the comparison.
  const T nan = std::numeric_limits<T>::quiet_NaN();
  std::vector<T> y(g.y_size(), nan), dx(g.x_size(), nan), dw(g.w_size(), T(0)), db(g.k, T(0));
  auto ws = odyssey::AlignedBuffer<T>::uninitialized(ok::conv2d_workspace_size(g));
  ok::conv2d_forward(g, xt.data(), wt.data(), bt.data(), y.data(), ws.data(), algo);
  ok::conv2d_backward_data(g, dyt.data(), wt.data(), dx.data(), ws.data(), false, algo);
  ok::conv2d_backward_weights(g, xt.data(), dyt.data(), dw.data(), db.data(), ws.data(), algo);
  auto d = [](const std::vector<T>& v) { return std::vector<double>(v.begin(), v.end()); };
  return {d(y), d(dx), d(dw), d(db)};
}

void expect_close(const std::vector<double>& actual, const std::vector<double>& expected,
                  double rtol, const std::string& what) {
  const auto r = ot::compare<double, double>(actual, expected, rtol, rtol * rms(expected));
  BOOST_TEST(r.passed, what << ": " << r.report());
}

}  // namespace

BOOST_AUTO_TEST_CASE(matches_reference_on_every_target) {
  for (const auto& target : ok::available_targets()) {
    ok::use_target(target);
    for (const auto& g : kShapes) {
      const auto x = ot::random_values(g.x_size(), 1), w = ot::random_values(g.w_size(), 2);
      const auto b = ot::random_values(g.k, 3), dy = ot::random_values(g.y_size(), 4);
      const auto rg = ref_of(g);
      const auto y_ref = ot::ref::conv_forward(rg, x, w, b.data());
      const auto dx_ref = ot::ref::conv_backward_data(rg, dy, w);
      const auto dwb_ref = ot::ref::conv_backward_weights(rg, x, dy);
      for (const auto algo : algorithms(g)) {
        const std::string where = target + " " + name(g) + " " + name(algo);
        const Results d = run<double>(g, x, w, b, dy, algo);
        expect_close(d.y, y_ref, 1e-12, where + " forward f64");
        expect_close(d.dx, dx_ref, 1e-12, where + " backward-data f64");
        expect_close(d.dw, dwb_ref[0], 1e-12, where + " backward-weights f64");
        expect_close(d.db, dwb_ref[1], 1e-12, where + " bias gradient f64");
        // Float against the double kernel: relative error 1e-4 (5e-4 for F(4x4, 3x3)).
        const Results f = run<float>(g, x, w, b, dy, algo);
        expect_close(f.y, d.y, float_rtol(algo), where + " forward f32");
        expect_close(f.dx, d.dx, float_rtol(algo), where + " backward-data f32");
        expect_close(f.dw, d.dw, 1e-4, where + " backward-weights f32");
        expect_close(f.db, d.db, 1e-4, where + " bias gradient f32");
      }
    }
  }
  ok::use_best_target();
}

// The forward epilogue (an inference-mode batch norm folded into the convolution, then a
// residual and a ReLU): the reference convolution mapped in double, on every target and
// algorithm, with and without each part. Outputs start as NaN, so one left unwritten fails.
template <class T>
std::vector<double> forward_with_epilogue(const ok::Conv2dShape& g, const std::vector<double>& x,
                                          const std::vector<double>& w, const std::vector<double>& b,
                                          const std::vector<double>& scale, const std::vector<double>& shift,
                                          const std::vector<double>* residual, bool relu, ok::ConvAlgorithm algo) {
  const auto xt = ot::cast<T>(x), wt = ot::cast<T>(w), bt = ot::cast<T>(b);
  const auto st = ot::cast<T>(scale), ht = ot::cast<T>(shift);
  const auto rt = residual ? ot::cast<T>(*residual) : std::vector<T>{};
  std::vector<T> y(g.y_size(), std::numeric_limits<T>::quiet_NaN());
  auto ws = odyssey::AlignedBuffer<T>::uninitialized(ok::conv2d_workspace_size(g));
  const ok::ConvEpilogue<T> ep{st.data(), ht.data(), residual ? rt.data() : nullptr, relu};
  ok::conv2d_forward(g, xt.data(), wt.data(), bt.data(), y.data(), ws.data(), algo, &ep);
  return {y.begin(), y.end()};
}

BOOST_AUTO_TEST_CASE(forward_epilogue_on_every_target) {
  for (const auto& target : ok::available_targets()) {
    ok::use_target(target);
    for (const auto& g : kShapes) {
      const auto x = ot::random_values(g.x_size(), 21), w = ot::random_values(g.w_size(), 22);
      const auto b = ot::random_values(g.k, 23), scale = ot::random_values(g.k, 24);
      const auto shift = ot::random_values(g.k, 25), residual = ot::random_values(g.y_size(), 26);
      const auto y_ref = ot::ref::conv_forward(ref_of(g), x, w, b.data());
      for (const auto& [with_residual, relu] : {std::pair{false, false}, std::pair{false, true}, std::pair{true, true},
                                                std::pair{true, false}}) {
        std::vector<double> expected(y_ref.size());
        for (std::size_t i = 0; i < y_ref.size(); ++i) {
          const std::size_t k = i % g.k;
          double v = y_ref[i] * scale[k] + shift[k] + (with_residual ? residual[i] : 0.0);
          expected[i] = relu ? std::max(v, 0.0) : v;
        }
        const auto* res = with_residual ? &residual : nullptr;
        for (const auto algo : algorithms(g)) {
          const std::string where = target + " " + name(g) + " " + name(algo) + (with_residual ? " residual" : "") +
                                    (relu ? " relu" : "");
          expect_close(forward_with_epilogue<double>(g, x, w, b, scale, shift, res, relu, algo), expected, 1e-12,
                       where + " f64");
          expect_close(forward_with_epilogue<float>(g, x, w, b, scale, shift, res, relu, algo), expected,
                       float_rtol(algo), where + " f32");
        }
      }
    }
  }
  ok::use_best_target();
}

// Prepared weights (conv2d_prepare_weights): the forward pass that reads them computes
// bitwise what it computes from the weights, on every target and algorithm; it is handed other
// weights as w, so a pass that read w would differ. Weights prepared for another algorithm,
// target or shape are refused.
template <class T>
void check_prepared(const ok::Conv2dShape& g, ok::ConvAlgorithm algo, const std::string& where) {
  const auto x = ot::cast<T>(ot::random_values(g.x_size(), 31)), w = ot::cast<T>(ot::random_values(g.w_size(), 32));
  const auto other = ot::cast<T>(ot::random_values(g.w_size(), 33)), b = ot::cast<T>(ot::random_values(g.k, 34));
  auto ws = odyssey::AlignedBuffer<T>::uninitialized(ok::conv2d_workspace_size(g));
  std::vector<T> y(g.y_size()), yp(g.y_size(), std::numeric_limits<T>::quiet_NaN());
  ok::conv2d_forward(g, x.data(), w.data(), b.data(), y.data(), ws.data(), algo);
  const std::size_t size = ok::conv2d_prepared_weights_size(g, algo);
  auto prepared = odyssey::AlignedBuffer<T>::uninitialized(size);
  std::fill_n(prepared.data(), size, std::numeric_limits<T>::quiet_NaN());
  BOOST_TEST(!ok::conv2d_prepared_weights_match(g, prepared.data(), size, algo), where);
  ok::conv2d_prepare_weights(g, w.data(), prepared.data(), algo);
  BOOST_TEST(ok::conv2d_prepared_weights_match(g, prepared.data(), size, algo), where);
  BOOST_TEST(!ok::conv2d_prepared_weights_match(g, prepared.data(), size - 1, algo), where);
  ok::conv2d_forward(g, x.data(), other.data(), b.data(), yp.data(), ws.data(), algo, nullptr, prepared.data());
  BOOST_TEST(std::memcmp(y.data(), yp.data(), y.size() * sizeof(T)) == 0, where);
  for (const auto a : algorithms(g)) {
    if (ok::conv2d_prepared_weights_match(g, prepared.data(), size, a)) continue;  // the same layout
    BOOST_CHECK_THROW(ok::conv2d_forward(g, x.data(), w.data(), b.data(), yp.data(), ws.data(), a, nullptr,
                                         prepared.data()),
                      std::invalid_argument);
  }
  auto padded = g;
  padded.pad = g.pad < 2 ? g.pad + 1 : g.pad - 1;
  BOOST_TEST(!ok::conv2d_prepared_weights_match(padded, prepared.data(), size, algo), where);
}

BOOST_AUTO_TEST_CASE(prepared_weights_on_every_target) {
  for (const auto& target : ok::available_targets()) {
    ok::use_target(target);
    for (const auto& g : kShapes)
      for (const auto algo : algorithms(g)) {
        const std::string where = target + " " + name(g) + " " + name(algo);
        check_prepared<float>(g, algo, where + " f32");
        check_prepared<double>(g, algo, where + " f64");
      }
  }
  // Another target's prepared weights are refused: each target has a layout of its own.
  const auto g = shape(2, 17, 5, 6, 19, 3, 3, 1, 2);
  const auto w = ot::cast<float>(ot::random_values(g.w_size(), 35));
  const auto targets = ok::available_targets();
  for (const auto& a : targets) {
    ok::use_target(a);
    auto prepared = odyssey::AlignedBuffer<float>::uninitialized(ok::conv2d_prepared_weights_size(g));
    ok::conv2d_prepare_weights(g, w.data(), prepared.data());
    for (const auto& b : targets) {
      ok::use_target(b);
      BOOST_TEST(ok::conv2d_prepared_weights_match(g, prepared.data(), prepared.size()) == (a == b), a + " " + b);
    }
  }
  ok::use_best_target();
  // Automatic F(4x4, 3x3) at 128 tiles, F(2x2, 3x3) below: the batch changes the layout.
  const auto big = shape(8, 16, 16, 16, 16, 3, 3, 1, 1), small = shape(1, 16, 16, 16, 16, 3, 3, 1, 1);
  const auto w16 = ot::cast<float>(ot::random_values(big.w_size(), 36));
  auto prepared = odyssey::AlignedBuffer<float>::uninitialized(ok::conv2d_prepared_weights_size(big));
  ok::conv2d_prepare_weights(big, w16.data(), prepared.data());
  BOOST_TEST(ok::conv2d_prepared_weights_match(big, prepared.data(), prepared.size()));
  BOOST_TEST(!ok::conv2d_prepared_weights_match(small, prepared.data(), prepared.size()));
}

BOOST_AUTO_TEST_CASE(no_bias_and_accumulating_backward_data) {
  // The 1x1 stride-2 shape has backward-data phases no tap reaches: accumulating leaves them
  // as they were.
  for (const auto& [g, algo] : {std::pair{shape(2, 5, 7, 5, 6, 3, 3, 2, 1), ok::ConvAlgorithm::direct},
                                 std::pair{shape(2, 70, 7, 5, 6, 1, 1, 2, 0), ok::ConvAlgorithm::direct},
                                 std::pair{shape(2, 5, 7, 5, 6, 3, 3, 1, 1), ok::ConvAlgorithm::winograd},
                                 std::pair{shape(2, 5, 7, 5, 6, 3, 3, 1, 1), ok::ConvAlgorithm::winograd4}}) {
    const std::string where = name(g) + " " + name(algo) + ": ";
    const auto x = ot::random_values(g.x_size(), 5), w = ot::random_values(g.w_size(), 6);
    const auto dy = ot::random_values(g.y_size(), 7), prior = ot::random_values(g.x_size(), 8);
    auto ws = odyssey::AlignedBuffer<double>::uninitialized(ok::conv2d_workspace_size(g));
    std::vector<double> y(g.y_size());
    ok::conv2d_forward(g, x.data(), w.data(), nullptr, y.data(), ws.data(), algo);
    expect_close(y, ot::ref::conv_forward(ref_of(g), x, w, nullptr), 1e-12, where + "no bias");
    auto dx = prior;
    ok::conv2d_backward_data(g, dy.data(), w.data(), dx.data(), ws.data(), true, algo);
    auto expected = ot::ref::conv_backward_data(ref_of(g), dy, w);
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] += prior[i];
    expect_close(dx, expected, 1e-12, where + "accumulate");
    // Weight gradients accumulate too: a second call doubles them.
    std::vector<double> dw(g.w_size(), 0.0);
    ok::conv2d_backward_weights(g, x.data(), dy.data(), dw.data(), nullptr, ws.data(), algo);
    ok::conv2d_backward_weights(g, x.data(), dy.data(), dw.data(), nullptr, ws.data(), algo);
    auto dw2 = ot::ref::conv_backward_weights(ref_of(g), x, dy)[0];
    for (auto& v : dw2) v *= 2;
    expect_close(dw, dw2, 1e-12, where + "dw accumulates");
  }
}

// A strided backward-data whose dx is 8 MiB or more writes the phases no tap reaches by
// streaming stores (kernels/conv.cpp): 64 channels (every pixel's vectors aligned) and 72
// (every other pixel's not, on AVX-512), float and double, on every target. dx starts as NaN.
template <class T>
void expect_streamed_backward_data(const ok::Conv2dShape& g, const std::string& where) {
  const auto w = ot::random_values(g.w_size(), 31), dy = ot::random_values(g.y_size(), 32);
  const auto wt = ot::cast<T>(w), dyt = ot::cast<T>(dy);
  BOOST_TEST_REQUIRE(g.x_size() * sizeof(T) >= std::size_t{8} << 20);
  std::vector<T> dx(g.x_size(), std::numeric_limits<T>::quiet_NaN());
  auto ws = odyssey::AlignedBuffer<T>::uninitialized(ok::conv2d_workspace_size(g));
  ok::conv2d_backward_data(g, dyt.data(), wt.data(), dx.data(), ws.data(), false);
  expect_close(std::vector<double>(dx.begin(), dx.end()), ot::ref::conv_backward_data(ref_of(g), dy, w),
               sizeof(T) == 4 ? 1e-5 : 1e-12, where);
}

BOOST_AUTO_TEST_CASE(large_strided_backward_data_streams_its_zeros) {
  for (const auto& target : ok::available_targets()) {
    ok::use_target(target);
    for (const auto& g : {shape(2, 64, 128, 128, 5, 1, 1, 2, 0), shape(2, 72, 122, 122, 5, 1, 1, 2, 0)}) {
      expect_streamed_backward_data<float>(g, target + " " + name(g) + " f32");
      expect_streamed_backward_data<double>(g, target + " " + name(g) + " f64");
    }
  }
  ok::use_best_target();
}

// Gradient checks: loss = sum(R * y) for a fixed random R, so dy = R (a loss of order
// sqrt(size) keeps the rounding noise of the differences small).
BOOST_AUTO_TEST_CASE(gradient_check_in_double) {
  const std::vector<ok::Conv2dShape> shapes = {
      shape(1, 1, 5, 7, 3, 3, 3, 1, 1), shape(2, 3, 5, 7, 5, 3, 3, 2, 0),
      shape(3, 5, 8, 8, 4, 3, 3, 2, 1), shape(2, 17, 5, 7, 3, 1, 1, 2, 0),
      shape(1, 3, 1, 1, 17, 1, 1, 1, 0),
  };
  // Every shape by the direct algorithm, and the 3x3 stride-1 ones (and one with padding 2)
  // by both Winograd tiles too.
  std::vector<std::pair<ok::Conv2dShape, ok::ConvAlgorithm>> cases;
  for (const auto& g : shapes) cases.emplace_back(g, ok::ConvAlgorithm::direct);
  for (const auto& g : {shapes[0], shape(2, 4, 5, 4, 3, 3, 3, 1, 2)})
    for (const auto algo : {ok::ConvAlgorithm::winograd, ok::ConvAlgorithm::winograd4}) cases.emplace_back(g, algo);
  // The stride-2 forms, padding 0 and 1.
  cases.emplace_back(shapes[1], ok::ConvAlgorithm::winograd4);
  cases.emplace_back(shapes[2], ok::ConvAlgorithm::winograd4);
  for (const auto& [g, algo] : cases) {
    auto x = ot::random_values(g.x_size(), 11), w = ot::random_values(g.w_size(), 12);
    auto b = ot::random_values(g.k, 13);
    const auto R = ot::random_values(g.y_size(), 14);
    auto ws = odyssey::AlignedBuffer<double>::uninitialized(ok::conv2d_workspace_size(g));
    std::vector<double> y(g.y_size());
    auto loss = [&] {
      ok::conv2d_forward(g, x.data(), w.data(), b.data(), y.data(), ws.data(), algo);
      double l = 0;
      for (std::size_t i = 0; i < y.size(); ++i) l += R[i] * y[i];
      return l;
    };
    loss();
    std::vector<double> dy(y.size());
    for (std::size_t i = 0; i < y.size(); ++i) dy[i] = R[i];
    std::vector<double> dx(g.x_size()), dw(g.w_size(), 0.0), db(g.k, 0.0);
    ok::conv2d_backward_data(g, dy.data(), w.data(), dx.data(), ws.data(), false, algo);
    ok::conv2d_backward_weights(g, x.data(), dy.data(), dw.data(), db.data(), ws.data(), algo);
    for (auto [what, param, grad] : {std::tuple{"dx", &x, &dx}, std::tuple{"dw", &w, &dw},
                                     std::tuple{"db", &b, &db}}) {
      const auto r = ot::check_gradient(name(g) + " " + name(algo) + " " + what, *param, *grad, loss);
      BOOST_TEST(r.passed, r.report());
    }
  }
}

BOOST_AUTO_TEST_CASE(bitwise_identical_across_thread_counts_and_runs) {
  // Large enough that every pass splits into many parallel tasks (the first streams the
  // Winograd weights on AVX-512); the second cuts its weight gradients into parts (6 direct,
  // 3 Winograd).
  // The third runs the stride-2 forms in several blocks, the fourth their weight gradient
  // in 4 parts.
  for (const auto& g : {shape(4, 64, 16, 16, 64, 3, 3, 1, 1), shape(8, 19, 30, 30, 21, 3, 3, 1, 1),
                        shape(4, 64, 32, 32, 64, 3, 3, 2, 1), shape(8, 24, 66, 66, 20, 3, 3, 2, 1)}) {
    const auto x = ot::random_values(g.x_size(), 21), w = ot::random_values(g.w_size(), 22);
    const auto b = ot::random_values(g.k, 23), dy = ot::random_values(g.y_size(), 24);
    for (const auto algo : algorithms(g)) {
      Results one;
      {
        tbb::global_control limit(tbb::global_control::max_allowed_parallelism, 1);
        one = run<float>(g, x, w, b, dy, algo);
      }
      for (int rep = 0; rep < 3; ++rep) {
        tbb::global_control limit(tbb::global_control::max_allowed_parallelism, 2);
        const Results two = run<float>(g, x, w, b, dy, algo);
        BOOST_TEST(two.y == one.y, name(algo));
        BOOST_TEST(two.dx == one.dx, name(algo));
        BOOST_TEST(two.dw == one.dw, name(algo));
        BOOST_TEST(two.db == one.db, name(algo));
      }
      // Arenas of 3 and 16 threads (oversubscribed here): Winograd cuts the tiles of a
      // streaming block by the number of worker loops, which must not change a result.
      for (const int threads : {3, 16}) {
        tbb::task_arena arena{threads};
        Results many;
        arena.execute([&] { many = run<float>(g, x, w, b, dy, algo); });
        BOOST_TEST(many.y == one.y, name(algo) << " " << threads << " threads");
        BOOST_TEST(many.dx == one.dx, name(algo) << " " << threads << " threads");
        BOOST_TEST(many.dw == one.dw, name(algo) << " " << threads << " threads");
      }
    }
  }
}

// The float error of each algorithm against the double reference at ResNet-18's 3x3
// stride-1 shapes (batch 2), as the largest error over the rms of the exact output: printed
// (--log_level=message; DESIGN.md records the figures) and bounded.
BOOST_AUTO_TEST_CASE(winograd_error_against_double_reference) {
  auto max_err = [](const std::vector<double>& a, const std::vector<double>& ref) {
    double m = 0;
    for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - ref[i]));
    return m / rms(ref);
  };
  for (const auto& g : {shape(2, 64, 32, 32, 64, 3, 3, 1, 1), shape(2, 128, 16, 16, 128, 3, 3, 1, 1),
                        shape(2, 256, 8, 8, 256, 3, 3, 1, 1), shape(2, 512, 4, 4, 512, 3, 3, 1, 1),
                        // the stride-2 layers (all three passes by the stride-2 forms)
                        shape(2, 64, 32, 32, 128, 3, 3, 2, 1), shape(2, 128, 16, 16, 256, 3, 3, 2, 1),
                        shape(2, 256, 8, 8, 512, 3, 3, 2, 1)}) {
    const auto x = ot::random_values(g.x_size(), 31), w = ot::random_values(g.w_size(), 32);
    const auto b = ot::random_values(g.k, 33), dy = ot::random_values(g.y_size(), 34);
    const auto y_ref = ot::ref::conv_forward(ref_of(g), x, w, b.data());
    const auto dx_ref = ot::ref::conv_backward_data(ref_of(g), dy, w);
    const auto dw_ref = ot::ref::conv_backward_weights(ref_of(g), x, dy)[0];
    for (const auto algo : algorithms(g)) {
      const Results f = run<float>(g, x, w, b, dy, algo);
      const double fwd = max_err(f.y, y_ref), bwd = max_err(f.dx, dx_ref), wgt = max_err(f.dw, dw_ref);
      BOOST_TEST_MESSAGE(name(g) << " " << name(algo) << ": forward " << fwd << ", backward-data " << bwd
                                 << ", weight gradient " << wgt);
      // Measured on AVX3 (2026-12-01): direct 4.7e-6 to 1.1e-5 (one long sum of 9C products),
      // F(2x2, 3x3) 1.5e-6 to 4.1e-6 (16 sums of C), F(4x4, 3x3) 2.8e-5 to 7.1e-5, growing
      // with C. The bounds leave about 3x.
      const double bound = algo == ok::ConvAlgorithm::winograd4 ? 2e-4 : 3e-5;
      BOOST_TEST(fwd < bound, name(g) << " " << name(algo) << " forward: " << fwd);
      BOOST_TEST(bwd < bound, name(g) << " " << name(algo) << " backward-data: " << bwd);
      BOOST_TEST(wgt < bound, name(g) << " " << name(algo) << " weight gradient: " << wgt);
    }
  }
}

BOOST_AUTO_TEST_CASE(rejects_shapes_that_do_not_fit) {
  std::vector<float> buf(64);
  BOOST_CHECK_THROW(ok::conv2d_forward(shape(1, 1, 2, 2, 1, 5, 5, 1, 0), buf.data(), buf.data(),
                                       nullptr, buf.data(), buf.data()),
                    std::invalid_argument);
  BOOST_CHECK_THROW(ok::conv2d_forward(shape(1, 1, 4, 4, 1, 3, 3, 0, 0), buf.data(), buf.data(),
                                       nullptr, buf.data(), buf.data()),
                    std::invalid_argument);
  // Winograd computes 3x3 convolutions with stride 1, and with stride 2 with 4x4 tiles only.
  BOOST_CHECK_THROW(ok::conv2d_forward(shape(1, 1, 4, 4, 1, 3, 3, 2, 1), buf.data(), buf.data(),
                                       nullptr, buf.data(), buf.data(), ok::ConvAlgorithm::winograd),
                    std::invalid_argument);
  BOOST_CHECK_THROW(ok::conv2d_backward_data(shape(1, 1, 4, 4, 1, 1, 1, 1, 0), buf.data(), buf.data(),
                                             buf.data(), buf.data(), false, ok::ConvAlgorithm::winograd),
                    std::invalid_argument);
  BOOST_CHECK_THROW(ok::conv2d_backward_data(shape(1, 1, 4, 4, 1, 3, 3, 2, 1), buf.data(), buf.data(),
                                             buf.data(), buf.data(), false, ok::ConvAlgorithm::winograd),
                    std::invalid_argument);
  BOOST_CHECK_THROW(ok::conv2d_backward_weights(shape(1, 1, 4, 4, 1, 3, 3, 2, 1), buf.data(), buf.data(),
                                                buf.data(), nullptr, buf.data(), ok::ConvAlgorithm::winograd),
                    std::invalid_argument);
  BOOST_CHECK_THROW(ok::conv2d_forward(shape(1, 1, 9, 9, 1, 3, 3, 3, 1), buf.data(), buf.data(),
                                       nullptr, buf.data(), buf.data(), ok::ConvAlgorithm::winograd4),
                    std::invalid_argument);
  BOOST_CHECK_THROW(ok::conv2d_backward_weights(shape(1, 1, 4, 4, 1, 3, 3, 1, 3), buf.data(), buf.data(),
                                                buf.data(), nullptr, buf.data(), ok::ConvAlgorithm::winograd4),
                    std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(automatic_takes_winograd_for_resnet_3x3_stride_1) {
  auto is = [](const ok::Conv2dShape& g, ok::ConvAlgorithm a) { return ok::conv2d_automatic_algorithm(g) == a; };
  // 4x4 tiles fit 32, 16, 8, 28 and 7 pixels (0.5625x F(2x2, 3x3)'s products), with enough
  // of them.
  BOOST_TEST(is(shape(128, 64, 32, 32, 64, 3, 3, 1, 1), ok::ConvAlgorithm::winograd4));
  BOOST_TEST(is(shape(128, 512, 4, 4, 512, 3, 3, 1, 1), ok::ConvAlgorithm::winograd4));
  BOOST_TEST(is(shape(32, 64, 28, 28, 64, 3, 3, 1, 1), ok::ConvAlgorithm::winograd4));
  BOOST_TEST(is(shape(32, 256, 7, 7, 256, 3, 3, 1, 1), ok::ConvAlgorithm::winograd4));
  // 14x14 leaves 4x4 tiles a quarter empty (0.73x); 4x4 at batch 32 is 32 tiles.
  BOOST_TEST(is(shape(32, 128, 14, 14, 128, 3, 3, 1, 1), ok::ConvAlgorithm::winograd));
  BOOST_TEST(is(shape(32, 512, 4, 4, 512, 3, 3, 1, 1), ok::ConvAlgorithm::winograd));
  BOOST_TEST(is(shape(1, 64, 32, 32, 64, 3, 3, 1, 1), ok::ConvAlgorithm::winograd));
  BOOST_TEST(is(shape(128, 3, 32, 32, 64, 3, 3, 1, 1), ok::ConvAlgorithm::direct));
  // 8 tiles or fewer run direct (layer 4 at batch 1 and 2); 16 take F(2x2, 3x3).
  BOOST_TEST(is(shape(1, 512, 4, 4, 512, 3, 3, 1, 1), ok::ConvAlgorithm::direct));
  BOOST_TEST(is(shape(2, 512, 4, 4, 512, 3, 3, 1, 1), ok::ConvAlgorithm::direct));
  BOOST_TEST(is(shape(4, 512, 4, 4, 512, 3, 3, 1, 1), ok::ConvAlgorithm::winograd));
  BOOST_TEST(is(shape(1, 256, 8, 8, 256, 3, 3, 1, 1), ok::ConvAlgorithm::winograd));
  // The weight gradient: F(4x4, 3x3) from 65536 tiles x channels on AVX-512, 32768 on the
  // other targets (128 tiles of layer 4 won on AVX3 and AVX2; 128 tiles of 256 channels and
  // 64 of 512 won on AVX2 and lost on AVX3; 32 of 512 lost on both). The rule follows the
  // target that runs, so each compiled one is pinned in turn.
  auto weights_is = [](const ok::Conv2dShape& g, ok::ConvAlgorithm a) {
    return ok::conv2d_automatic_weight_algorithm(g) == a;
  };
  for (const auto& target : ok::available_targets()) {
    ok::use_target(target);
    BOOST_TEST_CONTEXT("target " << target) {
      const auto middle = target.rfind("AVX3", 0) == 0 ? ok::ConvAlgorithm::winograd : ok::ConvAlgorithm::winograd4;
      BOOST_TEST(weights_is(shape(128, 64, 32, 32, 64, 3, 3, 1, 1), ok::ConvAlgorithm::winograd4));
      BOOST_TEST(weights_is(shape(128, 256, 8, 8, 256, 3, 3, 1, 1), ok::ConvAlgorithm::winograd4));
      BOOST_TEST(weights_is(shape(32, 64, 28, 28, 64, 3, 3, 1, 1), ok::ConvAlgorithm::winograd4));
      BOOST_TEST(weights_is(shape(128, 512, 4, 4, 512, 3, 3, 1, 1), ok::ConvAlgorithm::winograd4));
      BOOST_TEST(weights_is(shape(32, 256, 7, 7, 256, 3, 3, 1, 1), middle));
      BOOST_TEST(weights_is(shape(32, 256, 8, 8, 256, 3, 3, 1, 1), middle));
      BOOST_TEST(weights_is(shape(64, 512, 4, 4, 512, 3, 3, 1, 1), middle));
      BOOST_TEST(weights_is(shape(32, 512, 4, 4, 512, 3, 3, 1, 1), ok::ConvAlgorithm::winograd));
      BOOST_TEST(weights_is(shape(32, 128, 14, 14, 128, 3, 3, 1, 1), ok::ConvAlgorithm::winograd));
      BOOST_TEST(weights_is(shape(128, 3, 32, 32, 64, 3, 3, 1, 1), ok::ConvAlgorithm::direct));
    }
  }
  ok::use_best_target();
  // Stride 2: the stride-2 forms where 4x4 tiles fit (ResNet-18's 16, 8 and 4 pixel outputs
  // at batch 128 and 32, Fashion-MNIST's 14 and 7), with at least 128 tiles, for all three
  // passes.
  BOOST_TEST(is(shape(128, 64, 32, 32, 128, 3, 3, 2, 1), ok::ConvAlgorithm::winograd4));
  BOOST_TEST(is(shape(128, 256, 8, 8, 512, 3, 3, 2, 1), ok::ConvAlgorithm::winograd4));
  BOOST_TEST(is(shape(32, 64, 28, 28, 128, 3, 3, 2, 1), ok::ConvAlgorithm::winograd4));
  BOOST_TEST(is(shape(32, 256, 8, 8, 512, 3, 3, 2, 1), ok::ConvAlgorithm::direct));
  BOOST_TEST(is(shape(1, 64, 32, 32, 128, 3, 3, 2, 1), ok::ConvAlgorithm::direct));
  BOOST_TEST(is(shape(128, 3, 32, 32, 64, 3, 3, 2, 1), ok::ConvAlgorithm::direct));
  BOOST_TEST(weights_is(shape(128, 64, 32, 32, 128, 3, 3, 2, 1), ok::ConvAlgorithm::winograd4));
  BOOST_TEST(weights_is(shape(32, 128, 16, 16, 256, 3, 3, 2, 1), ok::ConvAlgorithm::winograd4));
  BOOST_TEST(weights_is(shape(32, 256, 8, 8, 512, 3, 3, 2, 1), ok::ConvAlgorithm::direct));
  BOOST_TEST(weights_is(shape(128, 3, 32, 32, 64, 3, 3, 2, 1), ok::ConvAlgorithm::direct));
  // 1x1 outputs (layer 4 of an 8x8 input): a quarter of each Winograd tile would be used.
  BOOST_TEST(is(shape(2, 32, 1, 1, 32, 3, 3, 1, 1), ok::ConvAlgorithm::direct));
  BOOST_TEST(is(shape(16, 32, 2, 2, 32, 3, 3, 1, 1), ok::ConvAlgorithm::winograd));
  BOOST_TEST(is(shape(2, 32, 2, 2, 32, 3, 3, 1, 1), ok::ConvAlgorithm::direct));  // 2 tiles
}
