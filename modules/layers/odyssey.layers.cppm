// odyssey.layers: typed layers and their composition. Every layer and composition satisfies
// the layer contract (concepts.cppm): typed input_shape and output_shape, forward(x, ctx),
// backward(dy, dx, ctx) that adds into its input-gradient sink, and visit_state(prefix, f).
export module odyssey.layers;
export import :context;
export import :state;
export import :gradient;
export import :saved;
export import :concepts;
export import :conv;
export import :batchnorm;
export import :activation;
export import :pool;
export import :dropout;
export import :linear;
export import :loss;
export import :named;
export import :sequential;
export import :residual;
export import :block;
export import :model;
