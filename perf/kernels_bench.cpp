// Every kernel at every ResNet-18 (CIFAR) shape, batch 128, fp32: GFLOP/s for conv and
// linear, GB/s for the memory-bound ops, each also as a percentage of the machine's limits.
#include "bench_main.h"

#include <cstddef>
#include <string>
#include <vector>
import odyssey;

namespace ok = odyssey::kernels;
namespace op = odyssey::perf;

namespace {

constexpr std::size_t kBatch = 128;

struct ConvCase {
  const char* name;
  std::size_t c, h, k, r, stride, pad;
};

// Each distinct convolution of ResNet-18 for 32x32 inputs.
const ConvCase kConvs[] = {
    {"stem_3x3_3to64_32", 3, 32, 64, 3, 1, 1},
    {"l1_3x3_64_32", 64, 32, 64, 3, 1, 1},
    {"l2_down_3x3_64to128_s2", 64, 32, 128, 3, 2, 1},
    {"l2_3x3_128_16", 128, 16, 128, 3, 1, 1},
    {"l2_proj_1x1_64to128_s2", 64, 32, 128, 1, 2, 0},
    {"l3_down_3x3_128to256_s2", 128, 16, 256, 3, 2, 1},
    {"l3_3x3_256_8", 256, 8, 256, 3, 1, 1},
    {"l3_proj_1x1_128to256_s2", 128, 16, 256, 1, 2, 0},
    {"l4_down_3x3_256to512_s2", 256, 8, 512, 3, 2, 1},
    {"l4_3x3_512_4", 512, 4, 512, 3, 1, 1},
    {"l4_proj_1x1_256to512_s2", 256, 8, 512, 1, 2, 0},
};

ok::Conv2dShape conv_shape(const ConvCase& c) {
  return {kBatch, c.c, c.h, c.h, c.k, c.r, c.r, c.stride, c.pad};
}

std::vector<float> filled(std::size_t n, float v) { return std::vector<float>(n, v); }

enum class Pass { forward, backward_data, backward_weights };

void bm_conv(benchmark::State& state, ConvCase cc, Pass pass) {
  const auto g = conv_shape(cc);
  odyssey::AlignedBuffer<float> x(g.x_size()), y(g.y_size()), w(g.w_size()), dw(g.w_size()),
      ws(ok::conv2d_workspace_size(g));
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = float(i % 7) * 0.1f;
  for (std::size_t i = 0; i < w.size(); ++i) w.data()[i] = float(i % 5) * 0.01f;
  for (std::size_t i = 0; i < y.size(); ++i) y.data()[i] = float(i % 3) * 0.1f;
  for (auto _ : state) {
    switch (pass) {
      case Pass::forward:
        ok::conv2d_forward(g, x.data(), w.data(), nullptr, y.data(), ws.data());
        break;
      case Pass::backward_data:
        ok::conv2d_backward_data(g, y.data(), w.data(), x.data(), ws.data());
        break;
      case Pass::backward_weights:
        ok::conv2d_backward_weights(g, x.data(), y.data(), dw.data(), nullptr, ws.data());
        break;
    }
    benchmark::ClobberMemory();
  }
  op::report_flops(state, 2.0 * double(g.macs()));
}

void register_convs() {
  for (const auto& c : kConvs) {
    for (auto [pass, label] : {std::pair{Pass::forward, "fwd"}, std::pair{Pass::backward_data, "bwd_data"},
                               std::pair{Pass::backward_weights, "bwd_weights"}}) {
      benchmark::RegisterBenchmark((std::string("conv2d/") + label + "/" + c.name).c_str(), bm_conv, c, pass)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(0.5);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_convs();
  return op::run_benchmarks(argc, argv, "kernels");
}
