// The model API: state, parameters and counts of any layer or composition, a walk over its
// parts (and zero-initialised residual branches), and Model<Body>, which gives a composition the members a top-level network is used through.
module;
#include <cstddef>
#include <set>
#include <string>
#include <vector>
export module odyssey.layers:model;
import odyssey.tensor;
import :state;
import :concepts;

export namespace odyssey {

/// Every state entry of `net` (parameters, running statistics, counters) with its PyTorch
/// name, in state_dict order. Throws Error when two entries share a name (two unnamed parts of
/// a Chain that both hold state: name them).
template <Layer Net>
std::vector<StateEntry<typename Net::value_type>> state(Net& net) {
  std::vector<StateEntry<typename Net::value_type>> entries;
  std::set<std::string> names;
  net.visit_state(std::string(), [&](StateEntry<typename Net::value_type> e) {
    if (!names.insert(e.name).second)
      throw Error("state name '" + e.name + "' appears twice in the model; give the parts that hold "
                  "state distinct names (Named<\"...\", Layer>)");
    entries.push_back(std::move(e));
  });
  return entries;
}

/// The trainable entries of state(net), each with its gradient.
template <Layer Net>
std::vector<StateEntry<typename Net::value_type>> parameters(Net& net) {
  auto all = state(net);
  std::vector<StateEntry<typename Net::value_type>> out;
  for (auto& e : all)
    if (e.trainable()) out.push_back(std::move(e));
  return out;
}

/// The number of trainable scalars.
template <Layer Net>
std::size_t parameter_count(Net& net) {
  std::size_t n = 0;
  net.visit_state(std::string(), [&](const StateEntry<typename Net::value_type>& e) {
    n += e.trainable() ? e.value.size() : 0;
  });
  return n;
}

/// Calls f(layer) for `layer` and then, depth first, for every part of it (compositions and
/// residual branches, through for_each_part).
template <class L, class F>
void for_each_layer(L& layer, F&& f) {
  f(layer);
  if constexpr (requires { layer.for_each_part([](auto&) {}); })
    layer.for_each_part([&](auto& part) { for_each_layer(part, f); });
}

/// Zero-initialises the scale (weight) of the batch norm that ends the main branch of every
/// residual block of `net`, so each block starts as its shortcut ("zero_init_residual" of
/// torchvision; Goyal et al. 2017, "Accurate, Large Minibatch SGD"). Returns how many it
/// zeroed (0 for blocks whose branch ends otherwise, as pre-activation blocks do).
template <Layer Net>
std::size_t zero_init_residual(Net& net) {
  std::size_t n = 0;
  for_each_layer(net, [&](auto& layer) {
    if constexpr (requires { layer.main.last_part().running_mean; layer.shortcut; }) {
      auto& norm = layer.main.last_part();
      norm.weight.value.fill(typename Net::value_type(0));
      ++n;
    }
  });
  return n;
}

/// A top-level network made of a composition `Body`: the body itself, plus state(),
/// parameters(), parameter_count() and a visit_state without prefix.
template <Layer Body>
class Model : public Body {
 public:
  using Body::Body;
  using Body::visit_state;

  template <class F>
  void visit_state(F&& f) {
    Body::visit_state(std::string(), f);
  }
  [[nodiscard]] std::vector<StateEntry<typename Body::value_type>> state() { return odyssey::state(body()); }
  [[nodiscard]] std::vector<StateEntry<typename Body::value_type>> parameters() {
    return odyssey::parameters(body());
  }
  [[nodiscard]] std::size_t parameter_count() { return odyssey::parameter_count(body()); }

 private:
  Body& body() noexcept { return *this; }
};

}  // namespace odyssey
