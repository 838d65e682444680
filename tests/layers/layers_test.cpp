// The typed layers as units: every layer's backward (and the compositions' routing of
// gradients) against central differences in double, through the layer API.
#define BOOST_TEST_MODULE layers
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
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
  // BN then ReLU runs fused (one pass); the last BN stands alone.
  Sequential<Conv2d<double, Shape<3, 5, 5>, 5, 3, 1, 1>, BatchNorm2d<double, Shape<5, 5, 5>>, ReLU<double, Shape<5, 5, 5>>,
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

BOOST_AUTO_TEST_CASE(maxpool_flatten_and_a_classifier) {
  Rng rng(12);
  // 3x7x7 -> conv 4x7x7 -> maxpool k3 s2 p1 -> 4x4x4 -> flatten 64 -> linear 5
  Sequential<Conv2d<double, Shape<3, 7, 7>, 4, 3, 1, 1>, MaxPool2d<double, Shape<4, 7, 7>, 3, 2, 1>,
             Flatten<double, Shape<4, 4, 4>>, Linear<double, 64, 5>>
      net(rng);
  check(net, 2, "conv -> maxpool k3 s2 p1 -> flatten -> linear");
  Sequential<MaxPool2d<double, Shape<5, 6, 6>, 2>, Flatten<double, Shape<5, 3, 3>>> plain(rng);
  check(plain, 3, "maxpool k2 s2 -> flatten");
}

BOOST_AUTO_TEST_CASE(flatten_is_pytorch_order) {
  Context<float> ctx;
  Flatten<float, Shape<2, 3, 4>> flat;
  Activation<float, Shape<2, 3, 4>> x(2);
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t c = 0; c < 2; ++c)
      for (std::size_t h = 0; h < 3; ++h)
        for (std::size_t w = 0; w < 4; ++w) x.at(n, c, h, w) = float(1000 * n + 100 * c + 10 * h + w);
  const auto& y = flat.forward(x, ctx);
  for (std::size_t n = 0; n < 2; ++n)  // x.view(N, -1) of the NCHW tensor: index c*12 + h*4 + w
    for (std::size_t i = 0; i < 24; ++i)
      BOOST_REQUIRE(y.at(n, i) == float(1000 * n + 100 * (i / 12) + 10 * (i / 4 % 3) + i % 4));
}

BOOST_AUTO_TEST_CASE(dropout_training_inference_and_determinism) {
  using S = Shape<3, 5, 5>;
  Dropout<double, S> drop(0.3);
  Context<double> ctx;
  ctx.seed = 5;
  Activation<double, S> x(4);
  const auto v = ot::random_values(x.size(), 71);
  std::copy(v.begin(), v.end(), x.data());
  // Gradient check with the mask of one fixed step.
  const auto r = ot::random_values(x.size(), 72);
  auto loss = [&] {
    ctx.begin_step(9);
    const auto& y = drop.forward(x, ctx);
    double l = 0;
    for (std::size_t i = 0; i < r.size(); ++i) l += r[i] * y.data()[i];
    return l;
  };
  loss();
  Activation<double, S> dy(4), dx;
  std::copy(r.begin(), r.end(), dy.data());
  drop.backward(dy, &dx, ctx);
  const auto g = ot::check_gradient("dropout", x.span(), dx.span(), loss);
  BOOST_TEST(g.passed, g.report());
  // About 30% zeroed, the rest scaled by 1/0.7.
  ctx.begin_step(9);
  const auto& y = drop.forward(x, ctx);
  std::size_t zeros = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (y.data()[i] == 0) ++zeros;
    else BOOST_REQUIRE(std::abs(y.data()[i] - x.data()[i] / 0.7) < 1e-12);
  }
  BOOST_TEST(zeros > 60u);  // 300 elements, p = 0.3: 90 expected, sd 7.9
  BOOST_TEST(zeros < 120u);
  // The mask is a function of (seed, step, draw): the same step again gives the same mask,
  // another step another one, a second draw in the same step another one.
  std::vector<double> first(y.span().begin(), y.span().end());
  ctx.begin_step(9);
  const auto& again = drop.forward(x, ctx);
  BOOST_TEST((std::vector<double>(again.span().begin(), again.span().end()) == first));
  ctx.begin_step(10);
  const auto& other = drop.forward(x, ctx);
  BOOST_TEST((std::vector<double>(other.span().begin(), other.span().end()) != first));
  // Inference: the identity, and its gradient passes through.
  ctx.mode = Mode::inference;
  BOOST_TEST(&drop.forward(x, ctx) == &x);
  Activation<double, S> dxi;
  drop.backward(dy, &dxi, ctx);
  BOOST_TEST((std::vector<double>(dxi.span().begin(), dxi.span().end()) == r));
  using Drop = Dropout<double, S>;
  BOOST_CHECK_THROW(Drop(1.0), ValueError);
  BOOST_CHECK_THROW(Drop(-0.1), ValueError);
}

