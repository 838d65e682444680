// ResNet-18: PyTorch's names, shapes and counts; the whole network gradient-checked in
// double; no heap allocation in a steady-state training step.
#define BOOST_TEST_MODULE resnet18
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <new>
#include <string>
#include <vector>
import odyssey;
import odyssey.testing;

using namespace odyssey;
namespace ot = odyssey::testing;

// Every operator new in this program is counted, so a test can tell whether a region of
// code touched the heap.
namespace {
std::atomic<std::size_t> g_allocations{0};
}
void* operator new(std::size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  ++g_allocations;
  const std::size_t al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

template <class Net>
std::map<std::string, std::vector<std::size_t>> shapes_of(Net& net) {
  std::map<std::string, std::vector<std::size_t>> m;
  net.visit_state([&](const StateEntry<typename Net::value_type>& e) { m[e.name] = e.shape; });
  return m;
}

}  // namespace

BOOST_AUTO_TEST_CASE(pytorch_names_shapes_and_counts) {
  auto net = std::make_unique<models::ResNet18<float, 3, 32, 32, 10>>(1);
  const auto state = net->state();
  BOOST_TEST(state.size() == 122u);
  BOOST_TEST(net->parameters().size() == 62u);
  BOOST_TEST(net->parameter_count() == 11'173'962u);
  const auto shapes = shapes_of(*net);
  using V = std::vector<std::size_t>;
  BOOST_TEST((shapes.at("conv1.weight") == V{64, 3, 3, 3}));
  BOOST_TEST((shapes.at("bn1.running_var") == V{64}));
  BOOST_TEST((shapes.at("bn1.num_batches_tracked") == V{}));
  BOOST_TEST((shapes.at("layer1.0.conv1.weight") == V{64, 64, 3, 3}));
  BOOST_TEST((shapes.at("layer2.0.conv1.weight") == V{128, 64, 3, 3}));
  BOOST_TEST((shapes.at("layer2.0.shortcut.0.weight") == V{128, 64, 1, 1}));
  BOOST_TEST((shapes.at("layer2.0.shortcut.1.bias") == V{128}));
  BOOST_TEST((shapes.at("layer4.1.bn2.running_mean") == V{512}));
  BOOST_TEST((shapes.at("linear.weight") == V{10, 512}));
  BOOST_TEST((shapes.at("linear.bias") == V{10}));
  BOOST_TEST(shapes.count("layer1.0.shortcut.0.weight") == 0u);  // identity shortcuts
  BOOST_TEST(shapes.count("layer3.1.shortcut.0.weight") == 0u);
  // PyTorch's state_dict order starts conv1, bn1.*, layer1.0.conv1 and ends linear.*.
  BOOST_TEST(state.front().name == "conv1.weight");
  BOOST_TEST(state[1].name == "bn1.weight");
  BOOST_TEST(state[5].name == "bn1.num_batches_tracked");
  BOOST_TEST(state[6].name == "layer1.0.conv1.weight");
  BOOST_TEST(state.back().name == "linear.bias");
  // Only conv and linear weights decay by default.
  std::size_t decaying = 0;
  for (const auto& e : state) decaying += e.decays();
  BOOST_TEST(decaying == 21u);  // 20 convs + linear

  auto gray = std::make_unique<models::ResNet18<float, 1, 32, 32, 10>>(1);
  BOOST_TEST(gray->parameter_count() == 11'172'810u);
}

