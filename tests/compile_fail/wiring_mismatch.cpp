// Must not compile: a layer producing Shape<128,16,16> wired into one expecting
// Shape<256,8,8>. The test checks the diagnostic names both shapes after "layer wiring:".
import odyssey.tensor;

using namespace odyssey;

struct Producer {
  using output_shape = Shape<128, 16, 16>;
};
struct Consumer {
  using input_shape = Shape<256, 8, 8>;
};
static_assert(LayerWiring<Producer::output_shape, Consumer::input_shape, Producer, Consumer>::ok);

int main() {}
