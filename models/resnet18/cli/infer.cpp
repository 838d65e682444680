// `odyssey eval`, `predict` and `info`: use and inspect weights files (or checkpoints).
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "commands.h"
import odyssey;
import odyssey.cli;

namespace odyssey::cli {

namespace {

namespace fs = std::filesystem;

/// The model a weights file holds: the architecture from its metadata ("model"), or, for a
/// file saved elsewhere (PyTorch), from its tensor names; the input channels from conv1.weight
/// ([64, C, 3, 3]); the image size from the metadata ("image_size"), else 32. FormatError or
/// ShapeError when the file is not one of odyssey's models.
ModelSpec model_of(const SafeTensors& file) {
  if (!file.contains("conv1.weight"))
    throw FormatError(fmt::format("{}: no tensor 'conv1.weight': not a weights file of {}", file.source(), kModels));
  const auto& shape = file.tensor("conv1.weight").shape;
  if (shape.size() != 4 || shape[0] != 64 || shape[2] != 3 || shape[3] != 3)
    throw ShapeError(fmt::format("{}: tensor 'conv1.weight' has shape {} but the models' stem is [64, C, 3, 3]",
                                 file.source(), shape_string(shape)));
  ModelSpec m;
  m.channels = shape[1];
  const auto& meta = file.metadata();
  const auto model = meta.find("model");
  if (model != meta.end() && (model->second == "resnet18" || model->second == "resnet34" ||
                              model->second == "preact-resnet18")) {
    m.arch = model->second;
  } else if (model != meta.end() && model->second.rfind("ResNet18(", 0) == 0) {
    m.arch = "resnet18";  // files of odyssey 0.1, which named the model so
  } else if (file.contains("layer1.2.conv1.weight")) {
    m.arch = "resnet34";
  } else if (!file.contains("bn1.weight") && file.contains("layer1.0.bn1.weight")) {
    m.arch = "preact-resnet18";
  } else {
    m.arch = "resnet18";
  }
  const auto size = meta.find("image_size");
  if (size != meta.end()) {
    if (size->second == "28x28") m.size = 28;
    else if (size->second == "32x32") m.size = 32;
    else throw FormatError(fmt::format("{}: metadata image_size is '{}'; odyssey's models take 28x28 or 32x32",
                                       file.source(), size->second));
  }
  return m;
}

std::string meta_or(const std::map<std::string, std::string>& m, const std::string& key, const std::string& fallback) {
  const auto it = m.find(key);
  return it == m.end() ? fallback : it->second;
}

/// Normalisation and class names: from the weights' metadata when present, else the dataset's.
void apply_metadata(Dataset& d, const std::map<std::string, std::string>& meta) {
  try {
    if (meta.contains("normalize_mean") && meta.contains("normalize_std")) {
      const auto mean = nlohmann::json::parse(meta.at("normalize_mean")).get<std::vector<float>>();
      const auto std = nlohmann::json::parse(meta.at("normalize_std")).get<std::vector<float>>();
      if (mean.size() == d.channels && std.size() == d.channels)
        for (std::size_t c = 0; c < d.channels; ++c) d.mean[c] = mean[c], d.stddev[c] = std[c];
    }
    if (meta.contains("class_names"))
      d.class_names = nlohmann::json::parse(meta.at("class_names")).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(fmt::format("the weights' metadata is malformed: {}", e.what()));
  }
}

// ---- eval

struct EvalArgs {
  std::string weights, dataset, data, tta = "none";
  std::size_t batch = 256, threads = 0;
};

int run_eval(const EvalArgs& a) {
  auto threads = use_threads(a.threads);
  const SafeTensors file = SafeTensors::read(a.weights);
  const ModelSpec spec = model_of(file);
  const std::string dataset = a.dataset.empty() ? meta_or(file.metadata(), "dataset", spec.channels == 3 ? "cifar10" : "fashion-mnist") : a.dataset;
  if ((dataset == "cifar10") != (spec.channels == 3))
    throw ShapeError(fmt::format("{} has {}-channel images but {} is a model for {} input", dataset,
                                 dataset == "cifar10" ? 3 : 1, a.weights, spec.input()));
  Dataset test = load_dataset(dataset, a.data, Split::test, spec.size);
  apply_metadata(test, file.metadata());
  const EvalResult r = with_model(spec, [&]<class Net>() {
    auto net = std::make_unique<Net>(0);
    load_weights(a.weights, *net);
    return evaluate(*net, test, EvalOptions{a.batch, a.tta == "flip"}, [](std::size_t done, std::size_t total) {
      if (isatty(STDOUT_FILENO) != 1) return;
      std::printf("\r\033[Kevaluating %zu/%zu", done, total);
      if (done == total) std::printf("\r\033[K");
      std::fflush(stdout);
    });
  });
  std::printf("%s (%s, %s) on %s (%zu images%s): loss %.4f, accuracy %.2f%%\n", a.weights.c_str(),
              spec.arch.c_str(), spec.input().c_str(), test.name.c_str(), r.count,
              a.tta == "flip" ? ", flip test-time augmentation" : "", r.loss, 100 * r.accuracy);
  const auto per = r.per_class();
  for (std::size_t c = 0; c < per.size(); ++c)
    std::printf("  %2zu %-12s %6.2f%%\n", c, c < test.class_names.size() ? test.class_names[c].c_str() : "", 100 * per[c]);
  std::printf("confusion matrix (rows: true class, columns: predicted):\n%s", r.confusion.format(test.class_names).c_str());
  return 0;
}

// ---- predict

/// The images of one INPUT: a CIFAR-10 .bin file, an IDX image file (plain or gzipped), or a PNG.
void append_input(Dataset& d, const std::string& path) {
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".png" || ext == ".PNG") {
    const auto px = read_png_image(path, d.channels, d.height);
    d.pixels.insert(d.pixels.end(), px.begin(), px.end());
    d.labels.push_back(0);
    ++d.count;
  } else if (ext == ".bin") {
    if (d.channels != 3) throw ShapeError(fmt::format("{}: CIFAR-10 images have 3 channels, this model 1", path));
    append_cifar10_file(d, path);
  } else {
    if (d.channels != 1) throw ShapeError(fmt::format("{}: IDX images have 1 channel, this model 3", path));
    const IdxImages idx = load_idx_images(path);
    // The model's own size, or Fashion-MNIST's 28x28 padded to it as the dataset is.
    const bool pads = idx.rows == idx.cols && (idx.rows == d.height || (idx.rows == 28 && d.height == 32));
    if (!pads)
      throw ShapeError(fmt::format("{}: {}x{} images; this model takes {}x{}{}", path, idx.rows, idx.cols, d.height,
                                   d.width, d.height > 28 ? " (or 28x28, padded like Fashion-MNIST)" : ""));
    const Dataset images = fashion_mnist_from_idx(idx, {}, path, (d.height - idx.rows) / 2);
    d.pixels.insert(d.pixels.end(), images.pixels.begin(), images.pixels.end());
    d.labels.insert(d.labels.end(), images.count, 0);
    d.count += images.count;
  }
}

struct PredictArgs {
  std::string weights, tta = "none";
  std::vector<std::string> inputs;
  std::size_t batch = 256, threads = 0;
};

int run_predict(const PredictArgs& a) {
  auto threads = use_threads(a.threads);
  const SafeTensors file = SafeTensors::read(a.weights);
  const ModelSpec spec = model_of(file);
  Dataset d = spec.channels == 3 ? cifar10_dataset("predict inputs")
                                 : fashion_mnist_from_idx(IdxImages{0, 28, 28, {}}, {}, "predict inputs", (spec.size - 28) / 2);
  apply_metadata(d, file.metadata());
  for (const auto& in : a.inputs) append_input(d, in);
  with_model(spec, [&]<class Net>() {
    auto net = std::make_unique<Net>(0);
    load_weights(a.weights, *net);
    expect_images<typename Net::input_shape>(d, spec.arch);
    BatchLoader loader(d, LoaderOptions{a.batch, false, false, 0});
    loader.start_epoch(0);
    Predictor<Net> predictor(a.tta == "flip", Weights::fixed);
    Batch batch;
    std::printf("index,predicted");
    for (std::size_t k = 0; k < 10; ++k) std::printf(",prob_%zu", k);
    std::printf("\n");
    std::size_t index = 0;
    while (loader.next(batch)) {
      const auto probs = predictor.run(*net, batch);
      for (std::size_t i = 0; i < batch.size; ++i, ++index) {
        const float* p = probs.data() + i * 10;
        std::printf("%zu,%zu", index, std::size_t(std::max_element(p, p + 10) - p));
        for (std::size_t k = 0; k < 10; ++k) std::printf(",%.6g", p[k]);
        std::printf("\n");
      }
    }
  });
  return 0;
}

// ---- info

int run_info(const std::string& path) {
  const SafeTensors file = SafeTensors::read(path);
  std::size_t params = 0, buffers = 0, optimizer = 0;
  std::printf("%s: %zu tensors\n", path.c_str(), file.size());
  try {
    const ModelSpec spec = model_of(file);
    std::printf("model: %s, input %s\n", spec.arch.c_str(), spec.input().c_str());
  } catch (const Error&) {
    std::printf("model: none of odyssey's (%s)\n", kModels);
  }
  for (const auto& name : file.names()) {
    const TensorView& t = file.tensor(name);
    std::printf("  %-40s %s %s\n", name.c_str(), std::string(dtype_name(t.dtype)).c_str(), shape_string(t.shape).c_str());
    const bool buffer = name.ends_with("running_mean") || name.ends_with("running_var") || name.ends_with("num_batches_tracked");
    if (name.rfind("optimizer.", 0) == 0) optimizer += t.elements();
    else if (name.rfind("test.", 0) == 0) continue;
    else if (buffer) buffers += t.elements();
    else params += t.elements();
  }
  std::printf("parameters: %zu (plus %zu running-statistic values", params, buffers);
  if (optimizer) std::printf(" and %zu optimizer values: a checkpoint", optimizer);
  std::printf(")\n");
  if (!file.metadata().empty()) {
    std::printf("metadata:\n");
    for (const auto& [k, v] : file.metadata()) std::printf("  %s: %s\n", k.c_str(), v.c_str());
  }
  return 0;
}

}  // namespace

