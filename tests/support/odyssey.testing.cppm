// odyssey.testing: what the tests share (not installed): the gradient check, tensor
// comparison, double-precision references of the kernels, whole-network checks, temporary
// directories and a synthetic dataset.
export module odyssey.testing;
export import :gradcheck;
export import :reference;
export import :netcheck;
export import :files;
