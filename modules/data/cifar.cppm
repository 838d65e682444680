// CIFAR-10, binary version (cifar-10-binary.tar.gz, which unpacks to cifar-10-batches-bin/):
// data_batch_1.bin ... data_batch_5.bin for training, test_batch.bin for testing. Each
// record is one label byte then 3072 pixel bytes, 3 planes (R, G, B) of 32x32, row-major,
// which is already NCHW. Every file is checked whole before its records are used.
module;
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>
#include <fmt/format.h>
export module odyssey.data:cifar;
import odyssey.tensor;
import :dataset;

namespace odyssey::detail {

constexpr std::size_t cifar_image_bytes = 3 * 32 * 32;
constexpr std::size_t cifar_record_bytes = 1 + cifar_image_bytes;

inline std::vector<std::string> cifar_files(Split split) {
  if (split == Split::test) return {"test_batch.bin"};
  std::vector<std::string> names;
  for (int i = 1; i <= 5; ++i) names.push_back(fmt::format("data_batch_{}.bin", i));
  return names;
}

/// The whole of `path`; `missing_help` is appended when it cannot be opened.
inline std::vector<std::uint8_t> read_file(const std::filesystem::path& path,
                                           const std::string& missing_help) {
  std::error_code ec;
  const bool is_dir = std::filesystem::is_directory(path, ec);
  std::FILE* f = is_dir ? nullptr : std::fopen(path.c_str(), "rb");
  if (!f)
    throw IoError(fmt::format("cannot open '{}': {}. {}", path.string(),
                              is_dir ? "it is a directory" : std::strerror(errno), missing_help));
  std::vector<std::uint8_t> bytes;
  int err = 0;
  if (std::fseek(f, 0, SEEK_END) == 0) {
    const long size = std::ftell(f);
    if (size >= 0 && std::fseek(f, 0, SEEK_SET) == 0) {
      bytes.resize(static_cast<std::size_t>(size));
      if (std::fread(bytes.data(), 1, bytes.size(), f) != bytes.size()) err = errno ? errno : EIO;
    } else {
      err = errno;
    }
  } else {
    err = errno;
  }
  std::fclose(f);
  if (err) throw IoError(fmt::format("cannot read '{}': {}", path.string(), std::strerror(err)));
  return bytes;
}

}  // namespace odyssey::detail

export namespace odyssey {

/// The CIFAR-10 classes, by label.
inline const std::vector<std::string> cifar10_classes = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};

/// An empty CIFAR-10 dataset: extents, classes and normalisation, no images.
[[nodiscard]] inline Dataset cifar10_dataset(std::string name) {
  Dataset d;
  d.channels = 3;
  d.height = d.width = 32;
  d.class_names = cifar10_classes;
  d.mean = {0.4914f, 0.4822f, 0.4465f};
  d.stddev = {0.2470f, 0.2435f, 0.2616f};
  d.name = std::move(name);
  return d;
}

/// Appends the records of one CIFAR-10 binary file (data_batch_N.bin, test_batch.bin) to
/// `d`. `missing_help` is added to the message when the file cannot be opened.
inline void append_cifar10_file(Dataset& d, const std::filesystem::path& path, const std::string& missing_help = {}) {
  const std::vector<std::uint8_t> bytes = detail::read_file(path, missing_help);
  const std::size_t records = bytes.size() / detail::cifar_record_bytes;
  const std::size_t trailing = bytes.size() % detail::cifar_record_bytes;
  if (bytes.empty())
    throw FormatError(fmt::format("{}: is empty; it should hold 3073-byte records", path.string()));
  if (trailing != 0)
    throw FormatError(fmt::format(
        "{}: {} bytes is not a whole number of {}-byte records (1 label + 3072 pixels): {} "
        "records and {} bytes over. Truncated, or not the binary version of CIFAR-10?",
        path.string(), bytes.size(), detail::cifar_record_bytes, records, trailing));
  d.pixels.reserve(d.pixels.size() + records * detail::cifar_image_bytes);
  for (std::size_t r = 0; r < records; ++r) {
    const std::uint8_t* rec = bytes.data() + r * detail::cifar_record_bytes;
    if (rec[0] >= cifar10_classes.size())
      throw FormatError(fmt::format("{}: record {} has label {}; CIFAR-10 labels are 0-9",
                                    path.string(), r, rec[0]));
    d.labels.push_back(rec[0]);
    d.pixels.insert(d.pixels.end(), rec + 1, rec + detail::cifar_record_bytes);
  }
  d.count += records;
}

/// Loads the train (50000 images) or test (10000) split of CIFAR-10 from `dir`, the
/// cifar-10-batches-bin folder. IoError naming the file and what is expected when one is
/// missing; FormatError naming the file when its size is not whole records or a label is
/// not 0-9.
[[nodiscard]] Dataset load_cifar10(const std::filesystem::path& dir, Split split) {
  const std::vector<std::string> names = detail::cifar_files(split);
  std::string expected;
  for (const auto& n : names) expected += (expected.empty() ? "" : ", ") + n;
  const std::string help = fmt::format(
      "CIFAR-10 {} needs {} in '{}': the binary version of CIFAR-10 (cifar-10-binary.tar.gz, "
      "which unpacks to the folder cifar-10-batches-bin)", split_name(split), expected, dir.string());
  Dataset d = cifar10_dataset(fmt::format("cifar-10 {}", split_name(split)));
  for (const auto& n : names) append_cifar10_file(d, dir / n, help);
  return d;
}

}  // namespace odyssey
