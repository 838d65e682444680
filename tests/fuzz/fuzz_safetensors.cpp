// Fuzz target: the safetensors reader and the all-or-nothing loader (weights, checkpoints).
// Every accepted file is then loaded tensor by tensor into buffers of its own shapes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

import odyssey.tensor;
import odyssey.io;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::byte> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = std::byte{data[i]};
  try {
    const auto file = odyssey::SafeTensors::parse(std::move(bytes), "fuzz.safetensors");
    std::vector<std::vector<std::byte>> storage;
    std::vector<odyssey::TensorSlot> slots;
    for (const auto& name : file.names()) {
      const auto& t = file.tensor(name);
      storage.emplace_back(t.bytes.size());
      slots.push_back({name, t.dtype, t.shape, storage.back().data()});
    }
    odyssey::load_tensors(file, slots);
    (void)file.metadata();
  } catch (const odyssey::Error&) {
  }
  return 0;
}
