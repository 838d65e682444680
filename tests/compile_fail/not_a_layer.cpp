// Must not compile: a composition with a part that has forward but no backward. The
// diagnostic must say "layer contract:" and name the missing member.
import odyssey;

using namespace odyssey;

struct ForwardOnly {
  using value_type = float;
  using input_shape = Shape<8>;
  using output_shape = Shape<8>;
  const Activation<float, Shape<8>>& forward(const Activation<float, Shape<8>>& x, Context<float>&) { return x; }
  template <class F>
  void visit_state(const std::string&, F&&) {}
};

int main() {
  Sequential<Linear<float, 4, 8>, ForwardOnly> net;
  (void)net;
}
