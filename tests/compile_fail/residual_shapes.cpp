// Must not compile: a residual block whose main branch maps 64x8x8 to 64x4x4 (a stride-2
// convolution) while its shortcut is the identity (64x8x8 -> 64x8x8).
import odyssey;

using namespace odyssey;

using Main = Sequential<Conv2d<float, Shape<64, 8, 8>, 64, 3, 2, 1>, BatchNorm2d<float, Shape<64, 4, 4>>>;

int main() {
  Residual<Main> block;
  (void)block;
}