BOOST_AUTO_TEST_CASE(residual_joins_fused_and_unfused) {
  using S = Shape<3, 5, 4>;
  using Convs = Sequential<Conv2d<double, S, 3, 3, 1, 1>, ReLU<double, S>, Conv2d<double, S, 3, 3, 1, 1>>;
  using EndsInBn = Sequential<Conv2d<double, S, 3, 3, 1, 1>, BatchNorm2d<double, S>>;
  Rng rng(6);
  Residual<Convs, Identity<double, S>, Join::add_relu> unfused_relu(rng);
  check(unfused_relu, 2, "Residual(convs) + x, relu: a join pass of its own");
  Residual<Convs, Identity<double, S>, Join::add> unfused_add(rng);
  check(unfused_add, 2, "Residual(convs) + x");
  Residual<EndsInBn, Identity<double, S>, Join::add_relu> fused_relu(rng);
  check(fused_relu, 3, "Residual(conv, bn) + x, relu: the join inside the batch norm");
  Residual<EndsInBn, Identity<double, S>, Join::add> fused_add(rng);
  check(fused_add, 3, "Residual(conv, bn) + x: the add inside the batch norm");
  Residual<EndsInBn, Sequential<Conv2d<double, S, 3, 1, 1, 0, true>>, Join::add_relu> projected(rng);
  check(projected, 2, "Residual(conv, bn) + conv1x1(x)");
}

BOOST_AUTO_TEST_CASE(pre_activation_blocks) {
  Rng rng(7);
  PreActBlock<double, Shape<4, 6, 6>, 4, 1> identity(rng);
  check(identity, 2, "PreActBlock identity");
  PreActBlock<double, Shape<3, 7, 5>, 6, 2> projection(rng);
  check(projection, 3, "PreActBlock projection stride 2");
}

// The one rule of backward: it adds into its sink. Into a sink that already holds g0, every
// layer and composition must leave g0 + (what it writes into an empty sink).
template <class Net>
void check_adds_into_sink(Net& net, std::size_t batch, const char* what) {
  using In = typename Net::input_shape;
  using Out = typename Net::output_shape;
  Context<double> ctx;
  Activation<double, In> x(batch);
  const auto v = ot::random_values(x.size(), 51);
  std::copy(v.begin(), v.end(), x.data());
  net.forward(x, ctx);
  Activation<double, Out> dy(batch);
  const auto r = ot::random_values(dy.size(), 52);
  std::copy(r.begin(), r.end(), dy.data());
  Activation<double, In> fresh, held(batch);
  net.backward(dy, &fresh, ctx);
  const auto g0 = ot::random_values(held.size(), 53);
  std::copy(g0.begin(), g0.end(), held.data());
  net.backward(dy, Grad<double, In>::adding_to(held), ctx);
  double worst = 0;
  for (std::size_t i = 0; i < held.size(); ++i)
    worst = std::max(worst, std::abs(held.data()[i] - (g0[i] + fresh.data()[i])));
  BOOST_TEST(worst < 1e-12, what << ": adding into a holding sink is off by " << worst);
}

