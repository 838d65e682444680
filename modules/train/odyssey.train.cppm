// odyssey.train: training any model (the step, the loop, evaluation), metrics, checkpoints and
// weights, reported through a TrainObserver; the library itself prints nothing.
export module odyssey.train;
export import :format;
export import :metrics;
export import :settings;
export import :checkpoint;
export import :evaluate;
export import :step;
export import :plot;
export import :trainer;
