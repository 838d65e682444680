// Gradient checks of whole layers and networks: loss = sum(R * y) for a fixed random R, so
// the analytic gradients come from one backward pass of dy = R; every trainable tensor (a
// sample of its elements) and the input are compared with central differences.
module;
#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <vector>
export module odyssey.testing:netcheck;
import odyssey;
import :gradcheck;

export namespace odyssey::testing {

struct NetCheckOptions {
  GradCheckOptions grad;
  std::size_t samples_per_tensor = 0;  // 0: every element
  std::size_t input_samples = 0;       // 0: every element
};

/// Runs the checks; returns one result per tensor (the input first).
template <class Net, class In, class Out>
std::vector<GradCheckResult> check_network(Net& net, Activation<double, In>& x, Context<double>& ctx,
                                           const NetCheckOptions& opt = {}) {
  net.forward(x, ctx);
  const std::size_t n = x.batch();
  const std::vector<double> r = random_values(n * Out::size, 4242);
  auto loss = [&] {
    const auto& y = net.forward(x, ctx);
    double l = 0;
    for (std::size_t i = 0; i < r.size(); ++i) l += r[i] * y.data()[i];
    return l;
  };
  std::vector<StateEntry<double>> entries;
  net.visit_state(std::string(), [&](StateEntry<double> e) {
    if (e.trainable()) entries.push_back(std::move(e));
  });
  for (auto& e : entries)
    for (auto& g : e.grad) g = 0;
  loss();
  Activation<double, Out> dy(n);
  for (std::size_t i = 0; i < r.size(); ++i) dy.data()[i] = r[i];
  Activation<double, In> dx(n);
  net.backward(dy, &dx, ctx);

  std::vector<GradCheckResult> results;
  auto indices = [](std::size_t size, std::size_t samples, std::uint64_t seed) {
    return samples == 0 ? std::vector<std::size_t>{} : sample_indices(size, samples, seed);
  };
  const auto xi = indices(x.size(), opt.input_samples, 1);
  results.push_back(check_gradient("input", x.span(), dx.span(), loss, opt.grad, xi));
  std::uint64_t seed = 2;
  for (auto& e : entries) {
    const auto idx = indices(e.value.size(), opt.samples_per_tensor, seed++);
    results.push_back(check_gradient(e.name, e.value, e.grad, loss, opt.grad, idx));
  }
  return results;
}

}  // namespace odyssey::testing
