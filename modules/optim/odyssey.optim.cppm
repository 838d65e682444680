// odyssey.optim: SGD with momentum and AdamW (PyTorch's semantics) behind one Optimizer
// interface, an exponential moving average of the weights, and learning-rate schedules.
export module odyssey.optim;
export import :optimizer;
export import :sgd;
export import :adamw;
export import :average;
export import :schedule;
