// odyssey.tensor at run time: layouts, checked access, errors, storage, seeded initialisers.
#define BOOST_TEST_MODULE tensor
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>
import odyssey;

using namespace odyssey;

BOOST_AUTO_TEST_CASE(static_tensor_is_row_major_and_checked) {
  Tensor<float, Shape<2, 3, 4>> t;
  BOOST_TEST(t.size() == 24u);
  for (std::size_t i = 0; i < t.size(); ++i) BOOST_TEST(t[i] == 0.0f);  // zero-initialised
  t.at(1, 2, 3) = 7.0f;
  BOOST_TEST(t[1 * 12 + 2 * 4 + 3] == 7.0f);
  BOOST_CHECK_THROW(t.at(2, 0, 0), IndexError);
  BOOST_CHECK_THROW(t.at(0, 3, 0), IndexError);
  try {
    t.at(0, 0, 4);
    BOOST_FAIL("no exception");
  } catch (const IndexError& e) {
    BOOST_TEST(std::string(e.what()) == "index (0,0,4) is outside Shape<2,3,4>");
  }
}

BOOST_AUTO_TEST_CASE(storage_is_aligned_moves_and_clones) {
  Tensor<double, Shape<5, 3>> a;
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(a.data()) % 64 == 0u);
  a.at(4, 2) = 3.5;
  const double* p = a.data();
  Tensor<double, Shape<5, 3>> b = std::move(a);
  BOOST_TEST(b.data() == p);  // a move hands over the buffer
  Tensor<double, Shape<5, 3>> c = b.clone();
  BOOST_TEST(c.data() != b.data());
  BOOST_TEST(c.at(4, 2) == 3.5);
  c.at(4, 2) = 1.0;
  BOOST_TEST(b.at(4, 2) == 3.5);  // the clone is deep
}

BOOST_AUTO_TEST_CASE(activation_is_channels_last_with_runtime_batch) {
  Activation<float, Shape<3, 2, 5>> x(4);
  BOOST_TEST(x.batch() == 4u);
  BOOST_TEST(x.size() == 4u * 30u);
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(x.data()) % 64 == 0u);
  // (n, c, h, w) lives at n*30 + (h*5 + w)*3 + c
  x.at(2, 1, 1, 3) = 9.0f;
  BOOST_TEST(x.data()[2 * 30 + (1 * 5 + 3) * 3 + 1] == 9.0f);
  BOOST_CHECK_THROW(x.at(4, 0, 0, 0), IndexError);
  BOOST_CHECK_THROW(x.at(0, 3, 0, 0), IndexError);
  BOOST_CHECK_THROW(x.at(0, 0, 2, 0), IndexError);
  BOOST_CHECK_THROW(x.expect_batch(5, "input"), ShapeError);
  BOOST_CHECK_NO_THROW(x.expect_batch(4, "input"));
  Activation<float, Shape<10>> v(2);
  v.at(1, 7) = 1.0f;
  BOOST_TEST(v.data()[17] == 1.0f);
}

BOOST_AUTO_TEST_CASE(activation_reuses_its_allocation_when_the_batch_shrinks) {
  Activation<float, Shape<4, 3, 3>> x(8);
  const float* p = x.data();
  x.resize(3);
  BOOST_TEST(x.data() == p);
  BOOST_TEST(x.batch() == 3u);
  x.resize(8);
  BOOST_TEST(x.data() == p);
  x.resize(9);
  BOOST_TEST(x.batch() == 9u);
}

BOOST_AUTO_TEST_CASE(nchw_round_trip) {
  constexpr std::size_t N = 2, C = 3, H = 4, W = 5;
  std::vector<float> src(N * C * H * W);
  for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i);
  Activation<float, Shape<C, H, W>> x;
  x.from_nchw(src.data(), N);
  BOOST_TEST(x.batch() == N);
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t h = 0; h < H; ++h)
        for (std::size_t w = 0; w < W; ++w)
          BOOST_TEST(x.at(n, c, h, w) == src[((n * C + c) * H + h) * W + w]);
  std::vector<float> back(src.size());
  x.to_nchw(back.data());
  BOOST_TEST(back == src);
}

BOOST_AUTO_TEST_CASE(rng_is_reproducible_and_seed_dependent) {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) {
    const auto va = a.next();
    BOOST_TEST(va == b.next());
    BOOST_TEST(va != c.next());
  }
  const auto saved = a.state();
  const auto v1 = a.next();
  a.set_state(saved);
  BOOST_TEST(a.next() == v1);
  // Uniform draws cover [0,1) evenly enough: mean of 100k draws within 0.005 of 1/2.
  Rng r(7);
  double sum = 0, sum2 = 0;
  for (int i = 0; i < 100000; ++i) {
    const double u = r.uniform01();
    BOOST_REQUIRE(u >= 0.0);
    BOOST_REQUIRE(u < 1.0);
    sum += u;
  }
  BOOST_TEST(std::abs(sum / 100000 - 0.5) < 0.005);
  sum = 0;
  for (int i = 0; i < 100000; ++i) {
    const double z = r.normal();
    sum += z;
    sum2 += z * z;
  }
  BOOST_TEST(std::abs(sum / 100000) < 0.02);
  BOOST_TEST(std::abs(sum2 / 100000 - 1.0) < 0.02);
  for (int i = 0; i < 1000; ++i) BOOST_REQUIRE(r.below(7) < 7u);
}

BOOST_AUTO_TEST_CASE(kaiming_uniform_matches_pytorch_bound) {
  // A conv weight [8, 3, 3, 3] has fan_in 27: PyTorch's default bound is 1/sqrt(27).
  Tensor<float, Shape<8, 3, 3, 3>> w;
  Rng rng(1);
  kaiming_uniform(w, rng);
  const double bound = 1.0 / std::sqrt(27.0);
  double lo = 1, hi = -1;
  for (std::size_t i = 0; i < w.size(); ++i) {
    lo = std::min(lo, double(w[i]));
    hi = std::max(hi, double(w[i]));
  }
  BOOST_TEST(lo >= -bound);
  BOOST_TEST(hi <= bound);
  BOOST_TEST(lo < -0.8 * bound);  // 216 draws reach near both ends
  BOOST_TEST(hi > 0.8 * bound);
  Tensor<float, Shape<8, 3, 3, 3>> w2;
  Rng rng2(1);
  kaiming_uniform(w2, rng2);
  for (std::size_t i = 0; i < w.size(); ++i) BOOST_REQUIRE(w[i] == w2[i]);
}

BOOST_AUTO_TEST_CASE(shape_names_for_messages) {
  BOOST_TEST((Shape<64, 32, 32>::str() == "Shape<64,32,32>"));
  BOOST_TEST(Shape<10>::str() == "Shape<10>");
}

BOOST_AUTO_TEST_CASE(every_available_target_can_be_pinned) {
  const auto targets = kernels::available_targets();
  BOOST_TEST_REQUIRE(!targets.empty());
  BOOST_TEST(targets.back() == "EMU128");  // the portable fallback is always built
  for (const auto& t : targets) {
    kernels::use_target(t);
    BOOST_TEST(kernels::active_target() == t);
  }
  kernels::use_best_target();
  BOOST_TEST(kernels::active_target() == targets.front());
  BOOST_CHECK_THROW(kernels::use_target("NEON"), std::invalid_argument);
}
