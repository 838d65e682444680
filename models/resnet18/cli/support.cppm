// odyssey.cli: what the `odyssey` subcommands share: exit codes, dataset choice and loading,
// thread control, and picking the ResNet-18 instantiation for an input channel count.
module;
#include <tbb/global_control.h>

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
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

inline Dataset load_dataset(const std::string& dataset, const std::string& dir, Split split) {
  const std::filesystem::path d = dir.empty() ? default_data_dir(dataset) : dir;
  if (dataset == "cifar10") return load_cifar10(d, split);
  if (dataset == "fashion-mnist") return load_fashion_mnist(d, split);
  throw ValueError(fmt::format("unknown dataset '{}' ({})", dataset, kDatasets));
}

/// Limits oneTBB to `threads` (0: every core) for the life of the returned object.
inline std::unique_ptr<tbb::global_control> use_threads(std::size_t threads) {
  const std::size_t n = threads ? threads : std::max(1u, std::thread::hardware_concurrency());
  return std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, n);
}

template <std::size_t C>
using Model = models::ResNet18<float, C, 32, 32, 10>;

/// Calls f.template operator()<Model<C>>() for the model taking `channels` input channels.
template <class F>
decltype(auto) with_model(std::size_t channels, F&& f) {
  if (channels == 1) return f.template operator()<Model<1>>();
  if (channels == 3) return f.template operator()<Model<3>>();
  throw ValueError(fmt::format("a ResNet-18 with {} input channels: odyssey's have 1 (Fashion-MNIST) or 3 "
                               "(CIFAR-10)", channels));
}

inline std::string model_name(std::size_t channels) {
  return fmt::format("ResNet18(in_channels={}, classes=10, width=64)", channels);
}

/// The flags behind a library setting, for SettingError messages.
inline std::string flag_hint(const std::string& setting) {
  if (setting == "epochs") return "--epochs";
  if (setting == "batch_size") return "--batch-size; with --train-subset, the number of training images";
  if (setting == "resume") return "--resume continues the run in --out; a new run needs a new --out";
  if (setting == "lr") return "--lr";
  return setting;
}

}  // namespace odyssey::cli
