// odyssey.tensor: shapes as types, typed tensors, errors, seeded initialisers.
export module odyssey.tensor;
export import :shape;
export import :errors;
export import :storage;
export import :tensor;
export import :random;
