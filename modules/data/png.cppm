// PNG images for prediction, read with libpng's simplified API into [C, 32, 32] bytes.
module;
#include <png.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>
#include <fmt/format.h>
export module odyssey.data:png;
import odyssey.tensor;

export namespace odyssey {

/// Reads a PNG as `channels` x 32 x 32 bytes (channels 1 or 3). 28x28 images are padded by
/// 2 pixels of 0 on every side (Fashion-MNIST's way) when channels is 1; colour becomes grey
/// (libpng's luminance) for 1 channel, grey is repeated for 3. IoError when the file cannot
/// be read, FormatError when it is not a valid PNG, ShapeError for another size.
std::vector<std::uint8_t> read_png_image(const std::filesystem::path& path, std::size_t channels) {
  const std::string name = path.string();
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw IoError(fmt::format("cannot read '{}': not a file", name));
  if (!png_image_begin_read_from_file(&img, name.c_str()))
    throw FormatError(fmt::format("{}: not a readable PNG ({})", name, img.message));
  const std::size_t w = img.width, h = img.height;
  const bool fits = (w == 32 && h == 32) || (w == 28 && h == 28 && channels == 1);
  if (!fits) {
    png_image_free(&img);
    throw ShapeError(fmt::format("{}: a {}x{} image; the model takes 32x32{}", name, w, h,
                                 channels == 1 ? " (or 28x28, padded like Fashion-MNIST)" : ""));
  }
  img.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  std::vector<std::uint8_t> hwc(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, hwc.data(), 0, nullptr))
    throw FormatError(fmt::format("{}: cannot decode the PNG ({})", name, img.message));
  const std::size_t pad = (32 - w) / 2;
  std::vector<std::uint8_t> chw(channels * 32 * 32, 0);
  for (std::size_t y = 0; y < h; ++y)
    for (std::size_t x = 0; x < w; ++x)
      for (std::size_t c = 0; c < channels; ++c) chw[(c * 32 + y + pad) * 32 + x + pad] = hwc[(y * w + x) * channels + c];
  return chw;
}

}  // namespace odyssey
