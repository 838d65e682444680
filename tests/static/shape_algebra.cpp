// Compile-time tests of the shape algebra: this file compiles only if every assertion
// holds, so building it is the test.
#include <cstddef>
#include <type_traits>
import odyssey.tensor;

using namespace odyssey;

// Extents, rank, size, strides.
static_assert(Shape<64, 32, 32>::rank == 3);
static_assert(Shape<64, 32, 32>::size == 65536);
static_assert(Shape<>::size == 1 && Shape<>::rank == 0);
static_assert(Shape<2, 3, 4>::strides[0] == 12 && Shape<2, 3, 4>::strides[1] == 4 &&
              Shape<2, 3, 4>::strides[2] == 1);
static_assert(Shape<512, 3, 3>::extent<0> == 512 && Shape<512, 3, 3>::extent<2> == 3);

// Concepts.
static_assert(ShapeType<Shape<1>> && !ShapeType<int>);
static_assert(ImageShape<Shape<3, 32, 32>> && !ImageShape<Shape<10>>);
static_assert(VectorShape<Shape<10>> && !VectorShape<Shape<3, 32, 32>>);

// (H + 2P - K) / S + 1 for ResNet-18's convolutions.
static_assert(window_out_extent(32, 3, 1, 1) == 32);  // 3x3 s1 p1 keeps the extent
static_assert(window_out_extent(32, 3, 2, 1) == 16);  // 3x3 s2 p1 halves it
static_assert(window_out_extent(32, 1, 2, 0) == 16);  // the 1x1 s2 projection agrees
static_assert(window_out_extent(7, 3, 2, 1) == 4);    // odd extents round down: (7+2-3)/2+1
static_assert(window_out_extent(5, 3, 2, 0) == 2);
static_assert(window_out_extent(4, 4, 1, 0) == 1);    // a global window

static_assert(std::is_same_v<ConvOutput<Shape<3, 32, 32>, 64, 3, 1, 1>, Shape<64, 32, 32>>);
static_assert(std::is_same_v<ConvOutput<Shape<64, 32, 32>, 128, 3, 2, 1>, Shape<128, 16, 16>>);
static_assert(std::is_same_v<ConvOutput<Shape<64, 32, 32>, 128, 1, 2, 0>, Shape<128, 16, 16>>);
static_assert(std::is_same_v<ConvOutput<Shape<5, 5, 7>, 17, 3, 2, 0>, Shape<17, 2, 3>>);
static_assert(std::is_same_v<PoolOutput<Shape<512, 4, 4>, 4, 4>, Shape<512, 1, 1>>);
static_assert(std::is_same_v<PoolOutput<Shape<3, 8, 8>, 2, 2>, Shape<3, 4, 4>>);

// Windows that do not fit are rejected by the concept, not computed.
static_assert(WindowFits<32, 3, 1, 1>);
static_assert(!WindowFits<2, 5, 1, 0>);   // window larger than the input
static_assert(!WindowFits<32, 3, 0, 1>);  // stride 0
static_assert(!WindowFits<32, 3, 1, 2>);  // padding over half the window
template <class In, std::size_t K, std::size_t R, std::size_t S, std::size_t P>
concept HasConvOutput = requires { typename ConvOutput<In, K, R, S, P>; };
static_assert(HasConvOutput<Shape<3, 32, 32>, 8, 3, 1, 1>);
static_assert(!HasConvOutput<Shape<3, 2, 2>, 8, 5, 1, 0>);
static_assert(!HasConvOutput<Shape<3, 32, 32>, 0, 3, 1, 1>);

// Wiring: equal shapes wire, different ones do not.
static_assert(output_matches_input<Shape<64, 32, 32>, Shape<64, 32, 32>>);
static_assert(!output_matches_input<Shape<64, 32, 32>, Shape<64, 32, 16>>);
static_assert(!output_matches_input<Shape<128, 16, 16>, Shape<256, 8, 8>>);
static_assert(LayerWiring<Shape<10>, Shape<10>>::ok);
