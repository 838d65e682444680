// odyssey.io: safetensors files (read, validated; written atomically) and loading their
// tensors into a model's storage all or nothing.
export module odyssey.io;
export import :dtype;
export import :atomic_file;
export import :reader;
export import :writer;
export import :binding;
