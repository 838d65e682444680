// Weights and checkpoints as safetensors files with PyTorch's tensor names.
//
// A weights file holds the model's state dict (parameters, running statistics and
// num_batches_tracked) and metadata (dataset, normalisation, class names), so it loads in
// PyTorch and in `odyssey eval` / `predict`. A checkpoint adds the optimizer's momentum
// buffers ("optimizer.momentum.<parameter>") and the position of the run (epoch, step, and
// for a mid-epoch checkpoint the batches of the epoch done) and its settings in the metadata; the data order and augmentation are pure functions of
// (seed, epoch, batch), so those numbers are the whole random state. A run that averages its
// weights keeps the average too ("ema.<parameter>"). Files are written
// atomically (temp file, fsync, rename): a crash mid-save leaves the previous file intact.
module;
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <span>
#include <string>
#include <utility>
#include <vector>
#include <fmt/format.h>
export module odyssey.train:checkpoint;
import odyssey.tensor;
import odyssey.layers;
import odyssey.optim;
import odyssey.io;
import :format;

export namespace odyssey {

using Metadata = std::map<std::string, std::string>;

template <class T>
std::vector<TensorEntry> tensor_entries(const std::vector<StateEntry<T>>& state) {
  std::vector<TensorEntry> out;
  for (const auto& e : state) {
    if (e.counter) out.push_back({e.name, DType::i64, {}, e.counter});
    else out.push_back({e.name, dtype_of<T>, e.shape, e.value.data()});
  }
  return out;
}

template <class T>
std::vector<TensorSlot> tensor_slots(const std::vector<StateEntry<T>>& state) {
  std::vector<TensorSlot> out;
  for (const auto& e : state) {
    if (e.counter) out.push_back({e.name, DType::i64, {}, e.counter});
    else out.push_back({e.name, dtype_of<T>, e.shape, e.value.data()});
  }
  return out;
}

/// Writes the model's state dict and `metadata` to `path`, atomically.
template <Layer Net>
void save_weights(const std::filesystem::path& path, Net& net, const Metadata& metadata) {
  write_safetensors(path, tensor_entries(state(net)), metadata);
}

namespace detail {

/// Whether a tensor of a checkpoint is run state (the optimizer's, the weight average's)
/// rather than the model's.
inline bool is_run_state(const std::string& name) {
  return name.rfind("optimizer.", 0) == 0 || name.rfind("ema.", 0) == 0;
}

/// Slots that read tensor `name` of `file` into `sink` and so set it aside.
inline TensorSlot discard_slot(const SafeTensors& file, const std::string& name,
                               std::vector<std::vector<std::byte>>& sink) {
  const TensorView& t = file.tensor(name);
  sink.emplace_back(t.bytes.size());
  return {name, t.dtype, t.shape, sink.back().data()};
}

}  // namespace detail

/// Loads a weights file (or a checkpoint, whose optimizer and weight-average tensors are
/// skipped) into `net`, all or nothing: a missing, extra, misshapen or non-finite tensor
/// throws naming it, and leaves the model as it was. Returns the file's metadata.
template <Layer Net>
Metadata load_weights(const std::filesystem::path& path, Net& net) {
  const SafeTensors file = SafeTensors::read(path);
  auto slots = tensor_slots(state(net));
  std::vector<std::vector<std::byte>> skipped;
  skipped.reserve(file.size());
  for (const auto& name : file.names())
    if (detail::is_run_state(name)) slots.push_back(detail::discard_slot(file, name, skipped));
  load_tensors(file, slots);
  return file.metadata();
}

/// The names of the model's classifier: the entries of its last layer, those that share the
/// prefix of its last state entry ("fc.weight" and "fc.bias" for "fc.bias").
template <class T>
std::vector<std::string> classifier_names(const std::vector<StateEntry<T>>& entries) {
  std::vector<std::string> out;
  if (entries.empty()) return out;
  const std::string& last = entries.back().name;
  const auto dot = last.rfind('.');
  const std::string prefix = dot == std::string::npos ? std::string() : last.substr(0, dot + 1);
  for (const auto& e : entries)
    if (prefix.empty() ? e.name == last : e.name.rfind(prefix, 0) == 0) out.push_back(e.name);
  return out;
}

/// Loads the weights a run starts from (to fine-tune: odyssey's weights or checkpoint, or a
/// state dict saved from PyTorch) into `net`, all or nothing, as load_weights. With
/// `reset_classifier` the model's classifier (classifier_names) keeps its own values and the
/// file's is not read (it may have another class count); without it, a classifier of
/// another shape is a ShapeError naming the tensor.
template <Layer Net>
Metadata load_initial_weights(const std::filesystem::path& path, Net& net, bool reset_classifier) {
  const SafeTensors file = SafeTensors::read(path);
  auto entries = state(net);
  const auto classifier = classifier_names(entries);
  auto is_classifier = [&](const std::string& n) {
    return std::find(classifier.begin(), classifier.end(), n) != classifier.end();
  };
  std::vector<TensorSlot> slots;
  for (const auto& s : tensor_slots(entries)) {
    if (reset_classifier && is_classifier(s.name)) continue;
    if (!reset_classifier && is_classifier(s.name) && file.contains(s.name) && file.tensor(s.name).shape != s.shape)
      throw ShapeError(detail::rformat(
          "{}: classifier tensor '{}' has shape {} but the model's is {} (another class count?); start with the "
          "model's own classifier instead (reset_classifier; --reset-classifier in odyssey train)",
          path.string(), s.name, shape_string(file.tensor(s.name).shape), shape_string(s.shape)));
    slots.push_back(s);
  }
  std::vector<std::vector<std::byte>> skipped;
  skipped.reserve(file.size());
  for (const auto& name : file.names())
    if (detail::is_run_state(name) || (reset_classifier && is_classifier(name)))
      slots.push_back(detail::discard_slot(file, name, skipped));
  load_tensors(file, slots);
  return file.metadata();
}

struct CheckpointInfo {
  std::filesystem::path file;
  std::size_t epochs_done = 0;   // completed epochs
  std::size_t batches_done = 0;  // batches of the next epoch already trained (a mid-epoch checkpoint)
  std::size_t step = 0;          // global optimizer steps taken
  Metadata metadata;
};

/// Checkpoint file of a run after `epochs_done` epochs and `batches_done` batches of the
/// next: checkpoint-epoch-0002.safetensors at an epoch's end, and mid-epoch
/// checkpoint-epoch-0002-batch-000050.safetensors (50 batches into the third epoch).
inline std::filesystem::path checkpoint_path(const std::filesystem::path& dir, std::size_t epochs_done,
                                             std::size_t batches_done = 0) {
  if (batches_done == 0) return dir / detail::rformat("checkpoint-epoch-{:04}.safetensors", epochs_done);
  return dir / detail::rformat("checkpoint-epoch-{:04}-batch-{:06}.safetensors", epochs_done, batches_done);
}

namespace detail {

/// (epochs_done, batches_done) of a checkpoint file name, or nothing for another file.
inline std::optional<std::pair<std::size_t, std::size_t>> checkpoint_position(const std::filesystem::path& file) {
  static const std::regex name(R"(checkpoint-epoch-(\d{4,})(?:-batch-(\d{6,}))?\.safetensors)");
  std::smatch m;
  const std::string f = file.filename().string();
  if (!std::regex_match(f, m, name)) return std::nullopt;
  return std::pair{std::size_t(std::stoull(m[1].str())), m[2].matched ? std::size_t(std::stoull(m[2].str())) : 0};
}

}  // namespace detail

/// Checkpoints in `dir`, oldest first (by position in the run: epoch, then batch).
inline std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& dir) {
  std::vector<std::pair<std::pair<std::size_t, std::size_t>, std::filesystem::path>> found;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (const auto pos = detail::checkpoint_position(e.path()); pos && e.is_regular_file())
      found.emplace_back(*pos, e.path());
  std::sort(found.begin(), found.end());
  std::vector<std::filesystem::path> out;
  for (auto& [pos, path] : found) out.push_back(std::move(path));
  return out;
}

