// Uses odyssey the way a user's project does: `import odyssey;` through find_package.
#include <cstdio>
import odyssey;

int main() {
  using In = odyssey::Shape<3, 32, 32>;
  using Out = odyssey::ConvOutput<In, 64, 3, 2, 1>;
  static_assert(Out::size == 64 * 16 * 16);
  odyssey::Activation<float, Out> y(2);
  y.at(1, 63, 15, 15) = 1.0f;
  odyssey::Tensor<float, odyssey::Shape<64, 3, 3, 3>> w;
  odyssey::Rng rng(3);
  odyssey::kaiming_uniform(w, rng);
  const auto targets = odyssey::kernels::available_targets();
  std::printf("consumer: %s on %s, %zu targets\n", Out::str().c_str(),
              odyssey::kernels::active_target().c_str(), targets.size());
  return y.size() == 2 * Out::size && !targets.empty() ? 0 : 1;
}
