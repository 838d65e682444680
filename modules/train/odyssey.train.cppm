// odyssey.train: the training loop, evaluation, metrics and progress, checkpoints and weights.
export module odyssey.train;
export import :format;
export import :metrics;
export import :progress;
export import :checkpoint;
export import :plot;
export import :trainer;
