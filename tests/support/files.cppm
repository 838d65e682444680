// Test fixtures made on the fly: temporary directories, a small synthetic dataset whose
// classes a network can learn in a few steps, and the trainer tests' tiny runs.
module;
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>
export module odyssey.testing:files;
import odyssey;

export namespace odyssey::testing {

/// A fresh directory under the system's temp directory, removed with its contents (even
/// when a test made it read-only).
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag = "test") {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           ("odyssey-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all, std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path operator/(const std::string& name) const { return path / name; }
};

/// `count` 1-channel 8x8 images of 10 classes: noise plus one bright pixel whose position
/// is the class.
Dataset synthetic_dataset(std::size_t count, std::uint64_t seed) {
  Dataset d;
  d.count = count;
  d.channels = 1;
  d.height = d.width = 8;
  d.name = "synthetic";
  d.mean = {0.5f, 0, 0};
  d.stddev = {0.25f, 0, 0};
  for (int k = 0; k < 10; ++k) d.class_names.push_back("class " + std::to_string(k));
  Rng rng(seed);
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint8_t label = std::uint8_t(i % 10);
    d.labels.push_back(label);
    for (std::size_t p = 0; p < 64; ++p) d.pixels.push_back(std::uint8_t(rng.below(128) + (p == label * 6u ? 127 : 0)));
  }
  return d;
}

/// A file's bytes, to compare runs bitwise.
inline std::vector<char> file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// The trainer tests' run: `epochs` epochs of batch 16, cosine from lr 0.05, seed 11.
inline TrainSettings tiny_settings(std::size_t epochs) {
  TrainSettings s;
  s.dataset = "synthetic";
  s.epochs = epochs;
  s.batch_size = 16;
  s.schedule.kind = ScheduleKind::cosine;
  s.schedule.lr = 0.05;
  s.seed = 11;
  return s;
}

/// The trainer tests' run options: into `out` (resuming when asked), a metrics row every 2
/// steps, evaluation in batches of 32.
inline RunOptions tiny_run(const std::filesystem::path& out, bool resume = false) {
  RunOptions r;
  r.out = out;
  r.resume = resume;
  r.log_every = 2;
  r.eval_batch = 32;
  return r;
}

/// The trainer tests' data: 100 training images (6 batches of 16 and one of 4), 40 test.
inline const Dataset& tiny_train_set() {
  static const Dataset d = synthetic_dataset(100, 1);
  return d;
}
inline const Dataset& tiny_test_set() {
  static const Dataset d = synthetic_dataset(40, 2);
  return d;
}

}  // namespace odyssey::testing
