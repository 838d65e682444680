// Must not compile: a residual join of a 64x8x8 main branch with a 64x4x4 shortcut.
import odyssey;

using namespace odyssey;

int main() {
  ResidualAdd<float, Shape<64, 8, 8>, Shape<64, 4, 4>> join;
  (void)join;
}
