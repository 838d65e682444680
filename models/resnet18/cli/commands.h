// The subcommands of `odyssey`; each returns the process exit code. Defined in train.cpp
// (train) and infer.cpp (eval, predict, info).
#pragma once
#include <CLI/CLI.hpp>

#include <functional>

namespace odyssey::cli {

/// Registers each subcommand on `app`; the returned callable runs the chosen one.
std::function<int()> add_train(CLI::App& app);
std::function<int()> add_eval(CLI::App& app);
std::function<int()> add_predict(CLI::App& app);
std::function<int()> add_info(CLI::App& app);

}  // namespace odyssey::cli
