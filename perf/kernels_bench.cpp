// Every kernel at every ResNet-18 (CIFAR) shape, batch 128 (ODYSSEY_BATCH to change it;
// ODYSSEY_INPUT=fashion for the 28x28 network `make train` runs: extents 28, 14, 7 and 4),
// fp32: GFLOP/s for conv and linear, GB/s for the memory-bound ops, each also as a
// percentage of the machine's limits.
#include "bench_main.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>
import odyssey;

namespace ok = odyssey::kernels;
namespace op = odyssey::perf;

namespace {

const std::size_t kBatch = [] {
  const char* env = std::getenv("ODYSSEY_BATCH");
  const long v = env ? std::strtol(env, nullptr, 10) : 128;
  return static_cast<std::size_t>(v > 0 ? v : 128);
}();

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

// The input extent of each convolution: the CIFAR network's (32, 16, 8, 4), or 28/32 of
// it rounded up for the 28x28 Fashion-MNIST input (28, 14, 7, 4).
const bool kFashion = [] {
  const char* env = std::getenv("ODYSSEY_INPUT");
  return env && std::string(env) == "fashion";
}();
ok::Conv2dShape conv_shape(const ConvCase& c) {
  const std::size_t h = kFashion ? (c.h * 28 + 31) / 32 : c.h;
  return {kBatch, c.c, h, h, c.k, c.r, c.r, c.stride, c.pad};
}

std::vector<float> filled(std::size_t n, float v) { return std::vector<float>(n, v); }

enum class Pass { forward, backward_data, backward_weights };

void bm_conv(benchmark::State& state, ConvCase cc, Pass pass, ok::ConvAlgorithm algo) {
  const auto g = conv_shape(cc);
  odyssey::AlignedBuffer<float> x(g.x_size()), y(g.y_size()), w(g.w_size()), dw(g.w_size()),
      ws(ok::conv2d_workspace_size(g));
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = float(i % 7) * 0.1f;
  for (std::size_t i = 0; i < w.size(); ++i) w.data()[i] = float(i % 5) * 0.01f;
  for (std::size_t i = 0; i < y.size(); ++i) y.data()[i] = float(i % 3) * 0.1f;
  for (auto _ : state) {
    switch (pass) {
      case Pass::forward:
        ok::conv2d_forward(g, x.data(), w.data(), nullptr, y.data(), ws.data(), algo);
        break;
      case Pass::backward_data:
        ok::conv2d_backward_data(g, y.data(), w.data(), x.data(), ws.data(), false, algo);
        break;
      case Pass::backward_weights:
        ok::conv2d_backward_weights(g, x.data(), y.data(), dw.data(), nullptr, ws.data(), algo);
        break;
    }
    benchmark::ClobberMemory();
  }
  op::report_flops(state, 2.0 * double(g.macs()));
}

void register_convs() {
  // conv2d/...: what a layer runs (ConvAlgorithm::automatic). Where automatic takes
  // Winograd, the others that compute the pass, for the comparison: conv2d_direct/...,
  // conv2d_winograd/... (F(2x2, 3x3), stride 1) and conv2d_winograd4/... (F(4x4, 3x3), or
  // the stride-2 forms). GFLOP/s count the direct convolution's FLOPs (2 x N x P x Q x
  // K x C x R x S) either way.
  const std::pair<Pass, const char*> passes[] = {
      {Pass::forward, "fwd"}, {Pass::backward_data, "bwd_data"}, {Pass::backward_weights, "bwd_weights"}};
  for (const auto& c : kConvs) {
    const auto g = conv_shape(c);
    auto automatic = [&](Pass pass) {
      return pass == Pass::backward_weights ? ok::conv2d_automatic_weight_algorithm(g) : ok::conv2d_automatic_algorithm(g);
    };
    auto computes = [&](ok::ConvAlgorithm algo, Pass pass) {
      switch (algo) {
        case ok::ConvAlgorithm::automatic: return true;
        case ok::ConvAlgorithm::direct: return automatic(pass) != ok::ConvAlgorithm::direct;
        case ok::ConvAlgorithm::winograd: return automatic(pass) != ok::ConvAlgorithm::direct && ok::conv2d_winograd_applies(g);
        default:
          return automatic(pass) != ok::ConvAlgorithm::direct &&
                 (ok::conv2d_winograd_applies(g) || ok::conv2d_winograd_stride2_applies(g));
      }
    };
    for (auto [algo, prefix] : {std::pair{ok::ConvAlgorithm::automatic, "conv2d/"},
                                std::pair{ok::ConvAlgorithm::direct, "conv2d_direct/"},
                                std::pair{ok::ConvAlgorithm::winograd, "conv2d_winograd/"},
                                std::pair{ok::ConvAlgorithm::winograd4, "conv2d_winograd4/"}}) {
      for (auto [pass, label] : passes) {
        if (!computes(algo, pass)) continue;
        benchmark::RegisterBenchmark((std::string(prefix) + label + "/" + c.name).c_str(), bm_conv, c, pass, algo)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime()
            ->MinTime(0.5);
      }
    }
  }
}

// Activation shapes after each stage: channels and spatial extent.
struct ActCase {
  const char* name;
  std::size_t c, h;
};
const ActCase kActs[] = {{"64x32x32", 64, 32}, {"128x16x16", 128, 16}, {"256x8x8", 256, 8}, {"512x4x4", 512, 4}};

enum class BnPass { forward, backward, forward_backward };

void bm_batchnorm(benchmark::State& state, ActCase a, BnPass pass) {
  const ok::BatchNormShape s{kBatch * a.h * a.h, a.c};
  const std::size_t n = s.m * s.c;
  odyssey::AlignedBuffer<float> x(n), y(n), dy(n), dx(n), g(a.c), b(a.c), mean(a.c), rstd(a.c), rm(a.c), rv(a.c),
      dg(a.c), db(a.c);
  odyssey::AlignedBuffer<double> ws(ok::batchnorm_workspace_size(s));
  for (std::size_t i = 0; i < n; ++i) x.data()[i] = float(i % 13) * 0.1f, dy.data()[i] = float(i % 7) * 0.01f;
  for (std::size_t c = 0; c < a.c; ++c) g.data()[c] = 1, rv.data()[c] = 1;
  auto fwd = [&] {
    ok::batchnorm_forward_training(s, x.data(), g.data(), b.data(), y.data(), mean.data(), rstd.data(), rm.data(),
                                   rv.data(), 0.1, 1e-5, ws.data());
  };
  auto bwd = [&] {
    ok::batchnorm_backward_training(s, x.data(), dy.data(), g.data(), mean.data(), rstd.data(), dx.data(), dg.data(),
                                    db.data(), ws.data());
  };
  fwd();
  for (auto _ : state) {
    if (pass != BnPass::backward) fwd();
    if (pass != BnPass::forward) bwd();
    benchmark::ClobberMemory();
  }
  // Tensor passes the algorithm makes: forward reads x twice (statistics, normalise) and
  // writes y; backward reads x and dy twice (sums, dx) and writes dx.
  const double passes = pass == BnPass::forward ? 3 : pass == BnPass::backward ? 5 : 8;
  op::report_bytes(state, passes * double(n) * sizeof(float));
}

enum class Elt { relu, relu_backward, add_relu };

void bm_eltwise(benchmark::State& state, ActCase a, Elt op) {
  const std::size_t n = kBatch * a.c * a.h * a.h;
  odyssey::AlignedBuffer<float> x(n), y(n), z(n);
  for (std::size_t i = 0; i < n; ++i) x.data()[i] = float(i % 5) - 2.0f, y.data()[i] = 0.5f;
  for (auto _ : state) {
    switch (op) {
      case Elt::relu: ok::relu_forward(n, x.data(), z.data()); break;
      case Elt::relu_backward: ok::relu_backward(n, x.data(), y.data(), z.data()); break;
      case Elt::add_relu: ok::add_relu_forward(n, x.data(), y.data(), z.data()); break;
    }
    benchmark::ClobberMemory();
  }
  op::report_bytes(state, (op == Elt::relu ? 2.0 : 3.0) * double(n) * sizeof(float));
}

void bm_global_pool(benchmark::State& state, bool backward) {
  const std::size_t hw = 16, c = 512, n = kBatch * hw * c;
  odyssey::AlignedBuffer<float> x(n), y(kBatch * c);
  for (auto _ : state) {
    if (backward) ok::global_avgpool_backward(kBatch, hw, c, y.data(), x.data());
    else ok::global_avgpool_forward(kBatch, hw, c, x.data(), y.data());
    benchmark::ClobberMemory();
  }
  op::report_bytes(state, double(n + kBatch * c) * sizeof(float));
}

void bm_linear(benchmark::State& state, int pass) {
  const std::size_t in = 512, out = 10;
  odyssey::AlignedBuffer<float> x(kBatch * in), w(out * in), b(out), y(kBatch * out), dw(out * in), db(out);
  for (auto _ : state) {
    if (pass == 0) ok::linear_forward(kBatch, in, out, x.data(), w.data(), b.data(), y.data());
    if (pass == 1) ok::linear_backward_data(kBatch, in, out, y.data(), w.data(), x.data());
    if (pass == 2) ok::linear_backward_weights(kBatch, in, out, x.data(), y.data(), dw.data(), db.data());
    benchmark::ClobberMemory();
  }
  op::report_flops(state, 2.0 * double(kBatch * in * out));
}

void bm_cross_entropy(benchmark::State& state) {
  const std::size_t k = 10;
  odyssey::AlignedBuffer<float> z(kBatch * k), p(kBatch * k), dz(kBatch * k);
  std::vector<std::int32_t> labels(kBatch);
  for (std::size_t i = 0; i < kBatch; ++i) labels[i] = std::int32_t(i % k), z.data()[i] = float(i % 3);
  for (auto _ : state) {
    ok::softmax_cross_entropy_forward(kBatch, k, z.data(), labels.data(), 0.1, p.data());
    ok::softmax_cross_entropy_backward(kBatch, k, p.data(), labels.data(), 0.1, dz.data());
    benchmark::ClobberMemory();
  }
  op::report_bytes(state, 4.0 * double(kBatch * k) * sizeof(float));
}

void bm_sgd(benchmark::State& state) {
  const std::size_t n = 11'173'962;  // ResNet-18's parameters
  odyssey::AlignedBuffer<float> w(n), g(n), v(n);
  const ok::SgdParams p{0.01, 0.9, 5e-4, false};
  for (auto _ : state) {
    ok::sgd_update(n, w.data(), g.data(), v.data(), p);
    benchmark::ClobberMemory();
  }
  op::report_bytes(state, 6.0 * double(n) * sizeof(float));  // read w, g, v; write w, v, g
}

// Max pooling: a CIFAR-sized stem (k3 s2 p1, overlapping windows) and a VGG-style 2x2.
struct MaxPoolCase {
  const char* name;
  std::size_t c, h, kernel, stride, pad;
};
const MaxPoolCase kMaxPools[] = {{"64x32x32_k3s2p1", 64, 32, 3, 2, 1}, {"128x16x16_k2s2", 128, 16, 2, 2, 0}};

void bm_maxpool(benchmark::State& state, MaxPoolCase mc, bool backward) {
  const ok::MaxPool2dShape s{kBatch, mc.c, mc.h, mc.h, mc.kernel, mc.stride, mc.pad};
  odyssey::AlignedBuffer<float> x(s.x_size()), y(s.y_size()), dx(s.x_size());
  std::vector<std::int32_t> argmax(s.y_size());
  for (std::size_t i = 0; i < x.size(); ++i) x.data()[i] = float((i * 7919) % 1000) * 0.001f;
  ok::maxpool2d_forward(s, x.data(), y.data(), argmax.data());
  for (auto _ : state) {
    if (backward) ok::maxpool2d_backward(s, y.data(), argmax.data(), dx.data());
    else ok::maxpool2d_forward(s, x.data(), y.data(), argmax.data());
    benchmark::ClobberMemory();
  }
  // Forward reads x, writes y and the int32 argmax; backward reads dy and argmax, writes dx.
  op::report_bytes(state, double(s.x_size() + 2 * s.y_size()) * sizeof(float));
}

void bm_dropout(benchmark::State& state, bool backward) {
  const std::size_t n = kBatch * 64 * 32 * 32;
  odyssey::AlignedBuffer<float> x(n), y(n);
  std::vector<std::uint8_t> mask(n);
  const ok::DropoutParams p{0.5, 1, 0};
  ok::dropout_forward(n, x.data(), y.data(), mask.data(), p);
  for (auto _ : state) {
    if (backward) ok::dropout_backward(n, y.data(), mask.data(), p.p, x.data());
    else ok::dropout_forward(n, x.data(), y.data(), mask.data(), p);
    benchmark::ClobberMemory();
  }
  op::report_bytes(state, double(n) * (2 * sizeof(float) + 1));  // x or dy, y or dx, the mask
}

void bm_adamw(benchmark::State& state) {
  const std::size_t n = 11'173'962;  // ResNet-18's parameters
  odyssey::AlignedBuffer<float> w(n), g(n), m(n), v(n);
  ok::AdamWParams p{1e-3, 0.9, 0.999, 1e-8, 0.01, 1};
  for (auto _ : state) {
    ok::adamw_update(n, w.data(), g.data(), m.data(), v.data(), p);
    ++p.step;
    benchmark::ClobberMemory();
  }
  op::report_bytes(state, 8.0 * double(n) * sizeof(float));  // read w, g, m, v; write w, m, v, g
}

template <class F, class... A>
void add(const std::string& name, F f, A... args) {
  benchmark::RegisterBenchmark(name.c_str(), f, args...)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.3);
}