BOOST_AUTO_TEST_CASE(every_backward_adds_into_its_sink) {
  Rng rng(8);
  using S = Shape<3, 5, 4>;
  Conv2d<double, S, 4, 3, 2, 1> conv(rng);
  check_adds_into_sink(conv, 2, "Conv2d");
  BatchNorm2d<double, S> bn;
  check_adds_into_sink(bn, 3, "BatchNorm2d");
  Sequential<BatchNorm2d<double, S>, ReLU<double, S>> bn_relu(rng);
  check_adds_into_sink(bn_relu, 3, "BatchNorm2d + ReLU (fused)");
  ReLU<double, S> relu;
  check_adds_into_sink(relu, 2, "ReLU");
  Identity<double, S> id;
  check_adds_into_sink(id, 2, "Identity");
  AvgPool2d<double, S, 2, 2> avg;
  check_adds_into_sink(avg, 2, "AvgPool2d");
  GlobalAvgPool<double, S> gap;
  check_adds_into_sink(gap, 2, "GlobalAvgPool");
  Linear<double, 6, 3> linear(rng);
  check_adds_into_sink(linear, 2, "Linear");
  MaxPool2d<double, S, 3, 2, 1> maxpool;
  check_adds_into_sink(maxpool, 2, "MaxPool2d");
  Flatten<double, S> flatten;
  check_adds_into_sink(flatten, 2, "Flatten");
  Dropout<double, S> dropout(0.25);
  check_adds_into_sink(dropout, 2, "Dropout");
  BasicBlock<double, S, 3, 1> block(rng);
  check_adds_into_sink(block, 2, "BasicBlock identity");
  BasicBlock<double, S, 5, 2> down(rng);
  check_adds_into_sink(down, 2, "BasicBlock projection");
  PreActBlock<double, S, 5, 2> pre(rng);
  check_adds_into_sink(pre, 2, "PreActBlock projection");
}

BOOST_AUTO_TEST_CASE(fused_and_unfused_compositions_compute_the_same_function) {
  // An Identity between the batch norm and the ReLU stops the fusion: same function, two passes.
  using S = Shape<4, 3, 5>;
  Rng r1(9), r2(9);
  Sequential<Conv2d<double, S, 4, 3, 1, 1>, BatchNorm2d<double, S>, ReLU<double, S>> fused(r1);
  Sequential<Conv2d<double, S, 4, 3, 1, 1>, BatchNorm2d<double, S>, Identity<double, S>, ReLU<double, S>> plain(r2);
  Context<double> ctx;
  Activation<double, S> x(3), dy(3), dx1, dx2;
  const auto v = ot::random_values(x.size(), 61), r = ot::random_values(dy.size(), 62);
  std::copy(v.begin(), v.end(), x.data());
  std::copy(r.begin(), r.end(), dy.data());
  const auto& y1 = fused.forward(x, ctx);
  const auto& y2 = plain.forward(x, ctx);
  fused.backward(dy, &dx1, ctx);
  plain.backward(dy, &dx2, ctx);
  double worst = 0;
  for (std::size_t i = 0; i < y1.size(); ++i) worst = std::max(worst, std::abs(y1.data()[i] - y2.data()[i]));
  for (std::size_t i = 0; i < dx1.size(); ++i) worst = std::max(worst, std::abs(dx1.data()[i] - dx2.data()[i]));
  BOOST_TEST(worst < 1e-12, "fused and unfused differ by " << worst);
}

