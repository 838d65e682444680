// What turns stored uint8 images into network input: normalisation, the epoch's order, and
// training augmentation: a random translation with zero fill (by default 4 pixels, as
// torchvision's RandomCrop(32, padding=4)), a horizontal flip (random, as
// RandomHorizontalFlip(), or alternating from epoch to epoch per image, as airbench's), and
// random erasing (torchvision's RandomErasing(p, scale=(0.02, 0.33), ratio=(0.3, 3.3),
// value=0) after Normalize).
//
// Every random draw comes from a generator seeded by a hash of (seed, epoch) for the order
// and of (seed, epoch, position in the epoch) for a sample's augmentation: batch b of epoch
// e is a pure function of (seed, e, b), so a resumed run sees exactly the batches an
// uninterrupted one would, with no generator state to save.
module;
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>
export module odyssey.data:augment;
import odyssey.tensor;
import :dataset;

namespace odyssey::detail {

/// splitmix64's finaliser: a bijection on 64 bits that mixes every input bit into every
/// output bit.
constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Distinct streams for the two uses of randomness.
constexpr std::uint64_t order_stream = 0x6f72646572ULL;      // "order"
constexpr std::uint64_t augment_stream = 0x6175676d656eULL;  // "augmen"
constexpr std::uint64_t flip_stream = 0x666c6970ULL;           // "flip"
constexpr std::uint64_t erase_stream = 0x6572617365ULL;        // "erase"

}  // namespace odyssey::detail

export namespace odyssey {

/// A seed for one (stream, a, b) counter: independent-looking for every distinct input.
[[nodiscard]] constexpr std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream,
                                                  std::uint64_t a, std::uint64_t b = 0) noexcept {
  return detail::mix64(detail::mix64(detail::mix64(seed ^ detail::mix64(stream)) ^ a) ^ b);
}

/// Zero padding of the random crop by default, in pixels on each side.
inline constexpr int crop_padding = 4;

/// How a training image's horizontal flip is chosen.
enum class FlipMode {
  none,
  random,     // a fair coin per sample and epoch (RandomHorizontalFlip)
  alternate,  // a coin per image in the first epoch, then the opposite every other epoch
};

/// "none", "random" or "alternate"; ValueError otherwise.
inline FlipMode parse_flip(const std::string& name) {
  if (name == "none") return FlipMode::none;
  if (name == "random") return FlipMode::random;
  if (name == "alternate") return FlipMode::alternate;
  throw ValueError("unknown flip mode '" + name + "' (none, random, alternate)");
}

/// Training augmentation, applied in this order: translate (crop of the zero-padded image),
/// flip, normalise, erase.
struct AugmentOptions {
  int translate = crop_padding;  // largest shift each way, in pixels (0: none)
  FlipMode flip = FlipMode::random;
  double erase = 0;  // probability of erasing a random rectangle (to 0 after normalisation)
};

/// One sample's augmentation. Output pixel (y, x) is the input pixel (y + dy, x' + dx) with
/// x' = flip ? W-1-x : x, and 0 (before normalisation) where that falls outside the image:
/// torchvision's crop at top = dy + pad, left = dx + pad of the padded image, then the flip.
/// Then, when erase_h > 0, the output rectangle of rows [erase_y, erase_y + erase_h) and
/// columns [erase_x, erase_x + erase_w) is set to 0 in every channel.
struct AugmentParams {
  int dx = 0, dy = 0;  // in [-translate, translate]
  bool flip = false;
  std::size_t erase_x = 0, erase_y = 0, erase_w = 0, erase_h = 0;
};

