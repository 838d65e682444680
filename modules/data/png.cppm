// PNG images for prediction, read with libpng's simplified API into [C, size, size] bytes.
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

/// Reads a PNG as `channels` x size x size bytes (channels 1 or 3). A 1-channel model also
/// takes 28x28 images (Fashion-MNIST's size), padded with 0 to `size` on every side as the
/// dataset is; colour becomes grey (libpng's luminance) for 1 channel, grey is repeated for 3.
/// IoError when the file cannot be read, FormatError when it is not a valid PNG, ShapeError
/// for another size.
std::vector<std::uint8_t> read_png_image(const std::filesystem::path& path, std::size_t channels,
                                         std::size_t size = 32) {
  const std::string name = path.string();
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) throw IoError(fmt::format("cannot read '{}': not a file", name));
  if (!png_image_begin_read_from_file(&img, name.c_str()))
    throw FormatError(fmt::format("{}: not a readable PNG ({})", name, img.message));
  const std::size_t w = img.width, h = img.height;
  const bool fits = (w == size && h == size) || (w == 28 && h == 28 && channels == 1 && size >= 28 && size % 2 == 0);
  if (!fits) {
    png_image_free(&img);
    throw ShapeError(fmt::format("{}: a {}x{} image; the model takes {}x{}{}", name, w, h, size, size,
                                 channels == 1 && size != 28 ? " (or 28x28, padded like Fashion-MNIST)" : ""));
  }
  img.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  std::vector<std::uint8_t> hwc(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, hwc.data(), 0, nullptr))
    throw FormatError(fmt::format("{}: cannot decode the PNG ({})", name, img.message));
  const std::size_t pad = (size - w) / 2;
  std::vector<std::uint8_t> chw(channels * size * size, 0);
  for (std::size_t y = 0; y < h; ++y)
    for (std::size_t x = 0; x < w; ++x)
      for (std::size_t c = 0; c < channels; ++c)
        chw[(c * size + y + pad) * size + x + pad] = hwc[(y * w + x) * channels + c];
  return chw;
}

}  // namespace odyssey