/// Keeps the newest checkpoint and the newest `keep` of those made at an epoch's end; deletes
/// the rest (a mid-epoch checkpoint is only kept until a newer checkpoint exists).
inline void prune_checkpoints(const std::filesystem::path& dir, std::size_t keep) {
  const auto all = list_checkpoints(dir);
  std::size_t epoch_ends = 0;
  for (std::size_t i = all.size(); i-- > 0;) {
    const bool epoch_end = detail::checkpoint_position(all[i])->second == 0;
    const bool kept = i + 1 == all.size() || (epoch_end && epoch_ends < keep);
    if (epoch_end) ++epoch_ends;
    if (kept) continue;
    std::error_code ec;
    std::filesystem::remove(all[i], ec);
  }
}

/// Writes the model, the optimizer's state ("optimizer.<name>"), the weight average's when
/// there is one ("ema.<name>") and the run's position to `path`, atomically.
template <Layer Net, class T>
void save_checkpoint(const std::filesystem::path& path, Net& net, Optimizer<T>& opt, std::size_t epochs_done,
                     std::size_t step, Metadata metadata, WeightAverage<T>* average = nullptr,
                     std::size_t batches_done = 0) {
  auto entries = tensor_entries(state(net));
  const auto velocity = opt.state();
  for (const auto& e : tensor_entries(velocity)) entries.push_back({"optimizer." + e.name, e.dtype, e.shape, e.data});
  std::vector<StateEntry<T>> averaged;
  if (average) averaged = average->state();
  for (const auto& e : tensor_entries(averaged)) entries.push_back({"ema." + e.name, e.dtype, e.shape, e.data});
  metadata["odyssey.epochs_done"] = std::to_string(epochs_done);
  metadata["odyssey.step"] = std::to_string(step);
  metadata["odyssey.batches_done"] = std::to_string(batches_done);
  write_safetensors(path, entries, metadata);
}

