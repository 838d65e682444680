// Fuzz target: the CIFAR-10 binary reader (odyssey train/eval --dataset cifar10, and
// predict on a .bin file). Any input must end in a result or an odyssey::Error.
#include <cstddef>
#include <cstdint>

#include "fuzz_common.h"
import odyssey.tensor;
import odyssey.data;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = odyssey::fuzz::input_file(data, size, ".bin");
  try {
    odyssey::Dataset d = odyssey::cifar10_dataset("fuzz");
    odyssey::append_cifar10_file(d, path);
    odyssey::check_dataset(d);
  } catch (const odyssey::Error&) {
  }
  return 0;
}
