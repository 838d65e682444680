// odyssey.data: datasets (CIFAR-10 binary, IDX / Fashion-MNIST, PNG images), normalisation,
// augmentation, shuffling and background batching.
export module odyssey.data;
export import :dataset;
export import :idx;
export import :fashion_mnist;
export import :cifar;
export import :augment;
export import :loader;
export import :png;
