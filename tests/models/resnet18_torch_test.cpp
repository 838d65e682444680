// ResNet-18 (width 4) with weights saved by PyTorch (tests/fixtures/resnet18_w4.safetensors,
// made by tests/fixtures/make_references.py) gives PyTorch's logits, in eval and train mode.
#define BOOST_TEST_MODULE resnet18_torch
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>
import odyssey;
import odyssey.testing;

using namespace odyssey;
namespace ot = odyssey::testing;

BOOST_AUTO_TEST_CASE(forward_matches_pytorch_in_both_modes) {
  using Net = models::ResNet18<float, 3, 32, 32, 10, 4>;
  auto net = std::make_unique<Net>(0);
  const auto file = SafeTensors::read(std::string(ODYSSEY_FIXTURES) + "/resnet18_w4.safetensors");
  std::vector<TensorSlot> slots;
  for (auto& e : net->state())
    slots.push_back(e.counter ? TensorSlot{e.name, DType::i64, {}, e.counter}
                              : TensorSlot{e.name, DType::f32, e.shape, e.value.data()});
  std::vector<float> input(2 * 3 * 32 * 32), eval_logits(20), train_logits(20);
  slots.push_back({"test.input", DType::f32, {2, 3, 32, 32}, input.data()});
  slots.push_back({"test.logits_eval", DType::f32, {2, 10}, eval_logits.data()});
  slots.push_back({"test.logits_train", DType::f32, {2, 10}, train_logits.data()});
  load_tensors(file, slots);  // every tensor of the file has a slot, and every slot a tensor

  Activation<float, Shape<3, 32, 32>> x;
  x.from_nchw(input.data(), 2);
  Context<float> ctx;
  ctx.mode = Mode::inference;
  std::vector<float> logits(net->forward(x, ctx).span().begin(), net->forward(x, ctx).span().end());
  auto r = ot::compare<float, float>(logits, eval_logits, 1e-4, 1e-5);
  BOOST_TEST(r.passed, "eval mode: " << r.report());
  ctx.mode = Mode::training;
  const auto& y = net->forward(x, ctx);
  logits.assign(y.span().begin(), y.span().end());
  r = ot::compare<float, float>(logits, train_logits, 1e-4, 1e-5);
  BOOST_TEST(r.passed, "train mode: " << r.report());
}
