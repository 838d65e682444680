// odyssey: the umbrella module. `import odyssey;` brings every public module.
export module odyssey;
export import odyssey.tensor;
export import odyssey.dist;
export import odyssey.kernels;
export import odyssey.layers;
export import odyssey.optim;
export import odyssey.models.resnet;
export import odyssey.data;
export import odyssey.io;
export import odyssey.train;
