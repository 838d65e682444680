// Fuzz target: the PNG path of `odyssey predict`, for 1- and 3-channel models.
#include <cstddef>
#include <cstdint>

#include "fuzz_common.h"
import odyssey.tensor;
import odyssey.data;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = odyssey::fuzz::input_file(data, size, ".png");
  for (std::size_t channels : {1u, 3u}) {
    try {
      (void)odyssey::read_png_image(path, channels);
    } catch (const odyssey::Error&) {
    }
  }
  return 0;
}
