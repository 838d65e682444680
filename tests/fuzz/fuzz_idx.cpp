// Fuzz target: the IDX reader, plain and gzipped (Fashion-MNIST and predict on IDX files):
// as images, as labels, and through the Fashion-MNIST padding. Any input must end in a
// result or an odyssey::Error, and never allocate more than the input can fill.
#include <cstddef>
#include <cstdint>

#include "fuzz_common.h"
import odyssey.tensor;
import odyssey.data;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = odyssey::fuzz::input_file(data, size, ".idx");
  try {
    const auto images = odyssey::load_idx_images(path);
    if (images.count < 4096) odyssey::check_dataset(odyssey::fashion_mnist_from_idx(images, {}, "fuzz"));
  } catch (const odyssey::Error&) {
  }
  try {
    (void)odyssey::load_idx_labels(path);
  } catch (const odyssey::Error&) {
  }
  return 0;
}
