// odyssey.cli: what the `odyssey` subcommands share: exit codes, dataset choice and loading,
// thread control, and picking the model instantiation for an architecture, an input channel
// count and an image size.
module;
#include <tbb/global_control.h>

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>
#include <fmt/format.h>
export module odyssey.cli;
import odyssey;

export namespace odyssey::cli {

/// Exit codes: 0 success, 1 training diverged, 2 bad input or usage.
inline constexpr int kExitDiverged = 1;
inline constexpr int kExitBadInput = 2;

inline constexpr const char* kDatasets = "fashion-mnist|cifar10";

/// The folder a dataset is read from when --data is not given.
inline std::string default_data_dir(const std::string& dataset) {
  return dataset == "cifar10" ? "data/cifar-10-batches-bin" : std::string(fashion_mnist_default_dir);
}

/// Loads a split at image size `size` (Fashion-MNIST: 28, native, or 32, padded by 2 pixels;
/// CIFAR-10: 32).
inline Dataset load_dataset(const std::string& dataset, const std::string& dir, Split split, std::size_t size = 32) {
  const std::filesystem::path d = dir.empty() ? default_data_dir(dataset) : dir;
  if (dataset == "cifar10") {
    if (size != 32) throw ValueError(fmt::format("CIFAR-10 images are 32x32, not {}x{} (--image-size)", size, size));
    return load_cifar10(d, split);
  }
  if (dataset == "fashion-mnist") {
    if (size != 28 && size != 32)
      throw ValueError(fmt::format("Fashion-MNIST trains at 28x28 (native) or 32x32 (padded), not {}x{} "
                                   "(--image-size)", size, size));
    return load_fashion_mnist(d, split, (size - 28) / 2);
  }
  throw ValueError(fmt::format("unknown dataset '{}' ({})", dataset, kDatasets));
}

/// Limits oneTBB to `threads` (0: every core) for the life of the returned object.
inline std::unique_ptr<tbb::global_control> use_threads(std::size_t threads) {
  const std::size_t n = threads ? threads : std::max(1u, std::thread::hardware_concurrency());
  return std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, n);
}

inline constexpr const char* kModels = "resnet18|resnet34|preact-resnet18";

/// Which model: the architecture, its input channels and image size (10 classes, width 64).
struct ModelSpec {
  std::string arch = "resnet18";
  std::size_t channels = 1, size = 32;
  [[nodiscard]] std::string input() const { return fmt::format("{}x{}x{}", channels, size, size); }
};

/// Calls f.template operator()<Net>() with the model type of `m`.
template <class F>
decltype(auto) with_model(const ModelSpec& m, F&& f) {
  auto sized = [&]<template <class, std::size_t, std::size_t, std::size_t, std::size_t, std::size_t> class M>()
      -> decltype(auto) {
    if (m.channels == 1 && m.size == 28) return f.template operator()<M<float, 1, 28, 28, 10, 64>>();
    if (m.channels == 1 && m.size == 32) return f.template operator()<M<float, 1, 32, 32, 10, 64>>();
    if (m.channels == 3 && m.size == 32) return f.template operator()<M<float, 3, 32, 32, 10, 64>>();
    throw ValueError(fmt::format("no {} for {} images: odyssey's take 1x28x28 or 1x32x32 (Fashion-MNIST) or "
                                 "3x32x32 (CIFAR-10)", m.arch, m.input()));
  };
  if (m.arch == "resnet18") return sized.template operator()<models::ResNet18>();
  if (m.arch == "resnet34") return sized.template operator()<models::ResNet34>();
  if (m.arch == "preact-resnet18") return sized.template operator()<models::PreActResNet18>();
  throw ValueError(fmt::format("unknown model '{}' ({})", m.arch, kModels));
}

/// The ranks of a data-parallel run under mpirun (set by main; null for a single process),
/// timed, to report communication's share of the run.
inline TimedCommunicator*& communicator() {
  static TimedCommunicator* c = nullptr;
  return c;
}
/// Whether this process prints: a single process, or rank 0 of a data-parallel run.
inline bool lead_rank() { return !communicator() || communicator()->rank() == 0; }

/// The command line `odyssey` was started with (set by main), to tell a user how to go on.
inline std::vector<std::string>& command_line() {
  static std::vector<std::string> args;
  return args;
}

/// `args` as one shell command: arguments with characters a shell treats specially are
/// single-quoted.
inline std::string shell_command(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args) {
    if (!out.empty()) out += ' ';
    const bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                         "0123456789-_./=:,+@%") == std::string::npos;
    if (plain) {
      out += a;
      continue;
    }
    out += '\'';
    for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

/// The flags behind a library setting, for SettingError messages.
inline std::string flag_hint(const std::string& setting) {
  if (setting == "epochs") return "--epochs";
  if (setting == "batch_size") return "--batch-size; with --train-subset, the number of training images";
  if (setting == "resume") return "--resume continues the run in --out; a new run needs a new --out";
  if (setting == "lr") return "--lr";
  if (setting == "checkpoint_every") return "--checkpoint-every";
  if (setting == "translate") return "--translate";
  if (setting == "erase") return "--erase";
  if (setting == "ema") return "--ema";
  if (setting == "norm_lr_scale") return "--norm-lr-scale";
  if (setting == "zero_init_residual") return "--zero-init-residual cannot go with --init-weights";
  if (setting == "reset_classifier") return "--reset-classifier needs --init-weights";
  return setting;
}

}  // namespace odyssey::cli
