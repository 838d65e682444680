// odyssey.optim: SGD with momentum (PyTorch's semantics) and learning-rate schedules.
export module odyssey.optim;
export import :optimizer;
export import :sgd;
export import :schedule;
