// A dataset in memory: uint8 images in NCHW order with their labels, class names and the
// per-channel statistics used to normalise them when batches are made. Loaders for CIFAR-10
// and IDX files produce one; BatchLoader turns one into training or evaluation batches.
module;
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include <fmt/format.h>
export module odyssey.data:dataset;
import odyssey.tensor;

export namespace odyssey {

/// Which part of a dataset: the training images or the held-out test images.
enum class Split { train, test };

[[nodiscard]] constexpr std::string_view split_name(Split s) noexcept {
  return s == Split::train ? "train" : "test";
}

/// Images and labels. N count, C channels, H height, W width.
struct Dataset {
  std::size_t count = 0, channels = 0, height = 0, width = 0;
  std::vector<std::uint8_t> pixels;  // [N, C, H, W], 0..255
  std::vector<std::uint8_t> labels;  // [N], each < class_names.size()
  std::vector<std::string> class_names;
  std::array<float, 3> mean{}, stddev{};  // per channel, of x/255; [0] only for C == 1
  std::string name;                       // e.g. "fashion-mnist train", for messages

  [[nodiscard]] std::size_t sample_size() const noexcept { return channels * height * width; }
  /// Image i, [C, H, W].
  [[nodiscard]] std::span<const std::uint8_t> image(std::size_t i) const {
    return std::span<const std::uint8_t>(pixels).subspan(i * sample_size(), sample_size());
  }
};

/// Throws ValueError unless the extents, the pixel and label counts and the statistics of
/// `d` agree (1 to 3 channels, positive standard deviations).
void check_dataset(const Dataset& d) {
  if (d.channels < 1 || d.channels > 3 || d.height == 0 || d.width == 0)
    throw ValueError(fmt::format("dataset '{}': {} channels of {}x{} pixels; 1 to 3 channels "
                                 "of at least 1x1 are supported", d.name, d.channels, d.height, d.width));
  if (d.pixels.size() != d.count * d.sample_size() || d.labels.size() != d.count)
    throw ValueError(fmt::format("dataset '{}': {} pixels and {} labels for {} images of {}x{}x{}",
                                 d.name, d.pixels.size(), d.labels.size(), d.count, d.channels,
                                 d.height, d.width));
  for (std::size_t c = 0; c < d.channels; ++c)
    if (!(d.stddev[c] > 0.0f))
      throw ValueError(fmt::format("dataset '{}': channel {} has standard deviation {}", d.name, c,
                                   d.stddev[c]));
}

/// The first n images of `d` (--train-subset). ValueError unless 0 < n <= d.count.
[[nodiscard]] Dataset subset(const Dataset& d, std::size_t n) {
  if (n == 0 || n > d.count)
    throw ValueError(fmt::format("cannot take the first {} images of '{}', which has {}", n,
                                 d.name, d.count));
  Dataset s;
  s.count = n;
  s.channels = d.channels;
  s.height = d.height;
  s.width = d.width;
  s.pixels.assign(d.pixels.begin(), d.pixels.begin() + static_cast<std::ptrdiff_t>(n * d.sample_size()));
  s.labels.assign(d.labels.begin(), d.labels.begin() + static_cast<std::ptrdiff_t>(n));
  s.class_names = d.class_names;
  s.mean = d.mean;
  s.stddev = d.stddev;
  s.name = fmt::format("{} (first {})", d.name, n);
  return s;
}

/// `count` images [C, H, W] with a border of `border` zero pixels on every side:
/// [count, C, H + 2*border, W + 2*border].
[[nodiscard]] std::vector<std::uint8_t> pad_images(std::span<const std::uint8_t> src,
                                                   std::size_t count, std::size_t channels,
                                                   std::size_t height, std::size_t width,
                                                   std::size_t border) {
  const std::size_t ph = height + 2 * border, pw = width + 2 * border;
  std::vector<std::uint8_t> out(count * channels * ph * pw, 0);
  for (std::size_t plane = 0; plane < count * channels; ++plane)
    for (std::size_t y = 0; y < height; ++y)
      std::copy_n(src.data() + (plane * height + y) * width, width,
                  out.data() + (plane * ph + y + border) * pw + border);
  return out;
}

}  // namespace odyssey