// Running statistics and affine parameters away from their initial values, the same for
// every net built from `seed`: a fold that mixed up scale and shift, or channels, shows.
template <class Net>
void randomise_norms(Net& net, std::uint64_t seed) {
  // visit_state, not state(): a Residual of two Sequentials names both parts' state "0.weight".
  net.visit_state("", [&](const StateEntry<double>& e) {
    if (e.counter) return;
    const auto v = ot::random_values(e.value.size(), seed++);
    const bool var = e.kind == StateKind::running_var;
    for (std::size_t i = 0; i < v.size(); ++i) e.value[i] = var ? 0.5 + v[i] * v[i] : v[i];
  });
}

template <class A, class B>
double worst_difference_in_inference(A& folded, B& plain, std::size_t batch, std::uint64_t seed) {
  randomise_norms(folded, 80);
  randomise_norms(plain, 80);
  Context<double> ctx;
  ctx.mode = Mode::inference;
  Activation<double, typename A::input_shape> x(batch);
  const auto v = ot::random_values(x.size(), seed);
  std::copy(v.begin(), v.end(), x.data());
  const auto& y1 = folded.forward(x, ctx);
  const auto& y2 = plain.forward(x, ctx);
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < y1.size(); ++i) {
    worst = std::max(worst, std::abs(y1.data()[i] - y2.data()[i]));
    scale = std::max(scale, std::abs(y2.data()[i]));
  }
  BOOST_TEST(scale > 0.1);  // the outputs are not all zero
  return worst;
}

BOOST_AUTO_TEST_CASE(inference_folds_batch_norms_into_convolutions) {
  // In inference mode a convolution followed by a batch norm runs both, and the ReLU or the
  // residual join after them, in one pass (kernels::ConvEpilogue); an Identity between the
  // convolution and the norm stops that, which gives the reference.
  using In = Shape<3, 7, 6>;
  using S = Shape<5, 7, 6>;
  using D = Shape<5, 4, 3>;
  {
    Rng r1(4), r2(4);
    Sequential<Conv2d<double, In, 5, 3, 1, 1, true>, BatchNorm2d<double, S>, ReLU<double, S>> folded(r1);
    Sequential<Conv2d<double, In, 5, 3, 1, 1, true>, Identity<double, S>, BatchNorm2d<double, S>, ReLU<double, S>>
        plain(r2);
    BOOST_TEST(worst_difference_in_inference(folded, plain, 3, 81) < 1e-12);
  }
  {
    Rng r1(5), r2(5);
    Sequential<Conv2d<double, In, 5, 3, 2, 1>, BatchNorm2d<double, D>> folded(r1);
    Sequential<Conv2d<double, In, 5, 3, 2, 1>, Identity<double, D>, BatchNorm2d<double, D>> plain(r2);
    BOOST_TEST(worst_difference_in_inference(folded, plain, 2, 82) < 1e-12);
  }
  {
    // The join: relu(bn(conv(x)) + bn(conv1x1(x))), both norms folded.
    using Main = Sequential<Conv2d<double, In, 5, 3, 2, 1>, BatchNorm2d<double, D>, ReLU<double, D>,
                            Conv2d<double, D, 5, 3, 1, 1>, BatchNorm2d<double, D>>;
    using MainPlain = Sequential<Conv2d<double, In, 5, 3, 2, 1>, Identity<double, D>, BatchNorm2d<double, D>,
                                 ReLU<double, D>, Conv2d<double, D, 5, 3, 1, 1>, Identity<double, D>,
                                 BatchNorm2d<double, D>>;
    using Short = Sequential<Conv2d<double, In, 5, 1, 2, 0>, BatchNorm2d<double, D>>;
    using ShortPlain = Sequential<Conv2d<double, In, 5, 1, 2, 0>, Identity<double, D>, BatchNorm2d<double, D>>;
    Rng r1(6), r2(6);
    Residual<Main, Short, Join::add_relu> folded(r1);
    Residual<MainPlain, ShortPlain, Join::add_relu> plain(r2);
    BOOST_TEST(worst_difference_in_inference(folded, plain, 3, 83) < 1e-12);
    Residual<Main, Short, Join::add> folded_add(r1);
    Residual<MainPlain, ShortPlain, Join::add> plain_add(r2);
    BOOST_TEST(worst_difference_in_inference(folded_add, plain_add, 2, 84) < 1e-12);
  }
  {
    // A BasicBlock against the same block evaluated part by part (no composition, so no fold).
    using B = BasicBlock<double, Shape<3, 7, 5>, 6, 2>;
    Rng rng(7);
    B block(rng);
    randomise_norms(block, 90);
    Context<double> ctx;
    ctx.mode = Mode::inference;
    Activation<double, Shape<3, 7, 5>> x(2);
    const auto v = ot::random_values(x.size(), 91);
    std::copy(v.begin(), v.end(), x.data());
    const auto& folded = block.forward(x, ctx);
    const std::vector<double> y(folded.span().begin(), folded.span().end());
    auto& m = block.main;
    auto& s = block.shortcut;
    const auto& h = m.template get<1>().forward_join(m.template get<0>().forward(x, ctx), nullptr, true, ctx);
    const auto& shortcut = s.template get<1>().forward(s.template get<0>().forward(x, ctx), ctx);
    const auto& out = m.template get<4>().forward_join(m.template get<3>().forward(h, ctx), &shortcut, true, ctx);
    double worst = 0;
    for (std::size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::abs(y[i] - out.data()[i]));
    BOOST_TEST(worst < 1e-12, "BasicBlock folded and part by part differ by " << worst);
  }
}

