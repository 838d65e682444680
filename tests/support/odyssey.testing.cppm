// odyssey.testing: what the tests share (not installed): the gradient check, tensor
// comparison, double-precision references of the kernels, and whole-network checks.
export module odyssey.testing;
export import :gradcheck;
export import :reference;
export import :netcheck;
