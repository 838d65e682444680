// The process the checkpoint kill test (kill_test.sh) starts and kills: it trains a tiny
// ResNet-18 on a synthetic dataset with the real trainer, checkpointing every epoch and
// every 3 steps within epochs (10 steps each).
//   kill_worker train DIR [--resume]   train (or resume) the run in DIR to its end
//   kill_worker check DIR              load DIR's newest checkpoint; print its position,
//                                      "EPOCHS_DONE BATCHES_DONE"
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
import odyssey;
import odyssey.testing;

using namespace odyssey;
using Net = models::ResNet18<float, 1, 8, 8, 10, 4>;


int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: kill_worker train DIR [--resume] | kill_worker check DIR\n");
    return 2;
  }
  const std::string mode = argv[1];
  const std::filesystem::path dir = argv[2];
  try {
    TrainSettings s;
    s.dataset = "synthetic";
    s.epochs = 40;
    s.batch_size = 16;
    s.schedule.lr = 0.05;
    s.seed = 5;
    if (mode == "check") {
      const auto all = list_checkpoints(dir);
      if (all.empty()) {
        std::printf("none\n");
        return 0;
      }
      auto net = std::make_unique<Net>(0);
      Sgd<float> sgd(net->parameters(), s.sgd);
      const auto info = load_checkpoint(all.back(), *net, sgd);
      std::printf("%zu %zu\n", info.epochs_done, info.batches_done);
      return 0;
    }
    RunOptions run;
    run.out = dir;
    run.resume = argc > 3 && std::strcmp(argv[3], "--resume") == 0;
    run.eval_batch = 64;
    run.keep_checkpoints = 2;
    run.checkpoint_every = 3;
    train<Net>(s, run, testing::synthetic_dataset(160, 1), testing::synthetic_dataset(40, 2), "tiny");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kill_worker: %s\n", e.what());
    return 1;
  }
}
