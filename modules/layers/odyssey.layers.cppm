// odyssey.layers: typed layers and their composition. Each layer states its input_shape and
// output_shape as types, owns its parameters (with gradients) and its output, caches what its
// backward pass needs, and has a forward/backward pair.
export module odyssey.layers;
export import :context;
export import :state;
export import :conv;
export import :batchnorm;
export import :activation;
export import :pool;
export import :linear;
export import :loss;
export import :sequential;
export import :block;
export import :concepts;
