// ResNet-34 and PreAct ResNet-18, composed from the library's parts: PyTorch's names, order and
// parameter counts (tests/fixtures/*_w4.safetensors, made by make_model_references.py), its
// logits in eval and train mode from the same weights, and whole-network gradient checks in
// double at small width.
#define BOOST_TEST_MODULE models
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>
import odyssey;
import odyssey.testing;

using namespace odyssey;
namespace ot = odyssey::testing;

namespace {

std::string fixture(const std::string& name) { return std::string(ODYSSEY_FIXTURES) + "/" + name; }

/// Loads the fixture's weights into a width-4 model and compares its logits with PyTorch's.
template <class Net>
void check_against_pytorch(const std::string& file_name) {
  using In = typename Net::input_shape;
  auto net = std::make_unique<Net>(0);
  const auto file = SafeTensors::read(fixture(file_name));
  std::vector<TensorSlot> slots;
  std::vector<std::string> names;
  for (auto& e : state(*net)) {
    names.push_back(e.name);
    slots.push_back(e.counter ? TensorSlot{e.name, DType::i64, {}, e.counter}
                              : TensorSlot{e.name, DType::f32, e.shape, e.value.data()});
  }
  constexpr std::size_t n = 3;
  std::vector<float> input(n * In::size), eval_logits(n * 10), train_logits(n * 10);
  slots.push_back({"test.input", DType::f32, {n, In::extents[0], In::extents[1], In::extents[2]}, input.data()});
  slots.push_back({"test.logits_eval", DType::f32, {n, 10}, eval_logits.data()});
  slots.push_back({"test.logits_train", DType::f32, {n, 10}, train_logits.data()});
  load_tensors(file, slots);  // every tensor of the file has a slot, and every slot a tensor

  const auto order = nlohmann::json::parse(file.metadata().at("state_dict_order")).get<std::vector<std::string>>();
  BOOST_TEST(names == order, boost::test_tools::per_element());

  Activation<float, In> x;
  x.from_nchw(input.data(), n);
  Context<float> ctx;
  ctx.mode = Mode::inference;
  const auto& ye = net->forward(x, ctx);
  std::vector<float> logits(ye.span().begin(), ye.span().end());
  auto r = ot::compare<float, float>(logits, eval_logits, 1e-4, 1e-5);
  BOOST_TEST(r.passed, file_name << " eval mode: " << r.report());
  ctx.mode = Mode::training;
  const auto& yt = net->forward(x, ctx);
  logits.assign(yt.span().begin(), yt.span().end());
  r = ot::compare<float, float>(logits, train_logits, 1e-4, 1e-5);
  BOOST_TEST(r.passed, file_name << " train mode: " << r.report());
}

/// PyTorch's counts of the width-64 model, from the fixture's metadata.
template <class Net3, class Net1>
void check_counts(const std::string& file_name) {
  const auto meta = SafeTensors::read(fixture(file_name)).metadata();
  auto three = std::make_unique<Net3>(1);
  auto one = std::make_unique<Net1>(1);
  for (auto [net_count, net_entries, net_tensors, key] :
       {std::tuple{parameter_count(*three), state(*three).size(), parameters(*three).size(), "width64_in3"},
        std::tuple{parameter_count(*one), state(*one).size(), parameters(*one).size(), "width64_in1"}}) {
    const auto c = nlohmann::json::parse(meta.at(key));
    BOOST_TEST(net_count == std::size_t(c["parameters"]), file_name << " " << key);
    BOOST_TEST(net_entries == std::size_t(c["state_entries"]), file_name << " " << key);
    BOOST_TEST(net_tensors == std::size_t(c["parameter_tensors"]), file_name << " " << key);
  }
}

template <class Net>
void gradient_check(std::size_t expected_tensors) {
  using In = typename Net::input_shape;
  auto net = std::make_unique<Net>(3);
  Activation<double, In> x(3);
  const auto v = ot::random_values(x.size(), 5);
  for (std::size_t i = 0; i < v.size(); ++i) x.data()[i] = v[i];
  Context<double> ctx;
  ot::NetCheckOptions opt;
  opt.grad.rtol = 1e-5;
  opt.grad.step = 1e-6;  // ReLU kinks: keep the differences local
  opt.grad.atol = 2e-8;  // as resnet18_test: Winograd's rounding noise on gradients that are 0
  opt.samples_per_tensor = 3;
  opt.input_samples = 20;
  const auto results = ot::check_network<Net, In, Shape<10>>(*net, x, ctx, opt);
  BOOST_TEST(results.size() == expected_tensors + 1);  // the input too
  for (const auto& r : results) BOOST_TEST(r.passed, r.report());
}

}  // namespace

BOOST_AUTO_TEST_CASE(resnet34_matches_pytorch) {
  check_against_pytorch<models::ResNet34<float, 3, 32, 32, 10, 4>>("resnet34_w4.safetensors");
  check_counts<models::ResNet34<float, 3, 32, 32, 10>, models::ResNet34<float, 1, 32, 32, 10>>("resnet34_w4.safetensors");
}

BOOST_AUTO_TEST_CASE(preact_resnet18_matches_pytorch_at_28x28) {
  check_against_pytorch<models::PreActResNet18<float, 3, 28, 28, 10, 4>>("preact_resnet18_w4.safetensors");
  check_counts<models::PreActResNet18<float, 3, 28, 28, 10>, models::PreActResNet18<float, 1, 28, 28, 10>>(
      "preact_resnet18_w4.safetensors");
}

BOOST_AUTO_TEST_CASE(resnet34_whole_network_gradient_check_in_double) {
  gradient_check<models::ResNet34<double, 3, 8, 8, 10, 4>>(110);
}

BOOST_AUTO_TEST_CASE(preact_resnet18_whole_network_gradient_check_in_double) {
  gradient_check<models::PreActResNet18<double, 3, 8, 8, 10, 4>>(54);
}
