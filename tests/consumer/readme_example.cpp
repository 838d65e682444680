// The README's example ("Using odyssey from another project"), compiled by the consumer test
// so the README cannot drift from the API. Keep the two identical.
#include <cstddef>
#include <memory>
import odyssey;
using namespace odyssey;

// conv-bn-relu-conv-bn plus a 1x1 shortcut, added, then ReLU
template <ImageShape In, std::size_t C>
using Block = Residual<Chain<Named<"conv_a", Conv2d<float, In, C, 3, 1, 1>>,
                             Named<"norm_a", BatchNorm2d<float, ConvOutput<In, C, 3, 1, 1>>>,
                             ReLU<float, ConvOutput<In, C, 3, 1, 1>>,
                             Named<"conv_b", Conv2d<float, ConvOutput<In, C, 3, 1, 1>, C, 3, 1, 1>>,
                             Named<"norm_b", BatchNorm2d<float, ConvOutput<In, C, 3, 1, 1>>>>,
                       Named<"skip", Sequential<Conv2d<float, In, C, 1, 1, 0>>>, Join::add_relu>;

using Net = Model<Chain<Named<"stem", Conv2d<float, Shape<1, 28, 28>, 16, 3, 1, 1>>,
                        Named<"stem_bn", BatchNorm2d<float, Shape<16, 28, 28>>>, ReLU<float, Shape<16, 28, 28>>,
                        Named<"block", Block<Shape<16, 28, 28>, 32>>, MaxPool2d<float, Shape<32, 28, 28>, 2>,
                        GlobalAvgPool<float, Shape<32, 14, 14>>, Dropout<float, Shape<32>>,
                        Named<"head", Linear<float, 32, 10>>>>;

int main() {
  Rng rng(0);
  auto net = std::make_unique<Net>(rng);                    // PyTorch's initialisation
  const Dataset train_set = load_fashion_mnist(Split::train, /*pad=*/0);  // native 28x28
  const Dataset test_set = load_fashion_mnist(Split::test, 0);
  TrainSettings s;                                          // SGD, cosine schedule, ...
  s.optimizer = OptimizerKind::adamw;
  s.schedule.lr = 0.003;
  RunOptions run;
  run.out = "runs/mine";
  const TrainResult r = train(*net, s, run, train_set, test_set, "my-net");  // checkpoints, resume
  Rng other(1);
  auto again = std::make_unique<Net>(other);
  load_weights(r.weights, *again);                          // all or nothing, names checked
  const EvalResult e = evaluate(*again, test_set, 256);     // ShapeError for images of another size
}
