// The model API: state, parameters and counts of any layer or composition, and Model<Body>,
// which gives a composition the members a top-level network is used through.
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
