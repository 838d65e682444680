// odyssey: the umbrella module. `import odyssey;` brings every public module.
export module odyssey;
export import odyssey.tensor;
export import odyssey.kernels;
