// End-to-end ResNet-18 (CIFAR, 32x32, 10 classes) timing: a training step (forward, loss,
// backward, SGD update) or an inference forward pass, at a batch size and thread count.
// Prints one JSON object: images/s (median step), the fp32 limits, and the peak resident
// memory of the process. perf/resnet18_bench.py runs it beside PyTorch.
#include <CLI/CLI.hpp>
#include <sys/resource.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "machine.h"
import odyssey;

using namespace odyssey;

namespace {

/// Times `steps` training steps or inference passes of Net (after `warmup` untimed ones) and
/// prints the JSON line.
template <class Net>
int run(const std::string& mode, std::size_t batch, std::size_t steps, std::size_t warmup, std::size_t threads,
        std::size_t side, const std::string& weights) {
  auto net = std::make_unique<Net>(1);
  Sgd<float> sgd(net->parameters(), SgdOptions{});
  SoftmaxCrossEntropy<float, 10> loss;
  Context<float> ctx;
  ctx.mode = mode == "train" ? Mode::training : Mode::inference;
  ctx.weights_fixed = weights == "fixed";  // read by inference-mode passes only
  Activation<float, typename Net::input_shape> x(batch);
  Activation<float, Shape<10>> dlogits(batch);
  std::vector<std::int32_t> labels(batch);
  Rng rng(2);
  fill_normal(x.span(), 0.0, 1.0, rng);
  for (std::size_t i = 0; i < batch; ++i) labels[i] = std::int32_t(i % 10);
  auto step = [&] {
    const auto& logits = net->forward(x, ctx);
    if (ctx.mode == Mode::training) {
      loss.forward(logits, labels);
      loss.backward(dlogits);
      net->backward(dlogits, nullptr, ctx);
      sgd.step(0.01);
    }
  };
  for (std::size_t i = 0; i < warmup; ++i) step();
  std::vector<double> seconds;
  for (std::size_t i = 0; i < steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  // 1.11 GFLOP per 3x32x32 image forward (0.555 GMAC), a training step ~3x that; a 1x28x28
  // image has (28/32)^2 of the work past the stem (whose share is under 1%).
  const double scale = double(side * side) / (32.0 * 32.0);
  const double gflop_per_image = (mode == "train" ? 3.33 : 1.11) * scale;
  const double peak = perf::measured_peak_gflops(threads);
  std::printf("{\"impl\": \"odyssey\", \"cpu\": \"%s\", \"mode\": \"%s\", \"input\": \"%zux%zu\", \"batch\": %zu, \"threads\": %zu, \"target\": \"%s\", \"weights\": \"%s\", "
              "\"step_seconds\": %.4f, \"images_per_second\": %.2f, \"gflops\": %.1f, "
              "\"limit_design_images_per_second\": %.1f, \"limit_measured_images_per_second\": %.1f, "
              "\"peak_gflops\": %.1f, \"peak_rss_mb\": %.1f}\n",
              perf::cpu_name().c_str(), mode.c_str(), side, side, batch, threads, kernels::active_target().c_str(), weights.c_str(), median, double(batch) / median,
              double(batch) * gflop_per_image / median, perf::kDesignPeakGflops / gflop_per_image,
              peak / gflop_per_image, peak, double(ru.ru_maxrss) / 1024.0);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Times ResNet-18 training steps or inference passes and prints JSON"};
  std::string mode = "train";
  std::size_t batch = 128, steps = 5, warmup = 2, threads = 2;
  app.add_option("--mode", mode, "train (forward+backward+SGD) or infer")->check(CLI::IsMember({"train", "infer"}));
  app.add_option("--batch", batch, "images per step")->check(CLI::Range(1, 4096));
  app.add_option("--steps", steps, "timed steps (the median is reported)")->check(CLI::Range(1, 1000));
  app.add_option("--warmup", warmup, "untimed steps first")->check(CLI::Range(0, 100));
  app.add_option("--threads", threads, "oneTBB threads")->check(CLI::Range(1, 256));
  std::string target, input = "cifar";
  app.add_option("--input", input, "cifar (3x32x32, the default) or fashion (1x28x28, what make train runs)")
      ->check(CLI::IsMember({"cifar", "fashion"}));
  app.add_option("--target", target, "SIMD target to run (e.g. AVX2 on an AVX-512 machine; default: the best)");
  std::string weights = "fixed";
  app.add_option("--weights", weights,
                 "inference: fixed (the default; the convolutions keep their prepared weights between passes, as "
                 "odyssey infer and evaluation do) or may-change (they prepare them in every pass)")
      ->check(CLI::IsMember({"fixed", "may-change"}));
  CLI11_PARSE(app, argc, argv);
  if (!target.empty()) kernels::use_target(target);  // the peak measurement below runs on it too

  tbb::global_control limit(tbb::global_control::max_allowed_parallelism, threads);
  if (input == "fashion")
    return run<models::ResNet18<float, 1, 28, 28, 10>>(mode, batch, steps, warmup, threads, 28, weights);
  return run<models::ResNet18<float, 3, 32, 32, 10>>(mode, batch, steps, warmup, threads, 32, weights);
}

