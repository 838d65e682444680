// Must not compile: a classifier taking 256 features after a global pool of 512 channels.
import odyssey;

using namespace odyssey;

using Head = Sequential<GlobalAvgPool<float, Shape<512, 4, 4>>, Linear<float, 256, 10>>;

int main() {
  Head head;
  (void)head;
}
