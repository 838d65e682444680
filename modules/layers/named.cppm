// Named: a layer under a name, so state names (PyTorch's "conv1", "layer2.0.shortcut.0")
// come from the composition's type instead of hand-written visit_state code.
//
//   Chain<Named<"conv1", Conv2d<...>>, Named<"bn1", BatchNorm2d<...>>, ReLU<...>>
//     -> conv1.weight, bn1.weight, bn1.bias, bn1.running_mean, ...
module;
#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
export module odyssey.layers:named;
import odyssey.tensor;
import :context;
import :state;
import :concepts;

export namespace odyssey {

/// A string usable as a template argument: Named<"conv1", L>.
template <std::size_t N>
struct FixedString {
  char chars[N] = {};
  consteval FixedString(const char (&s)[N]) { std::copy_n(s, N, chars); }  // NOLINT: implicit by design
  [[nodiscard]] constexpr std::string_view view() const noexcept { return {chars, N - 1}; }
};

/// L, whose state is named "<prefix>.<Name>.<...>". It is L in every other respect (members,
/// parameters, fusion hooks), so `net.get<0>().weight` still reaches a named Conv2d's weight.
template <FixedString Name, class L>
class Named : public L {
  static_assert(LayerContract<L>::ok);
  static_assert(Name.view().size() > 0 && Name.view().find('.') == std::string_view::npos,
                "Named: a name must be non-empty and contain no '.'");

 public:
  using layer_type = L;
  static constexpr std::string_view name = Name.view();

  Named() = default;
  explicit Named(Rng& rng) requires std::is_constructible_v<L, Rng&> : L(rng) {}
  explicit Named(Rng&) requires(!std::is_constructible_v<L, Rng&>) {}

  template <class F>
  void visit_state(const std::string& prefix, F&& f) {
    L::visit_state(state_name(prefix, std::string(name)), f);
  }
};

namespace detail {
template <class L>
struct IsNamed : std::false_type {};
template <FixedString Name, class L>
struct IsNamed<Named<Name, L>> : std::true_type {};
}  // namespace detail

/// A Named<...> layer.
template <class L>
concept NamedLayer = detail::IsNamed<L>::value;

}  // namespace odyssey