std::function<int()> add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* c = app.add_subcommand("eval", "Evaluate weights on a test set: loss, accuracy, per-class accuracy and the "
                                       "confusion matrix.");
  c->add_option("--weights", a->weights, "weights.safetensors (or a checkpoint) of one of odyssey's models (the model is read from the file)")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("--dataset", a->dataset, "fashion-mnist or cifar10 (default: the one in the weights' metadata)")
      ->check(CLI::IsMember({"fashion-mnist", "cifar10"}));
  c->add_option("--data", a->data, "dataset folder (default: the dataset's usual place)");
  c->add_option("--tta", a->tta,
                "test-time augmentation: flip (the mean of the softmax probabilities of each image and its mirror "
                "image; twice the work) or none")
      ->check(CLI::IsMember({"none", "flip"}))
      ->capture_default_str();
  c->add_option("--batch-size", a->batch, "images per pass")->check(CLI::Range(1, 65536))->capture_default_str();
  c->add_option("--threads", a->threads, "threads (default: every core)")->check(CLI::Range(1, 1024));
  return [a] { return run_eval(*a); };
}

std::function<int()> add_predict(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  auto* c = app.add_subcommand(
      "predict",
      "Classify images and write CSV to stdout: index,predicted,prob_0,...,prob_9 (softmax), one row per "
      "image, indices running across all INPUTs in order.");
  c->add_option("--weights", a->weights, "weights.safetensors (or a checkpoint) of one of odyssey's models (the model is read from the file)")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("INPUT", a->inputs,
                "a CIFAR-10 .bin file (3-channel models), an IDX image file, plain or .gz (1-channel), or PNG "
                "images (32x32, or 28x28 for 1-channel models)")
      ->required()
      ->check(CLI::ExistingFile);
  c->add_option("--tta", a->tta,
                "test-time augmentation: flip (the mean of the softmax probabilities of each image and its mirror "
                "image; twice the work) or none")
      ->check(CLI::IsMember({"none", "flip"}))
      ->capture_default_str();
  c->add_option("--batch-size", a->batch, "images per pass")->check(CLI::Range(1, 65536))->capture_default_str();
  c->add_option("--threads", a->threads, "threads (default: every core)")->check(CLI::Range(1, 1024));
  return [a] { return run_predict(*a); };
}

std::function<int()> add_info(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto* c = app.add_subcommand("info", "List a weights file's tensors, shapes, parameter count and metadata.");
  c->add_option("--weights", *path, "a safetensors file")->required()->check(CLI::ExistingFile);
  return [path] { return run_info(*path); };
}

}  // namespace odyssey::cli
