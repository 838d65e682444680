// Reading safetensors files. Layout: an 8-byte little-endian header length N, N bytes of
// JSON mapping each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// into the data region that follows the header) plus an optional "__metadata__" object of
// strings, then the data region. The whole file is read into memory (its size bounds every
// allocation) and every structural rule is checked before any tensor is handed out; an
// error names the file and, where one is involved, the tensor.
module;
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
export module odyssey.io:reader;
import odyssey.tensor;
import :dtype;

static_assert(std::endian::native == std::endian::little,
              "odyssey.io copies little-endian file data in place");

namespace odyssey::detail {

/// Headers beyond this are refused before anything is parsed: real ones are kilobytes.
constexpr std::uint64_t max_header_bytes = 100'000'000;

[[noreturn]] inline void bad_tensor(const std::string& source, std::string_view tensor,
                                    std::string_view what) {
  throw FormatError(fmt::format("{}: tensor '{}': {}", source, tensor, what));
}

/// A JSON value that is a non-negative integer, or nothing.
inline bool as_count(const nlohmann::json& v, std::uint64_t& out) {
  if (!v.is_number_unsigned()) return false;
  out = v.get<std::uint64_t>();
  return true;
}

}  // namespace odyssey::detail

export namespace odyssey {

/// One tensor of a file: its type, shape and raw little-endian bytes (inside the file's
/// buffer, valid as long as the SafeTensors object lives).
struct TensorView {
  std::string name;
  DType dtype = DType::f32;
  std::vector<std::size_t> shape;
  std::span<const std::byte> bytes;

  [[nodiscard]] std::size_t elements() const noexcept { return bytes.size() / dtype_size(dtype); }
};

/// A validated safetensors file held in memory.
class SafeTensors {
 public:
  /// Reads and validates `path`. IoError when it cannot be read, FormatError when its
  /// contents break the format.
  static SafeTensors read(const std::filesystem::path& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
      throw IoError(fmt::format("cannot read '{}': it is a directory", path.string()));
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw IoError(fmt::format("cannot open '{}': {}", path.string(), std::strerror(errno)));
    std::vector<std::byte> bytes;
    const auto close_and_throw = [&](int err) {
      std::fclose(f);
      throw IoError(fmt::format("cannot read '{}': {}", path.string(), std::strerror(err)));
    };
    if (std::fseek(f, 0, SEEK_END) != 0) close_and_throw(errno);
    const long size = std::ftell(f);
    if (size < 0 || std::fseek(f, 0, SEEK_SET) != 0) close_and_throw(errno);
    bytes.resize(static_cast<std::size_t>(size));
    if (std::fread(bytes.data(), 1, bytes.size(), f) != bytes.size())
      close_and_throw(std::ferror(f) ? errno : EIO);
    std::fclose(f);
    return parse(std::move(bytes), path.string());
  }

  /// Validates a file's bytes; `source` names it in error messages.
  static SafeTensors parse(std::vector<std::byte> file, std::string source) {
    SafeTensors st;
    st.source_ = std::move(source);
    st.file_ = std::move(file);
    st.index();
    return st;
  }

  SafeTensors(SafeTensors&&) noexcept = default;
  SafeTensors& operator=(SafeTensors&&) noexcept = default;
  SafeTensors(const SafeTensors&) = delete;
  SafeTensors& operator=(const SafeTensors&) = delete;

  /// The path (or name) given when the file was read; error messages start with it.
  [[nodiscard]] const std::string& source() const noexcept { return source_; }

