// Writing safetensors files. The header lists the tensors in name order and so does the
// data region, contiguously, so equal inputs give byte-identical files; the header is padded
// with spaces to a multiple of 8 bytes so the data region starts 8-byte aligned. The file is
// written atomically (AtomicFile): a failed save leaves the previous file in place.
module;
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
export module odyssey.io:writer;
import odyssey.tensor;
import :dtype;
import :atomic_file;

export namespace odyssey {

/// A tensor to save: `data` points to product(shape) elements of `dtype`, row-major.
struct TensorEntry {
  std::string name;
  DType dtype = DType::f32;
  std::vector<std::size_t> shape;
  const void* data = nullptr;
};

}  // namespace odyssey

namespace odyssey::detail {

/// Bytes of one entry's data; ValueError naming `file` and the tensor on overflow.
inline std::uint64_t entry_bytes(const std::string& file, const TensorEntry& e) {
  std::uint64_t bytes = dtype_size(e.dtype);
  for (std::size_t d : e.shape)
    if (__builtin_mul_overflow(bytes, std::uint64_t{d}, &bytes))
      throw ValueError(fmt::format("cannot save '{}': tensor '{}' of shape {} is too large", file,
                                   e.name, shape_string(e.shape)));
  return bytes;
}

/// The start of a safetensors file for `entries` (already sorted by name): the 8-byte
/// header length and the JSON header padded with spaces. ValueError naming `file` for an
/// empty, duplicate or reserved name, or a string that is not valid UTF-8.
inline std::string header_bytes(const std::string& file, std::span<const TensorEntry* const> sorted,
                                const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const TensorEntry& e = *sorted[i];
    if (e.name.empty()) throw ValueError(fmt::format("cannot save '{}': a tensor has an empty name", file));
    if (e.name == "__metadata__")
      throw ValueError(fmt::format("cannot save '{}': '__metadata__' is not a tensor name", file));
    if (i > 0 && sorted[i - 1]->name == e.name)
      throw ValueError(fmt::format("cannot save '{}': tensor '{}' is given twice", file, e.name));
    if (e.data == nullptr && entry_bytes(file, e) != 0)
      throw ValueError(fmt::format("cannot save '{}': tensor '{}' has no data", file, e.name));
    const std::uint64_t bytes = entry_bytes(file, e);
    header[e.name] = {{"dtype", dtype_name(e.dtype)},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string json;
  try {
    json = header.dump();
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(fmt::format("cannot save '{}': a tensor name or metadata string is not "
                                 "valid UTF-8: {}", file, e.what()));
  }
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  std::uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + json;
}

}  // namespace odyssey::detail

export namespace odyssey {

/// Saves `entries` (any order; stored sorted by name) with optional string metadata to
/// `path`, atomically. ValueError for a bad name (nothing is written); IoError naming `path`
/// and the system's reason when it cannot be written, and then the previous file at `path`,
/// if any, remains as it was.
void write_safetensors(const std::filesystem::path& path, std::span<const TensorEntry> entries,
                       const std::map<std::string, std::string>& metadata = {}) {
  std::vector<const TensorEntry*> sorted;
  for (const TensorEntry& e : entries) sorted.push_back(&e);
  std::ranges::sort(sorted, {}, &TensorEntry::name);
  const std::string header = detail::header_bytes(path.string(), sorted, metadata);

  AtomicFile file(path);
  file.write(header.data(), header.size());
  for (const TensorEntry* e : sorted) file.write(e->data, detail::entry_bytes(path.string(), *e));
  file.commit();
}

}  // namespace odyssey
