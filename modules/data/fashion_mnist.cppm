// Fashion-MNIST from its four IDX files (gzipped as Debian's dataset-fashion-mnist installs
// them, or plain). The 28x28 images are padded with `pad` background pixels on each side:
// 2 by default (32x32, CIFAR's size), 0 for the native 28x28.
module;
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include <fmt/format.h>
export module odyssey.data:fashion_mnist;
import odyssey.tensor;
import :dataset;
import :idx;

namespace odyssey::detail {

/// `dir/base.gz`, else `dir/base`; IoError naming both and the directory when neither exists.
inline std::filesystem::path find_idx(const std::filesystem::path& dir, const std::string& base,
                                      std::string_view what) {
  std::error_code ec;
  for (const std::string& name : {base + ".gz", base})
    if (std::filesystem::is_regular_file(dir / name, ec)) return dir / name;
  const bool dir_exists = std::filesystem::is_directory(dir, ec);
  throw IoError(fmt::format(
      "cannot find the Fashion-MNIST {} in '{}'{}: expected '{}.gz' or '{}' (Debian's "
      "dataset-fashion-mnist package installs them in /usr/share/datasets/fashion-mnist)",
      what, dir.string(), dir_exists ? "" : " (no such directory)", base, base));
}

}  // namespace odyssey::detail

export namespace odyssey {

/// Where Debian's dataset-fashion-mnist package puts the files.
inline constexpr std::string_view fashion_mnist_default_dir = "/usr/share/datasets/fashion-mnist";

/// The Fashion-MNIST classes, by label.
inline const std::vector<std::string> fashion_mnist_classes = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/// A 1-channel dataset from IDX images (any size, padded by `pad` on each side: with the
/// default 2, 28x28 becomes 32x32) and their labels, with Fashion-MNIST's classes and
/// statistics (mean 0.2860, std 0.3530, of the unpadded images). Labels may be empty (images
/// to predict); otherwise one per image.
[[nodiscard]] Dataset fashion_mnist_from_idx(const IdxImages& images, std::vector<std::uint8_t> labels,
                                             std::string name, std::size_t pad = 2) {
  if (labels.empty()) labels.assign(images.count, 0);
  if (labels.size() != images.count)
    throw ValueError(fmt::format("{}: {} images but {} labels", name, images.count, labels.size()));
  Dataset d;
  d.count = images.count;
  d.channels = 1;
  d.height = images.rows + 2 * pad;
  d.width = images.cols + 2 * pad;
  d.pixels = pad ? pad_images(images.pixels, images.count, 1, images.rows, images.cols, pad) : images.pixels;
  d.labels = std::move(labels);
  d.class_names = fashion_mnist_classes;
  d.mean = {0.2860f, 0.0f, 0.0f};
  d.stddev = {0.3530f, 0.0f, 0.0f};
  d.name = std::move(name);
  return d;
}

/// Loads the train (60000) or test (10000) split from `dir`: train-images-idx3-ubyte[.gz] and
/// train-labels-idx1-ubyte[.gz], or the t10k-* pair, padded by `pad` pixels on each side.
/// IoError when a file is missing or unreadable; FormatError naming the file when one is
/// malformed or the counts disagree.
[[nodiscard]] Dataset load_fashion_mnist(const std::filesystem::path& dir, Split split, std::size_t pad = 2) {
  const std::string prefix = split == Split::train ? "train" : "t10k";
  const auto images_path = detail::find_idx(dir, prefix + "-images-idx3-ubyte", "images");
  const auto labels_path = detail::find_idx(dir, prefix + "-labels-idx1-ubyte", "labels");
  IdxImages images = load_idx_images(images_path);
  std::vector<std::uint8_t> labels = load_idx_labels(labels_path, fashion_mnist_classes.size());
  if (labels.size() != images.count)
    throw FormatError(fmt::format("{} holds {} images but {} holds {} labels",
                                  images_path.string(), images.count, labels_path.string(),
                                  labels.size()));
  return fashion_mnist_from_idx(images, std::move(labels), fmt::format("fashion-mnist {}", split_name(split)), pad);
}

/// The same, from the default directory.
[[nodiscard]] Dataset load_fashion_mnist(Split split, std::size_t pad = 2) {
  return load_fashion_mnist(std::filesystem::path(fashion_mnist_default_dir), split, pad);
}

}  // namespace odyssey
