// A user's project, built against the installed package (find_package + `import odyssey;`): a
// network of its own, composed from odyssey's layers with Chain, Named and Residual, trained
// with the library's train(), saved, reloaded and evaluated; and data of the wrong image size
// refused with a ShapeError. Exits non-zero, saying why, when any of that fails.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
import odyssey;

using namespace odyssey;

namespace {

// The user's own residual block: conv-bn-relu-conv-bn on the main branch, a 1x1 convolution
// on the shortcut, added and then ReLU.
template <ImageShape In, std::size_t C>
using MyBlock = Residual<Chain<Named<"conv_a", Conv2d<float, In, C, 3, 1, 1>>,
                               Named<"norm_a", BatchNorm2d<float, ConvOutput<In, C, 3, 1, 1>>>,
                               ReLU<float, ConvOutput<In, C, 3, 1, 1>>,
                               Named<"conv_b", Conv2d<float, ConvOutput<In, C, 3, 1, 1>, C, 3, 1, 1>>,
                               Named<"norm_b", BatchNorm2d<float, ConvOutput<In, C, 3, 1, 1>>>>,
                         Named<"skip", Sequential<Conv2d<float, In, C, 1, 1, 0>>>, Join::add_relu>;

using Net = Model<Chain<Named<"stem", Conv2d<float, Shape<1, 8, 8>, 8, 3, 1, 1>>,
                        Named<"stem_bn", BatchNorm2d<float, Shape<8, 8, 8>>>, ReLU<float, Shape<8, 8, 8>>,
                        Named<"block", MyBlock<Shape<8, 8, 8>, 12>>, MaxPool2d<float, Shape<12, 8, 8>, 2>,
                        Flatten<float, Shape<12, 4, 4>>, Named<"head", Linear<float, 192, 10>>>>;

/// count 1x{size}x{size} images; class k has a bright pixel at position 6k among noise.
Dataset make_dataset(std::size_t count, std::size_t size, std::uint64_t seed) {
  Dataset d;
  d.count = count;
  d.channels = 1;
  d.height = d.width = size;
  d.name = "consumer synthetic";
  d.mean = {0.5f, 0, 0};
  d.stddev = {0.25f, 0, 0};
  for (int k = 0; k < 10; ++k) d.class_names.push_back("class " + std::to_string(k));
  Rng rng(seed);
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t label = i % 10;
    d.labels.push_back(std::uint8_t(label));
    for (std::size_t p = 0; p < size * size; ++p)
      d.pixels.push_back(std::uint8_t(rng.below(128) + (p == label * 6 ? 127 : 0)));
  }
  return d;
}

int fail(const std::string& why) {
  std::fprintf(stderr, "consumer: FAILED: %s\n", why.c_str());
  return 1;
}

}  // namespace

int main() {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("odyssey-consumer-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const Dataset train_set = make_dataset(160, 8, 1), test_set = make_dataset(60, 8, 2);

  Rng rng(7);
  Net net(rng);
  const auto names = state(net);
  if (names.size() != 21 || names[0].name != "stem.weight" || names[6].name != "block.conv_a.weight" ||
      names[18].name != "block.skip.0.weight" || names.back().name != "head.bias")
    return fail("unexpected state names, e.g. '" + names[6].name + "'");

  TrainSettings s;
  s.dataset = "consumer-synthetic";
  s.epochs = 4;
  s.batch_size = 16;
  s.augment = false;
  s.schedule.lr = 0.05;
  s.seed = 3;
  RunOptions run;
  run.out = dir / "run";
  const TrainResult r = train(net, s, run, train_set, test_set, "consumer-net");
  std::printf("consumer: %zu parameters, trained %zu epochs: test accuracy %.1f%%, loss %.3f\n", parameter_count(net),
              r.epochs_run, 100 * r.test.accuracy, r.test.loss);
  if (r.epochs_run != 4) return fail("train ran " + std::to_string(r.epochs_run) + " epochs");
  if (r.test.accuracy < 0.3) return fail("the network learned nothing (chance is 10%)");

  // Reloaded into a fresh network, the weights give the same evaluation, bit for bit, at the
  // trainer's evaluation batch size (at another one the mean loss is summed per batch in
  // another grouping, which may differ in the last bit).
  Rng other(99);
  Net fresh(other);
  load_weights(r.weights, fresh);
  const EvalResult again = evaluate(fresh, test_set, run.eval_batch);
  if (again.accuracy != r.test.accuracy || again.loss != r.test.loss) return fail("the reloaded weights evaluate differently");
  if (evaluate(fresh, test_set, 32).accuracy != r.test.accuracy)
    return fail("the evaluation's accuracy depends on its batch size");

  // Images of another size are refused before any copy, naming both shapes.
  try {
    (void)evaluate(fresh, make_dataset(20, 10, 4), 32);
    return fail("10x10 images were accepted by a network for 8x8");
  } catch (const ShapeError& e) {
    const std::string m = e.what();
    if (m.find("1x10x10") == std::string::npos || m.find("Shape<1,8,8>") == std::string::npos)
      return fail("the ShapeError does not name both shapes: " + m);
    std::printf("consumer: refused as expected: %s\n", m.c_str());
  }
  fs::remove_all(dir);
  std::printf("consumer: ok\n");
  return 0;
}
