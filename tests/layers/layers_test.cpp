// The typed layers as units: every layer's backward (and the compositions' routing of
// gradients) against central differences in double, through the layer API.
#define BOOST_TEST_MODULE layers
#include <boost/test/unit_test.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>
import odyssey;
import odyssey.testing;

using namespace odyssey;
namespace ot = odyssey::testing;

namespace {

// Steps of 1e-6: with 1e-4, some perturbations move a ReLU input across zero, and the
// difference quotient then measures the kink, not the gradient.
ot::NetCheckOptions relu_safe() {
  ot::NetCheckOptions o;
  o.grad.step = 1e-6;
  return o;
}

template <class Net>
void check(Net& net, std::size_t batch, const std::string& what, ot::NetCheckOptions opt = relu_safe()) {
  using In = typename Net::input_shape;
  using Out = typename Net::output_shape;
  Activation<double, In> x(batch);
  const auto v = ot::random_values(x.size(), 17);
  for (std::size_t i = 0; i < v.size(); ++i) x.data()[i] = v[i];
  Context<double> ctx;
  for (const auto& r : ot::check_network<Net, In, Out>(net, x, ctx, opt))
    BOOST_TEST(r.passed, what << " " << r.report());
}

}  // namespace

BOOST_AUTO_TEST_CASE(conv2d_with_bias) {
  Rng rng(1);
  Conv2d<double, Shape<3, 5, 7>, 4, 3, 2, 1, true> conv(rng);
  check(conv, 2, "Conv2d 3->4 3x3 s2 p1 bias");
}

BOOST_AUTO_TEST_CASE(batchnorm_with_fused_relu_and_without) {
  Rng rng(2);
  Sequential<Conv2d<double, Shape<3, 5, 5>, 5, 3, 1, 1>, BatchNorm2d<double, Shape<5, 5, 5>, Post::relu>,
             BatchNorm2d<double, Shape<5, 5, 5>>>
      net(rng);
  check(net, 3, "conv -> bn+relu -> bn");
}

BOOST_AUTO_TEST_CASE(pools_relu_and_linear) {
  Rng rng(3);
  Sequential<ReLU<double, Shape<3, 8, 8>>, AvgPool2d<double, Shape<3, 8, 8>, 3, 2>,
             GlobalAvgPool<double, Shape<3, 3, 3>>, Linear<double, 3, 4>>
      net(rng);
  check(net, 2, "relu -> avgpool -> global pool -> linear");
}

BOOST_AUTO_TEST_CASE(basic_block_identity_and_projection) {
  Rng rng(4);
  BasicBlock<double, Shape<4, 6, 6>, 4, 1> identity(rng);
  check(identity, 2, "BasicBlock identity");
  BasicBlock<double, Shape<3, 7, 5>, 6, 2> projection(rng);
  check(projection, 3, "BasicBlock projection stride 2");
  BasicBlock<double, Shape<3, 4, 4>, 5, 1> widen(rng);
  check(widen, 2, "BasicBlock projection stride 1");
}

BOOST_AUTO_TEST_CASE(residual_add_with_and_without_relu) {
  Context<double> ctx;
  Activation<double, Shape<3, 4, 5>> a(2), b(2);
  const auto va = ot::random_values(a.size(), 31), vb = ot::random_values(b.size(), 32);
  const auto r = ot::random_values(a.size(), 33);
  for (std::size_t i = 0; i < va.size(); ++i) a.data()[i] = va[i], b.data()[i] = vb[i];
  auto check_join = [&](auto& join, const char* what) {
    auto loss = [&] {
      const auto& y = join.forward(a, b, ctx);
      double l = 0;
      for (std::size_t i = 0; i < r.size(); ++i) l += r[i] * y.data()[i];
      return l;
    };
    loss();
    Activation<double, Shape<3, 4, 5>> dy(2), dsum;
    for (std::size_t i = 0; i < r.size(); ++i) dy.data()[i] = r[i];
    join.backward(dy, dsum, ctx);
    // The same gradient reaches both inputs.
    const auto ra = ot::check_gradient(std::string(what) + " da", a.span(), dsum.span(), loss, relu_safe().grad);
    const auto rb = ot::check_gradient(std::string(what) + " db", b.span(), dsum.span(), loss, relu_safe().grad);
    BOOST_TEST(ra.passed, ra.report());
    BOOST_TEST(rb.passed, rb.report());
  };
  ResidualAdd<double, Shape<3, 4, 5>, Shape<3, 4, 5>, true> with_relu;
  ResidualAdd<double, Shape<3, 4, 5>, Shape<3, 4, 5>, false> plain;
  check_join(with_relu, "add+relu");
  check_join(plain, "add");
}

BOOST_AUTO_TEST_CASE(softmax_cross_entropy_layer) {
  SoftmaxCrossEntropy<double, 5> loss(0.1);
  Activation<double, Shape<5>> z(3);
  const auto v = ot::random_values(z.size(), 9, -3, 3);
  for (std::size_t i = 0; i < v.size(); ++i) z.data()[i] = v[i];
  const std::vector<std::int32_t> labels{4, 0, 2};
  auto f = [&] { return loss.forward(z, labels).loss; };
  f();
  Activation<double, Shape<5>> dz;
  loss.backward(dz);
  const auto r = ot::check_gradient("cross-entropy layer", z.span(), dz.span(), f);
  BOOST_TEST(r.passed, r.report());
  const std::vector<std::int32_t> bad{4, 5, 2};
  BOOST_CHECK_THROW(loss.forward(z, bad), ValueError);
  const std::vector<std::int32_t> short_labels{1};
  BOOST_CHECK_THROW(loss.forward(z, short_labels), ShapeError);
}

BOOST_AUTO_TEST_CASE(errors_a_user_can_act_on) {
  Rng rng(5);
  BatchNorm2d<float, Shape<3, 1, 1>> bn;
  Context<float> ctx;
  Activation<float, Shape<3, 1, 1>> x(1);
  try {
    bn.forward(x, ctx);
    BOOST_FAIL("no exception");
  } catch (const ValueError& e) {
    BOOST_TEST(std::string(e.what()).find("more than one value per channel") != std::string::npos, e.what());
  }
  ctx.mode = Mode::inference;
  BOOST_CHECK_NO_THROW(bn.forward(x, ctx));  // inference with one value is fine

  Conv2d<float, Shape<3, 4, 4>, 2, 3, 1, 1> conv(rng);
  Activation<float, Shape<2, 4, 4>> dy(2);
  Activation<float, Shape<3, 4, 4>> dx;
  Context<float> train;
  BOOST_CHECK_THROW(conv.backward(dy, &dx, train), Error);  // no forward yet
  Activation<float, Shape<3, 4, 4>> in(3);
  conv.forward(in, train);
  BOOST_CHECK_THROW(conv.backward(dy, &dx, train), ShapeError);  // batch 2 vs 3
}

BOOST_AUTO_TEST_CASE(scratch_is_reused_in_stack_order) {
  Scratch<float> s;
  {
    auto a = s.take();
    auto b = s.take();
    auto va = a.view<Shape<4>>(3);
    auto vb = b.view<Shape<8>>(2);
    BOOST_TEST(va.data() != vb.data());
  }
  BOOST_TEST(s.slots() == 2u);
  {
    auto a = s.take();
    auto b = s.take();
  }
  BOOST_TEST(s.slots() == 2u);  // nothing new
}
