// The element types a safetensors file may hold in odyssey (F32, F64, I64), their names in
// the header, their sizes, and the mapping from C++ types. Shapes print as "[64, 3, 3, 3]".
module;
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
export module odyssey.io:dtype;

export namespace odyssey {

/// Element type of a stored tensor. Every value is little-endian in the file.
enum class DType { f32, f64, i64 };

/// The header's spelling: "F32", "F64", "I64".
[[nodiscard]] constexpr std::string_view dtype_name(DType t) noexcept {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::i64: return "I64";
  }
  return "?";
}

/// Bytes per element.
[[nodiscard]] constexpr std::size_t dtype_size(DType t) noexcept {
  return t == DType::f32 ? 4 : 8;
}

/// The DType spelt `name` in a header, or nothing for a type odyssey does not read.
[[nodiscard]] constexpr std::optional<DType> parse_dtype(std::string_view name) noexcept {
  if (name == "F32") return DType::f32;
  if (name == "F64") return DType::f64;
  if (name == "I64") return DType::i64;
  return std::nullopt;
}

/// True for the C++ types a DType stores: float, double, std::int64_t.
template <class T>
inline constexpr bool has_dtype =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, std::int64_t>;

/// The DType that stores C++ type T.
template <class T>
  requires has_dtype<T>
inline constexpr DType dtype_of = std::is_same_v<T, float>    ? DType::f32
                                  : std::is_same_v<T, double> ? DType::f64
                                                              : DType::i64;

/// "[64, 3, 3, 3]"; "[]" for a scalar.
[[nodiscard]] inline std::string shape_string(std::span<const std::size_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + ']';
}

}  // namespace odyssey
