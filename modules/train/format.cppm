// Run-time-checked formatting for templates in this module's interface. fmt's compile-time
// format-string check, instantiated in an importing translation unit with argument types the
// module itself never used, fails with clang 19 ("call to function 'find' that is neither
// visible in the template definition nor found by argument-dependent lookup"): the check's
// helpers live in the global module fragment and are not reachable there. Formatting through
// fmt::vformat avoids instantiating the check.
module;
#include <string>
#include <string_view>
#include <fmt/format.h>
export module odyssey.train:format;

export namespace odyssey::detail {

template <class... Args>
std::string rformat(std::string_view format, const Args&... args) {
  return fmt::vformat(format, fmt::make_format_args(args...));
}

}  // namespace odyssey::detail