BOOST_AUTO_TEST_CASE(initialisation_follows_pytorch_defaults_and_the_seed) {
  auto a = std::make_unique<models::ResNet18<float, 3, 8, 8, 10, 4>>(7);
  auto b = std::make_unique<models::ResNet18<float, 3, 8, 8, 10, 4>>(7);
  auto c = std::make_unique<models::ResNet18<float, 3, 8, 8, 10, 4>>(8);
  const auto sa = a->state(), sb = b->state(), sc = c->state();
  bool differs = false;
  for (std::size_t i = 0; i < sa.size(); ++i) {
    if (sa[i].counter) continue;
    for (std::size_t j = 0; j < sa[i].value.size(); ++j) {
      BOOST_REQUIRE(sa[i].value[j] == sb[i].value[j]);
      differs = differs || sa[i].value[j] != sc[i].value[j];
    }
    if (sa[i].kind == StateKind::norm_weight || sa[i].kind == StateKind::running_var)
      for (float v : sa[i].value) BOOST_REQUIRE(v == 1.0f);
    if (sa[i].kind == StateKind::norm_bias || sa[i].kind == StateKind::running_mean)
      for (float v : sa[i].value) BOOST_REQUIRE(v == 0.0f);
    if (sa[i].kind == StateKind::weight) {
      std::size_t fan_in = 1;
      for (std::size_t d = 1; d < sa[i].shape.size(); ++d) fan_in *= sa[i].shape[d];
      const float bound = 1.0f / std::sqrt(float(fan_in));
      for (float v : sa[i].value) BOOST_REQUIRE(std::abs(v) <= bound);
    }
  }
  BOOST_TEST(differs);
}

BOOST_AUTO_TEST_CASE(whole_network_gradient_check_in_double) {
  using Net = models::ResNet18<double, 3, 8, 8, 10, 4>;
  auto net = std::make_unique<Net>(3);
  Activation<double, Shape<3, 8, 8>> x(3);
  const auto v = ot::random_values(x.size(), 5);
  for (std::size_t i = 0; i < v.size(); ++i) x.data()[i] = v[i];
  Context<double> ctx;
  ot::NetCheckOptions opt;
  opt.grad.rtol = 1e-5;
  opt.grad.step = 1e-6;  // ReLU kinks: keep the differences local
  // The 16-channel 3x3 layers run Winograd, whose transforms mix every weight into every
  // output's rounding: a weight that only meets zeros (inputs a ReLU cut) has gradient 0,
  // but moving it still changes the loss by rounding noise, measured up to 6e-9 in its
  // central differences (above the 3e-9 the default floor estimates from the loss). At every
  // other tensor's worst element the gradient is 2e-3 or more, so a floor of 2e-8 is 1e-5
  // of those and still fails any gradient that is visibly wrong.
  opt.grad.atol = 2e-8;
  opt.samples_per_tensor = 6;
  opt.input_samples = 40;
  const auto results = ot::check_network<Net, Shape<3, 8, 8>, Shape<10>>(*net, x, ctx, opt);
  BOOST_TEST(results.size() == 63u);  // the input and 62 parameter tensors
  double worst = 0;
  for (const auto& r : results) {
    BOOST_TEST(r.passed, r.report());
    worst = std::max(worst, r.worst_ratio);
  }
  BOOST_TEST_MESSAGE("worst error over the network, as a fraction of the allowed: " << worst);
}

BOOST_AUTO_TEST_CASE(no_heap_allocation_in_a_steady_state_training_step) {
  using Net = models::ResNet18<float, 3, 16, 16, 10, 8>;
  auto net = std::make_unique<Net>(1);
  Sgd<float> sgd(net->parameters(), SgdOptions{});
  SoftmaxCrossEntropy<float, 10> loss;
  Context<float> ctx;
  Activation<float, Shape<3, 16, 16>> x(4);
  Activation<float, Shape<10>> dlogits(4);
  const std::vector<std::int32_t> labels{1, 2, 3, 4};
  auto step = [&] {
    loss.forward(net->forward(x, ctx), labels);
    loss.backward(dlogits);
    net->backward(dlogits, nullptr, ctx);
    sgd.step(0.01);
  };
  step();
  step();
  const std::size_t before = g_allocations.load();
  step();
  const std::size_t during = g_allocations.load() - before;
  BOOST_TEST(during == 0u, "a steady-state step made " << during << " heap allocations");
  // A larger batch reallocates (once), a smaller one reuses.
  x.resize(2);
  dlogits.resize(2);
  const std::vector<std::int32_t> two{0, 1};
  const std::size_t before_small = g_allocations.load();
  loss.forward(net->forward(x, ctx), two);
  loss.backward(dlogits);
  net->backward(dlogits, nullptr, ctx);
  BOOST_TEST(g_allocations.load() - before_small == 0u);
}
