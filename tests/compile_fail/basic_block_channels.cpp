// Must not compile: a stage whose second BasicBlock expects 64 input channels after a first
// block that produces 128. The diagnostic must say "layer wiring:" and name both shapes.
import odyssey;

using namespace odyssey;

using Stage = Sequential<BasicBlock<float, Shape<64, 32, 32>, 128, 2>,
                         BasicBlock<float, Shape<64, 16, 16>, 128, 1>>;

int main() {
  Stage stage;
  (void)stage;
}