BOOST_AUTO_TEST_CASE(state_names_come_from_the_composition) {
  using S = Shape<2, 4, 4>;
  Rng rng(10);
  Chain<Named<"conv1", Conv2d<float, S, 2, 3, 1, 1>>, Named<"bn1", BatchNorm2d<float, S>>, ReLU<float, S>,
        Named<"layer1", Sequential<BasicBlock<float, S, 3, 2>, Named<"extra", BatchNorm2d<float, Shape<3, 2, 2>>>>>>
      net(rng);
  std::vector<std::string> names;
  for (const auto& e : state(net)) names.push_back(e.name);
  const std::vector<std::string> expected{
      "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
      "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.bn1.bias", "layer1.0.bn1.running_mean",
      "layer1.0.bn1.running_var", "layer1.0.bn1.num_batches_tracked", "layer1.0.conv2.weight",
      "layer1.0.bn2.weight", "layer1.0.bn2.bias", "layer1.0.bn2.running_mean", "layer1.0.bn2.running_var",
      "layer1.0.bn2.num_batches_tracked", "layer1.0.shortcut.0.weight", "layer1.0.shortcut.1.weight",
      "layer1.0.shortcut.1.bias", "layer1.0.shortcut.1.running_mean", "layer1.0.shortcut.1.running_var",
      "layer1.0.shortcut.1.num_batches_tracked", "layer1.extra.weight", "layer1.extra.bias",
      "layer1.extra.running_mean", "layer1.extra.running_var", "layer1.extra.num_batches_tracked"};
  BOOST_TEST(names == expected, boost::test_tools::per_element());
  BOOST_TEST(parameters(net).size() == 14u);
  BOOST_TEST(parameter_count(net) == 2u * 2 * 9 + 4 + 3 * 2 * 9 + 6 + 3 * 3 * 9 + 6 + 3 * 2 + 6 + 6);
  // Parts by name.
  BOOST_TEST(&net.get<"conv1">() == &net.get<0>());
  BOOST_TEST(net.get<"layer1">().get<"extra">().channels == 3u);

  // Two unnamed parts with state under one prefix would collide: refused, naming the tensor.
  Chain<Conv2d<float, S, 2, 3, 1, 1>, Conv2d<float, S, 2, 3, 1, 1>> clash(rng);
  try {
    (void)state(clash);
    BOOST_FAIL("no exception");
  } catch (const Error& e) {
    BOOST_TEST(std::string(e.what()).find("'weight' appears twice") != std::string::npos, e.what());
  }
}