void register_others() {
  for (const auto& a : kActs) {
    add(std::string("batchnorm/train_fwd/") + a.name, bm_batchnorm, a, BnPass::forward);
    add(std::string("batchnorm/train_bwd/") + a.name, bm_batchnorm, a, BnPass::backward);
    add(std::string("batchnorm/train_fwd_bwd/") + a.name, bm_batchnorm, a, BnPass::forward_backward);
    add(std::string("relu/fwd/") + a.name, bm_eltwise, a, Elt::relu);
    add(std::string("relu/bwd/") + a.name, bm_eltwise, a, Elt::relu_backward);
    add(std::string("add_relu/fwd/") + a.name, bm_eltwise, a, Elt::add_relu);
  }
  add("global_avgpool/fwd/512x4x4", bm_global_pool, false);
  add("global_avgpool/bwd/512x4x4", bm_global_pool, true);
  add("linear/fwd/512to10", bm_linear, 0);
  add("linear/bwd_data/512to10", bm_linear, 1);
  add("linear/bwd_weights/512to10", bm_linear, 2);
  add("cross_entropy/fwd_bwd/10", bm_cross_entropy);
  add("sgd/update/11.2M", bm_sgd);
  for (const auto& mc : kMaxPools) {
    add(std::string("maxpool/fwd/") + mc.name, bm_maxpool, mc, false);
    add(std::string("maxpool/bwd/") + mc.name, bm_maxpool, mc, true);
  }
  add("dropout/fwd/64x32x32", bm_dropout, false);
  add("dropout/bwd/64x32x32", bm_dropout, true);
  add("adamw/update/11.2M", bm_adamw);
}

}  // namespace

int main(int argc, char** argv) {
  register_convs();
  register_others();
  const std::string suite = "kernels at batch " + std::to_string(kBatch);
  benchmark::AddCustomContext("batch", std::to_string(kBatch));
  return op::run_benchmarks(argc, argv, suite.c_str());
}