/// Restores model, optimizer and (when given) weight average from a checkpoint, all or
/// nothing.
template <Layer Net, class T>
CheckpointInfo load_checkpoint(const std::filesystem::path& path, Net& net, Optimizer<T>& opt,
                               WeightAverage<T>* average = nullptr) {
  const SafeTensors file = SafeTensors::read(path);
  auto slots = tensor_slots(state(net));
  for (auto s : tensor_slots(opt.state())) {
    s.name = "optimizer." + s.name;
    slots.push_back(std::move(s));
  }
  if (average)
    for (auto s : tensor_slots(average->state())) {
      s.name = "ema." + s.name;
      slots.push_back(std::move(s));
    }
  CheckpointInfo info{path, 0, 0, 0, file.metadata()};
  auto number = [&](const char* key, bool required = true) -> std::size_t {
    const auto it = info.metadata.find(key);
    if (it == info.metadata.end() && !required) return 0;  // older checkpoints: epoch ends only
    if (it == info.metadata.end())
      throw FormatError(detail::rformat("{}: not a checkpoint (no '{}' in its metadata)", path.string(), key));
    try {
      return std::stoull(it->second);
    } catch (const std::exception&) {
      throw FormatError(detail::rformat("{}: metadata '{}' is '{}', not a number", path.string(), key, it->second));
    }
  };
  info.epochs_done = number("odyssey.epochs_done");
  info.step = number("odyssey.step");
  info.batches_done = number("odyssey.batches_done", false);
  load_tensors(file, slots);
  return info;
}

}  // namespace odyssey
