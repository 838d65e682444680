// odyssey.optim: SGD with momentum and AdamW (PyTorch's semantics) behind one Optimizer
// interface, and learning-rate schedules.
export module odyssey.optim;
export import :optimizer;
export import :sgd;
export import :adamw;
export import :schedule;
