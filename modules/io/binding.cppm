// Loading a file's tensors into a model's (or optimizer's) storage, all or nothing: every
// slot is checked against the file first (present, same dtype, same shape, no tensor left
// over, floats finite), and only when all pass is anything copied. A failure therefore
// leaves every destination exactly as it was.
module;
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include <fmt/format.h>
#include <fmt/ranges.h>
export module odyssey.io:binding;
import odyssey.tensor;
import :dtype;
import :reader;

namespace odyssey::detail {

/// Index and value of the first non-finite element of a float tensor's bytes; index npos
/// when every element is finite.
template <class T>
std::pair<std::size_t, double> first_non_finite(std::span<const std::byte> bytes) {
  const std::size_t n = bytes.size() / sizeof(T);
  for (std::size_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, bytes.data() + i * sizeof(T), sizeof(T));
    if (!std::isfinite(v)) return {i, static_cast<double>(v)};
  }
  return {std::string_view::npos, 0.0};
}

}  // namespace odyssey::detail

export namespace odyssey {

/// Where one named tensor of a file goes: `data` has room for product(shape) elements of
/// `dtype`.
struct TensorSlot {
  std::string name;
  DType dtype = DType::f32;
  std::vector<std::size_t> shape;
  void* data = nullptr;
};

/// Fills every slot from `file`, or throws without writing anything:
/// FormatError for a missing tensor, a dtype mismatch or tensors in the file that no slot
/// takes; ShapeError for a shape mismatch; ValueError for a NaN or infinity in a float
/// tensor, or a slot named twice. Every message names the file and the tensor.
void load_tensors(const SafeTensors& file, std::span<const TensorSlot> slots) {
  const std::string& src = file.source();
  std::set<std::string_view> wanted;
  for (const TensorSlot& s : slots) {
    if (!wanted.insert(s.name).second)
      throw ValueError(fmt::format("{}: tensor '{}' is asked for twice", src, s.name));
    if (!file.contains(s.name))
      throw FormatError(fmt::format("{}: has no tensor '{}' (a {} {})", src, s.name,
                                    dtype_name(s.dtype), shape_string(s.shape)));
    const TensorView& t = file.tensor(s.name);
    if (t.dtype != s.dtype)
      throw FormatError(fmt::format("{}: tensor '{}' is {} in the file but {} is expected", src,
                                    s.name, dtype_name(t.dtype), dtype_name(s.dtype)));
    if (t.shape != s.shape)
      throw ShapeError(fmt::format("{}: tensor '{}' has shape {} in the file but {} is expected",
                                   src, s.name, shape_string(t.shape), shape_string(s.shape)));
  }
  std::vector<std::string> extra;
  for (const std::string& name : file.names())
    if (!wanted.contains(name)) extra.push_back("'" + name + "'");
  if (!extra.empty())
    throw FormatError(fmt::format("{}: holds {} tensor{} nothing expects: {}", src, extra.size(),
                                  extra.size() == 1 ? "" : "s", fmt::join(extra, ", ")));
  for (const TensorSlot& s : slots) {
    const TensorView& t = file.tensor(s.name);
    std::pair<std::size_t, double> bad{std::string_view::npos, 0.0};
    if (t.dtype == DType::f32) bad = detail::first_non_finite<float>(t.bytes);
    if (t.dtype == DType::f64) bad = detail::first_non_finite<double>(t.bytes);
    if (bad.first != std::string_view::npos)
      throw ValueError(fmt::format("{}: tensor '{}' element {} is {}, not a finite number", src,
                                   s.name, bad.first, bad.second));
  }
  for (const TensorSlot& s : slots) {
    const TensorView& t = file.tensor(s.name);
    if (!t.bytes.empty()) std::memcpy(s.data, t.bytes.data(), t.bytes.size());
  }
}

}  // namespace odyssey
