// Compares two weights or checkpoint files of the same tensors: prints the norm of the
// difference of all their float tensors relative to B's norm, ||A - B||_2 / ||B||_2 over
// every float value, and exits 1 when it exceeds TOLERANCE (or the files hold other tensors).
//   weights_diff A B TOLERANCE
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>
import odyssey;

using namespace odyssey;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: weights_diff A B TOLERANCE\n");
    return 2;
  }
  try {
    const SafeTensors a = SafeTensors::read(argv[1]), b = SafeTensors::read(argv[2]);
    const double tolerance = std::stod(argv[3]);
    if (a.names() != b.names()) {
      std::printf("the files hold other tensors\n");
      return 1;
    }
    double diff2 = 0, norm2 = 0;
    for (const auto& name : a.names()) {
      const TensorView &x = a.tensor(name), &y = b.tensor(name);
      if (x.dtype != DType::f32 || y.dtype != DType::f32) continue;
      if (x.shape != y.shape) {
        std::printf("%s: shapes differ\n", name.c_str());
        return 1;
      }
      for (std::size_t i = 0; i < x.elements(); ++i) {
        float u, v;
        std::memcpy(&u, x.bytes.data() + 4 * i, 4);
        std::memcpy(&v, y.bytes.data() + 4 * i, 4);
        diff2 += (double(u) - double(v)) * (double(u) - double(v));
        norm2 += double(v) * double(v);
      }
    }
    const double relative = norm2 > 0 ? std::sqrt(diff2 / norm2) : std::sqrt(diff2);
    std::printf("relative difference %.3g (tolerance %g)\n", relative, tolerance);
    return relative <= tolerance ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "weights_diff: %s\n", e.what());
    return 2;
  }
}