/// The augmentation of the sample at `position` (0-based, in the epoch's order) of `epoch`,
/// image `index` of the dataset, of `height` x `width` pixels.
[[nodiscard]] AugmentParams augment_params(const AugmentOptions& o, std::uint64_t seed, std::size_t epoch,
                                           std::size_t position, std::size_t index, std::size_t height,
                                           std::size_t width) noexcept {
  Rng rng(derive_seed(seed, detail::augment_stream, epoch, position));
  AugmentParams p;
  if (o.translate > 0) {
    const auto span = static_cast<std::uint64_t>(2 * o.translate + 1);
    p.dy = static_cast<int>(rng.below(span)) - o.translate;  // top first,
    p.dx = static_cast<int>(rng.below(span)) - o.translate;  // then left
  }
  if (o.flip == FlipMode::random) {
    p.flip = rng.below(2) == 1;
  } else if (o.flip == FlipMode::alternate) {
    const bool first = (derive_seed(seed, detail::flip_stream, index) & 1) != 0;
    p.flip = first != (epoch % 2 == 1);
  }
  if (o.erase > 0) {
    Rng er(derive_seed(seed, detail::erase_stream, epoch, position));
    if (er.uniform01() < o.erase) {
      const double area = double(height) * double(width);
      for (int attempt = 0; attempt < 10; ++attempt) {  // torchvision's ten tries
        const double target = area * er.uniform(0.02, 0.33);
        const double ratio = std::exp(er.uniform(std::log(0.3), std::log(3.3)));
        const auto h = static_cast<std::size_t>(std::lround(std::sqrt(target * ratio)));
        const auto w = static_cast<std::size_t>(std::lround(std::sqrt(target / ratio)));
        if (h == 0 || w == 0 || h >= height || w >= width) continue;
        p.erase_y = er.below(height - h + 1);
        p.erase_x = er.below(width - w + 1);
        p.erase_h = h;
        p.erase_w = w;
        break;
      }
    }
  }
  return p;
}

/// The default augmentation (4-pixel translation, random flip, no erasing) of that sample.
[[nodiscard]] AugmentParams augment_params(std::uint64_t seed, std::size_t epoch, std::size_t position) noexcept {
  return augment_params(AugmentOptions{}, seed, epoch, position, 0, 0, 0);
}

/// The order in which an epoch visits `count` samples: a seeded Fisher-Yates shuffle, or
/// 0, 1, 2, ... when `shuffle` is false.
void epoch_order(std::uint64_t seed, std::size_t epoch, std::size_t count, bool shuffle,
                 std::vector<std::size_t>& order) {
  order.resize(count);
  std::iota(order.begin(), order.end(), std::size_t{0});
  if (!shuffle) return;
  Rng rng(derive_seed(seed, detail::order_stream, epoch));
  for (std::size_t i = count; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
}

/// (v/255 - mean)/stddev in float, step by step as torchvision's ToTensor + Normalize do.
[[nodiscard]] float normalise(std::uint8_t v, float mean, float stddev) noexcept {
  const float x = static_cast<float>(v) / 255.0f;
  return (x - mean) / stddev;
}

/// normalise() for every byte value of every channel of a dataset.
class Normaliser {
 public:
  explicit Normaliser(const Dataset& d) {
    for (std::size_t c = 0; c < d.channels; ++c)
      for (int v = 0; v < 256; ++v)
        table_[c][v] = normalise(static_cast<std::uint8_t>(v), d.mean[c], d.stddev[c]);
  }
  [[nodiscard]] float operator()(std::size_t c, std::uint8_t v) const noexcept { return table_[c][v]; }

 private:
  std::array<std::array<float, 256>, 3> table_{};
};

/// Writes image `index` of `d`, augmented by `p` and normalised, channels-last:
/// out[(y*W + x)*C + c]. x: [C,H,W] uint8 -> out: [H,W,C] float.
void write_sample(const Dataset& d, std::size_t index, const AugmentParams& p,
                  const Normaliser& norm, float* out) {
  const std::size_t C = d.channels, H = d.height, W = d.width;
  const std::uint8_t* img = d.pixels.data() + index * d.sample_size();
  for (std::size_t y = 0; y < H; ++y) {
    const long sy = static_cast<long>(y) + p.dy;
    for (std::size_t x = 0; x < W; ++x) {
      const long sx = static_cast<long>(p.flip ? W - 1 - x : x) + p.dx;
      const bool inside = sy >= 0 && sy < static_cast<long>(H) && sx >= 0 && sx < static_cast<long>(W);
      float* px = out + (y * W + x) * C;
      for (std::size_t c = 0; c < C; ++c)
        px[c] = norm(c, inside ? img[(c * H + static_cast<std::size_t>(sy)) * W +
                                     static_cast<std::size_t>(sx)]
                               : std::uint8_t{0});
    }
  }
  for (std::size_t y = p.erase_y; y < p.erase_y + p.erase_h; ++y)
    for (std::size_t x = p.erase_x; x < p.erase_x + p.erase_w; ++x)
      for (std::size_t c = 0; c < C; ++c) out[(y * W + x) * C + c] = 0.0f;
}

}  // namespace odyssey