#ifndef NDEBUG
BOOST_AUTO_TEST_CASE(debug_builds_check_that_saved_inputs_are_unchanged) {
  Rng rng(11);
  Conv2d<float, Shape<2, 4, 4>, 2, 3, 1, 1> conv(rng);
  Context<float> ctx;
  Activation<float, Shape<2, 4, 4>> x(2), dy(2), dx;
  conv.forward(x, ctx);
  x.data()[3] += 1.0f;  // the caller changed the input between forward and backward
  BOOST_CHECK_THROW(conv.backward(dy, &dx, ctx), Error);
}
#endif

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

BOOST_AUTO_TEST_CASE(inference_with_fixed_weights_keeps_them_prepared) {
  // A context with weights_fixed: inference-mode convolutions keep their prepared weights
  // and compute bitwise what a context without it does; the folded path (a batch norm after
  // the convolution) too. The kept weights are reused as they are: a later change of the
  // parameters is not seen until a new context (so the second call does reuse them).
  using In = Shape<32, 8, 8>;
  using S = Shape<48, 8, 8>;
  using D = Shape<48, 4, 4>;
  using Net = Sequential<Conv2d<float, In, 48, 3, 1, 1>, BatchNorm2d<float, S>, ReLU<float, S>,  // F(2x2): 16 tiles
                         Conv2d<float, S, 48, 3, 2, 1>,                                       // direct, stride 2
                         Conv2d<float, D, 48, 1, 1, 0>>;                                      // direct, 1x1
  Rng rng(8);
  Net net(rng);
  Activation<float, In> x(1);
  const auto v = ot::random_values(x.size(), 92);
  std::copy(v.begin(), v.end(), x.data());
  auto run_on = [&](const Activation<float, In>& in, Context<float>& ctx) {
    const auto& y = net.forward(in, ctx);
    return std::vector<float>(y.span().begin(), y.span().end());
  };
  auto run = [&](Context<float>& ctx) { return run_on(x, ctx); };
  Context<float> plain, fixed;
  plain.mode = fixed.mode = Mode::inference;
  fixed.weights_fixed = true;
  const auto expected = run(plain);
  BOOST_TEST(plain.prepared_weights.empty());
  const auto first = run(fixed);
  BOOST_TEST(fixed.prepared_weights.size() == 3);  // every convolution's
  BOOST_TEST(first == expected);
  BOOST_TEST(run(fixed) == expected);
  // Changed weights: a new context sees them; the fixed one keeps the prepared ones.
  auto& w = net.get<0>().weight.value;
  for (std::size_t i = 0; i < w.size(); ++i) w.data()[i] *= -1.5f;
  Context<float> plain2;
  plain2.mode = Mode::inference;
  const auto changed = run(plain2);
  BOOST_TEST(changed != expected);
  BOOST_TEST(run(fixed) == expected);
  Context<float> fixed2;
  fixed2.mode = Mode::inference;
  fixed2.weights_fixed = true;
  BOOST_TEST(run(fixed2) == changed);
  // A batch of 8 (128 tiles or pixels per convolution, where each prepared weight serves
  // many GEMM rows) keeps them too, and computes what the plain context does.
  Activation<float, In> x8(8);
  const auto v8 = ot::random_values(x8.size(), 93);
  std::copy(v8.begin(), v8.end(), x8.data());
  Context<float> plain8, fixed8;
  plain8.mode = fixed8.mode = Mode::inference;
  fixed8.weights_fixed = true;
  const auto expected8 = run_on(x8, plain8);
  BOOST_TEST(run_on(x8, fixed8) == expected8);
  BOOST_TEST(fixed8.prepared_weights.size() == 3);
  // Training mode keeps nothing.
  Context<float> training;
  training.weights_fixed = true;
  net.forward(x, training);
  BOOST_TEST(training.prepared_weights.empty());
}
