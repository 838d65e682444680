// `odyssey`: train a CIFAR ResNet (ResNet-18, ResNet-34, PreAct ResNet-18) on Fashion-MNIST or
// CIFAR-10, evaluate and use its weights.
// Every error a user can cause ends in one message on stderr and exit code 2.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <vector>

#include "commands.h"
import odyssey;
import odyssey.mpi;
import odyssey.cli;

namespace {

/// Ends the process after a failure with exit code `code`: normally when every rank knows
/// of it (or there is one process), else by aborting the whole run, since the other ranks
/// wait for this one in a collective.
int fail(int code) {
  auto* comm = odyssey::cli::communicator();
  if (odyssey::distributed(comm) && !odyssey::failure_agreed()) comm->abort(code);
  return code;
}

/// Prints a failure: rank 0 always, another rank only when the others do not know of it.
bool should_print() { return odyssey::cli::lead_rank() || !odyssey::failure_agreed(); }

}  // namespace

int main(int argc, char** argv) {
  // Under mpirun each process is one rank of a data-parallel run; rank 0 alone prints.
  std::unique_ptr<odyssey::MpiSession> mpi;
  std::unique_ptr<odyssey::MpiCommunicator> world;
  std::unique_ptr<odyssey::TimedCommunicator> timed;
  if (odyssey::launched_by_mpirun()) {
    try {
      mpi = std::make_unique<odyssey::MpiSession>(argc, argv);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "odyssey: error: %s\n", e.what());
      return odyssey::cli::kExitBadInput;
    }
    world = std::make_unique<odyssey::MpiCommunicator>();
    timed = std::make_unique<odyssey::TimedCommunicator>(*world);
    odyssey::cli::communicator() = timed.get();
    if (world->rank() != 0 && !std::freopen("/dev/null", "w", stdout)) return odyssey::cli::kExitBadInput;
  }
  // ODYSSEY_TARGET=AVX2 (say) runs every kernel on that SIMD target instead of the best the
  // CPU has: to reproduce bit for bit, or to time, a run of a machine with fewer vector units.
  if (const char* target = std::getenv("ODYSSEY_TARGET"); target && *target) {
    try {
      odyssey::kernels::use_target(target);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "odyssey: error: ODYSSEY_TARGET: %s\n", e.what());
      return odyssey::cli::kExitBadInput;
    }
  }
  CLI::App app{
      "odyssey: CIFAR ResNets (ResNet-18, ResNet-34, PreAct ResNet-18) on the CPU. Train on\n"
      "Fashion-MNIST (Debian's dataset-fashion-mnist, the default) or CIFAR-10 (binary version),\n"
      "resume a run, evaluate weights, predict images, and inspect weight files (safetensors with\n"
      "PyTorch's names).\n"
      "Exit codes: 0 success, 1 training diverged, 2 bad input or usage, 130/143 training stopped\n"
      "by SIGINT/SIGTERM (with a checkpoint to resume from).\n"
      "Environment: ODYSSEY_TARGET=AVX2 (or another Highway target name) runs the kernels on that\n"
      "SIMD target instead of the best one; results are bitwise the same per target.",
      "odyssey"};
  app.require_subcommand(1);
  odyssey::cli::command_line().assign(argv, argv + argc);
  std::map<std::string, std::function<int()>> run = {{"train", odyssey::cli::add_train(app)},
                                                     {"eval", odyssey::cli::add_eval(app)},
                                                     {"predict", odyssey::cli::add_predict(app)},
                                                     {"info", odyssey::cli::add_info(app)}};
  // 0: parsed; 1: --help or --version shown; 2: a usage error.
  int parsed = 0;
  std::function<void()> report;
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    parsed = 1;
    report = [&app, e] { app.exit(e); };
  } catch (const CLI::ParseError& e) {
    parsed = 2;
    report = [&app, e] { app.exit(e); };  // prints the message and a --help hint
  }
  if (auto* comm = odyssey::cli::communicator(); odyssey::distributed(comm)) {
    // Every rank learns how the others parsed (MPMD launches give ranks other arguments): a
    // rank that stopped alone would leave the others waiting in the first collective.
    const double mine = parsed;
    std::vector<double> all(std::size_t(comm->size()));
    comm->allgather(std::span<const double>(&mine, 1), all);
    const int worst = int(*std::max_element(all.begin(), all.end()));
    if (parsed && (comm->rank() == 0 || all[0] != parsed)) report();
    if (worst) return worst == 2 ? odyssey::cli::kExitBadInput : 0;
  } else if (parsed) {
    report();
    return parsed == 2 ? odyssey::cli::kExitBadInput : 0;
  }
  try {
    for (auto* sub : app.get_subcommands()) return run.at(sub->get_name())();
  } catch (const odyssey::TrainingDiverged& e) {
    // Every rank sees the same loss, so every rank stops here at the same step.
    odyssey::failure_agreed() = true;
    if (should_print())
      std::fprintf(stderr, "odyssey: %s Try a smaller --lr or a warm-up (--warmup-epochs).\n", e.what());
    return odyssey::cli::kExitDiverged;
  } catch (const odyssey::SettingError& e) {
    // Settings are the same on every rank, and so their errors; those of rank 0's run
    // directory reach every rank (odyssey::collectively).
    odyssey::failure_agreed() = true;
    if (should_print())
      std::fprintf(stderr, "odyssey: error: %s (%s)\n", e.what(), odyssey::cli::flag_hint(e.setting()).c_str());
    return fail(odyssey::cli::kExitBadInput);
  } catch (const odyssey::Error& e) {
    if (should_print()) std::fprintf(stderr, "odyssey: error: %s\n", e.what());
    return fail(odyssey::cli::kExitBadInput);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "odyssey: error: out of memory (try a smaller --batch-size)\n");
    return fail(odyssey::cli::kExitBadInput);
  } catch (const std::exception& e) {
    if (should_print()) std::fprintf(stderr, "odyssey: error: %s\n", e.what());
    return fail(odyssey::cli::kExitBadInput);
  }
  return 0;
}