  /// Tensor names, sorted.
  [[nodiscard]] std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, view] : tensors_) out.push_back(name);
    return out;
  }
  [[nodiscard]] std::size_t size() const noexcept { return tensors_.size(); }
  [[nodiscard]] bool contains(std::string_view name) const { return tensors_.contains(name); }

  /// The tensor called `name`; FormatError naming the file and the tensor when absent.
  [[nodiscard]] const TensorView& tensor(std::string_view name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end())
      throw FormatError(fmt::format("{}: has no tensor '{}'", source_, name));
    return it->second;
  }

  [[nodiscard]] const std::map<std::string, std::string>& metadata() const noexcept {
    return metadata_;
  }

  /// Copies tensor `name` into `dst`, which must have its element type and count.
  template <class T>
    requires has_dtype<T>
  void copy_to(std::string_view name, std::span<T> dst) const {
    const TensorView& t = tensor(name);
    if (t.dtype != dtype_of<T>)
      throw FormatError(fmt::format("{}: tensor '{}' is {}, not {}", source_, name,
                                    dtype_name(t.dtype), dtype_name(dtype_of<T>)));
    if (t.elements() != dst.size())
      throw ShapeError(fmt::format("{}: tensor '{}' has {} elements (shape {}), not {}", source_,
                                   name, t.elements(), shape_string(t.shape), dst.size()));
    if (!dst.empty()) std::memcpy(dst.data(), t.bytes.data(), t.bytes.size());
  }

  /// Tensor `name` as a vector of T (T must match its dtype).
  template <class T>
    requires has_dtype<T>
  [[nodiscard]] std::vector<T> values(std::string_view name) const {
    std::vector<T> out(tensor(name).elements());
    copy_to<T>(name, out);
    return out;
  }

 private:
  SafeTensors() = default;

  struct Extent {
    std::uint64_t begin, end;
    const std::string* name;
  };

  void index() {
    using detail::bad_tensor;
    if (file_.size() < 8)
      throw FormatError(fmt::format(
          "{}: is {} bytes long, too short for a safetensors file (8 bytes of header length "
          "come first)", source_, file_.size()));
    std::uint64_t n = 0;
    std::memcpy(&n, file_.data(), 8);
    if (n > detail::max_header_bytes)
      throw FormatError(fmt::format("{}: claims a {}-byte header, beyond the {}-byte limit: "
                                    "not a safetensors file, or a corrupt one",
                                    source_, n, detail::max_header_bytes));
    if (n > file_.size() - 8)
      throw FormatError(fmt::format("{}: claims a {}-byte header but only {} bytes follow the "
                                    "header length (truncated file?)",
                                    source_, n, file_.size() - 8));
    const char* text = reinterpret_cast<const char*>(file_.data()) + 8;
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(text, text + n);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(fmt::format("{}: the header is not valid JSON: {}", source_, e.what()));
    }
    if (!header.is_object())
      throw FormatError(fmt::format("{}: the header is not a JSON object", source_));

    const std::span<const std::byte> data = std::span<const std::byte>(file_).subspan(8 + n);
    std::vector<Extent> extents;
    for (const auto& [key, value] : header.items()) {
      if (key == "__metadata__") {
        read_metadata(value);
        continue;
      }
      if (!value.is_object()) bad_tensor(source_, key, "its entry is not a JSON object");
      TensorView t;
      t.name = key;
      const auto dtype = value.find("dtype");
      if (dtype == value.end() || !dtype->is_string())
        bad_tensor(source_, key, "\"dtype\" is missing or not a string");
      const auto parsed = parse_dtype(dtype->get<std::string>());
      if (!parsed)
        bad_tensor(source_, key, fmt::format("dtype \"{}\" is not one odyssey reads (F32, F64, I64)",
                                             dtype->get<std::string>()));
      t.dtype = *parsed;

      const auto shape = value.find("shape");
      if (shape == value.end() || !shape->is_array())
        bad_tensor(source_, key, "\"shape\" is missing or not an array");
      std::uint64_t elements = 1;
      for (const auto& d : *shape) {
        std::uint64_t extent = 0;
        if (!detail::as_count(d, extent))
          bad_tensor(source_, key, fmt::format("shape {} holds {}, not a non-negative integer",
                                               shape->dump(), d.dump()));
        if (__builtin_mul_overflow(elements, extent, &elements))
          bad_tensor(source_, key, fmt::format("the element count of shape {} overflows", shape->dump()));
        t.shape.push_back(static_cast<std::size_t>(extent));
      }
      std::uint64_t bytes = 0;
      if (__builtin_mul_overflow(elements, dtype_size(t.dtype), &bytes))
        bad_tensor(source_, key, fmt::format("the byte count of shape {} overflows", shape->dump()));

      const auto offsets = value.find("data_offsets");
      std::uint64_t begin = 0, end = 0;
      if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 ||
          !detail::as_count((*offsets)[0], begin) || !detail::as_count((*offsets)[1], end))
        bad_tensor(source_, key, "\"data_offsets\" is missing or not [begin, end] (two non-negative integers)");
      if (begin > end)
        bad_tensor(source_, key, fmt::format("data_offsets [{}, {}] ends before it begins", begin, end));
      if (end > data.size())
        bad_tensor(source_, key, fmt::format("data_offsets [{}, {}] reach beyond the {}-byte data "
                                             "region (truncated file?)", begin, end, data.size()));
      if (end - begin != bytes)
        bad_tensor(source_, key, fmt::format("data_offsets [{}, {}] span {} bytes but {} x {} "
                                             "needs {}", begin, end, end - begin,
                                             shape_string(t.shape), dtype_name(t.dtype), bytes));
      t.bytes = data.subspan(begin, end - begin);
      const auto it = tensors_.emplace(key, std::move(t)).first;
      extents.push_back({begin, end, &it->first});
    }
    check_coverage(extents, data.size());
  }

  void read_metadata(const nlohmann::json& value) {
    if (!value.is_object())
      throw FormatError(fmt::format("{}: \"__metadata__\" is not a JSON object", source_));
    for (const auto& [k, v] : value.items()) {
      if (!v.is_string())
        throw FormatError(fmt::format("{}: \"__metadata__\" entry '{}' is {}, not a string",
                                      source_, k, v.dump()));
      metadata_.emplace(k, v.get<std::string>());
    }
  }

  /// The tensors must tile the data region exactly: no overlap, no gap, nothing left over.
  void check_coverage(std::vector<Extent>& extents, std::size_t data_size) const {
    std::ranges::sort(extents, {}, [](const Extent& e) { return std::tie(e.begin, e.end, *e.name); });
    std::uint64_t cursor = 0;
    const std::string* previous = nullptr;
    for (const Extent& e : extents) {
      if (e.begin < cursor)
        detail::bad_tensor(source_, *e.name, fmt::format("bytes [{}, {}) overlap tensor '{}'",
                                                         e.begin, e.end, *previous));
      if (e.begin > cursor)
        detail::bad_tensor(source_, *e.name, fmt::format(
            "bytes [{}, {}) of the data region before it belong to no tensor", cursor, e.begin));
      cursor = e.end;
      previous = e.name;
    }
    if (cursor != data_size)
      throw FormatError(fmt::format("{}: the last {} bytes of the data region belong to no tensor",
                                    source_, data_size - cursor));
  }

  std::string source_;
  std::vector<std::byte> file_;
  std::map<std::string, TensorView, std::less<>> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace odyssey
