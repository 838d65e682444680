// The training recipes' parts: the weight average follows its formula, flip test-time
// augmentation is the mean over an image and its mirror, batch-norm re-estimation is the
// average over batches, the parameter groups scale the learning rate, a run starts from
// given weights, odyssey's or a state dict PyTorch saved (with its classifier reset when
// asked), old checkpoints resume under the newer settings' defaults, and a run with every
// option on resumes bitwise.
#define BOOST_TEST_MODULE recipes
#include <boost/test/unit_test.hpp>
#include <tbb/global_control.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>
import odyssey;
import odyssey.testing;

using namespace odyssey;
namespace fs = std::filesystem;
using Net = models::ResNet18<float, 1, 8, 8, 10, 4>;
using Net5 = models::ResNet18<float, 1, 8, 8, 5, 4>;  // another class count

namespace {

TrainSettings settings(std::size_t epochs) { return testing::tiny_settings(epochs); }
RunOptions options(const fs::path& out, bool resume = false) { return testing::tiny_run(out, resume); }
std::vector<char> bytes(const fs::path& p) { return testing::file_bytes(p); }
const Dataset& train_set() { return testing::tiny_train_set(); }
const Dataset& test_set() { return testing::tiny_test_set(); }

/// Every value of every entry, in order.
template <class T>
std::vector<double> values(const std::vector<StateEntry<T>>& entries) {
  std::vector<double> out;
  for (const auto& e : entries) {
    if (e.counter) out.push_back(double(*e.counter));
    else out.insert(out.end(), e.value.begin(), e.value.end());
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(weight_average_follows_its_formula) {
  std::vector<float> w(5), rm(3);
  std::int64_t counter = 4;
  std::vector<float> g(5);  // only makes the weight entry trainable
  std::vector<StateEntry<float>> entries{
      {"w", StateKind::weight, {5}, std::span<float>(w), std::span<float>(g), nullptr},
      {"rm", StateKind::running_mean, {3}, std::span<float>(rm), {}, nullptr},
      {"n", StateKind::counter, {}, {}, {}, &counter}};
  for (std::size_t i = 0; i < 5; ++i) w[i] = float(i) - 2.0f;
  for (std::size_t i = 0; i < 3; ++i) rm[i] = 0.5f * float(i);
  WeightAverage<float> avg(entries, 0.9);
  std::vector<double> ref(w.begin(), w.end());
  std::vector<double> ref_rm(rm.begin(), rm.end());
  for (std::uint64_t t = 1; t <= 40; ++t) {
    for (std::size_t i = 0; i < 5; ++i) w[i] = std::sin(double(t * 7 + i));
    for (std::size_t i = 0; i < 3; ++i) rm[i] = std::cos(double(t * 3 + i));
    ++counter;
    avg.update(t);
    // TensorFlow's warm-up: the decay at update t is min(0.9, (1 + t) / (10 + t)); 0.9 from t = 80.
    const double d = std::min(0.9, (1.0 + double(t)) / (10.0 + double(t)));
    for (std::size_t i = 0; i < 5; ++i) ref[i] = d * ref[i] + (1 - d) * w[i];
    for (std::size_t i = 0; i < 3; ++i) ref_rm[i] = d * ref_rm[i] + (1 - d) * rm[i];
  }
  const auto live_w = w;
  const auto st = avg.state();
  BOOST_TEST_REQUIRE(st.size() == 3u);
  BOOST_TEST(st[0].name == "w");
  BOOST_TEST(!st[0].trainable());  // the average is not trained
  for (std::size_t i = 0; i < 5; ++i) BOOST_TEST(std::abs(st[0].value[i] - ref[i]) < 1e-5, i);
  for (std::size_t i = 0; i < 3; ++i) BOOST_TEST(std::abs(st[1].value[i] - ref_rm[i]) < 1e-5, i);
  BOOST_TEST(*st[2].counter == 44);
  // swap() puts the average in the live entries; a second swap restores them.
  avg.swap();
  for (std::size_t i = 0; i < 5; ++i) BOOST_TEST(std::abs(w[i] - ref[i]) < 1e-5, i);
  avg.swap();
  BOOST_TEST((w == live_w));
  BOOST_CHECK_THROW(WeightAverage<float>(entries, 1.0), ValueError);
  BOOST_CHECK_THROW(WeightAverage<float>(entries, 0.0), ValueError);
}

BOOST_AUTO_TEST_CASE(flip_evaluation_is_the_mean_over_an_image_and_its_mirror) {
  testing::TempDir dir("recipes-flip");
  auto net = std::make_unique<Net>(3);
  train(*net, settings(2), options(dir.path), train_set(), test_set(), "tiny");  // an untrained net says little
  // The test set and its mirror image, made here pixel by pixel ([N, C, H, W] bytes).
  const Dataset& d = test_set();
  Dataset mirrored = d;
  for (std::size_t n = 0; n < d.count; ++n)
    for (std::size_t y = 0; y < d.height; ++y)
      for (std::size_t x = 0; x < d.width; ++x)
        mirrored.pixels[(n * d.height + y) * d.width + x] = d.pixels[(n * d.height + y) * d.width + d.width - 1 - x];
  auto probabilities = [&](const Dataset& data) {
    std::vector<float> out;
    BatchLoader loader(data, LoaderOptions{16, false, false, 0});
    loader.start_epoch(0);
    Predictor<Net> plain;
    Batch b;
    while (loader.next(b)) {
      const auto p = plain.run(*net, b);
      out.insert(out.end(), p.begin(), p.end());
    }
    return out;
  };
  const auto p = probabilities(d), q = probabilities(mirrored);
  double loss = 0;
  std::size_t correct = 0;
  for (std::size_t n = 0; n < d.count; ++n) {
    std::vector<double> mean(10);
    for (std::size_t k = 0; k < 10; ++k) mean[k] = 0.5 * (double(p[n * 10 + k]) + double(q[n * 10 + k]));
    loss -= std::log(mean[d.labels[n]]);
    correct += std::size_t(std::max_element(mean.begin(), mean.end()) - mean.begin()) == d.labels[n];
  }
  loss /= double(d.count);
  const EvalResult flip = evaluate(*net, d, EvalOptions{16, true});
  const EvalResult plain = evaluate(*net, d, EvalOptions{16, false});
  BOOST_TEST(std::abs(flip.loss - loss) < 1e-5 * loss);
  BOOST_TEST(flip.accuracy == double(correct) / double(d.count));
  BOOST_TEST(flip.count == d.count);
  BOOST_TEST(std::abs(flip.loss - plain.loss) > 1e-4);  // the mirror images did change something
  // Predict's probabilities with flip are the same means.
  BatchLoader loader(d, LoaderOptions{16, false, false, 0});
  loader.start_epoch(0);
  Predictor<Net> both(true);
  Batch b;
  std::size_t n = 0;
  double worst = 0;
  while (loader.next(b)) {
    const auto r = both.run(*net, b);
    for (std::size_t i = 0; i < r.size(); ++i, ++n)
      worst = std::max(worst, std::abs(double(r[i]) - 0.5 * (double(p[n]) + double(q[n]))));
  }
  BOOST_TEST(n == d.count * 10);
  BOOST_TEST(worst < 1e-6);
}

BOOST_AUTO_TEST_CASE(batch_norm_reestimation_is_the_average_over_batches) {
  // A batch norm straight on the input, so its statistics can be computed from the data here.
  using BnNet = Model<Chain<Named<"norm", BatchNorm2d<float, Shape<1, 8, 8>>>, Flatten<float, Shape<1, 8, 8>>,
                            Named<"head", Linear<float, 64, 10>>>>;
  const Dataset& d = train_set();  // 100 images
  double sum = 0, sq = 0;
  const double m = double(d.count * 64);
  for (const auto v : d.pixels) sum += normalise(v, d.mean[0], d.stddev[0]);
  const double mean = sum / m;
  for (const auto v : d.pixels) sq += std::pow(normalise(v, d.mean[0], d.stddev[0]) - mean, 2);
  const double unbiased = sq / (m - 1);
  Rng rng(1);
  auto net = std::make_unique<BnNet>(rng);
  auto& bn = net->get<"norm">();
  bn.running_mean.fill(7.0f);
  bn.running_var.fill(9.0f);
  // One batch of every image: its statistics exactly (PyTorch keeps the unbiased variance).
  reestimate_batch_norm(*net, d, 1, 100, 5);
  BOOST_TEST(std::abs(bn.running_mean.data()[0] - mean) < 1e-5);
  BOOST_TEST(std::abs(bn.running_var.data()[0] - unbiased) < 1e-4 * unbiased);
  BOOST_TEST(bn.num_batches_tracked == 1);
  // Four batches of 25: the mean of four equal-sized batch means is the overall mean,
  // whatever the order; the counter counts the batches.
  reestimate_batch_norm(*net, d, 4, 25, 5);
  BOOST_TEST(std::abs(bn.running_mean.data()[0] - mean) < 1e-5);
  BOOST_TEST(bn.num_batches_tracked == 4);
  // The variance is the mean of the batches' unbiased variances: near, not equal to, the whole.
  BOOST_TEST(std::abs(bn.running_var.data()[0] - unbiased) < 0.05 * unbiased);
  // Zero batches leave the statistics alone.
  const float before = bn.running_mean.data()[0];
  reestimate_batch_norm(*net, d, 0, 25, 5);
  BOOST_TEST(bn.running_mean.data()[0] == before);
}

BOOST_AUTO_TEST_CASE(parameter_groups_scale_the_learning_rate_of_norm_parameters) {
  std::vector<float> w{1.0f, -1.0f}, gw{0.5f, 0.25f}, b{2.0f}, gb{1.0f};
  auto entries = [&] {
    return std::vector<StateEntry<float>>{
        {"w", StateKind::weight, {2}, std::span<float>(w), std::span<float>(gw), nullptr},
        {"b", StateKind::norm_bias, {1}, std::span<float>(b), std::span<float>(gb), nullptr}};
  };
  Sgd<float> sgd(entries(), SgdOptions{0.0, 0.0, false, false, 3.0});
  sgd.step(0.1);
  BOOST_TEST(std::abs(w[0] - (1.0 - 0.1 * 0.5)) < 1e-7);
  BOOST_TEST(std::abs(w[1] - (-1.0 - 0.1 * 0.25)) < 1e-7);
  BOOST_TEST(std::abs(b[0] - (2.0 - 0.3 * 1.0)) < 1e-6);
  // AdamW's first step moves each parameter by its learning rate (m / sqrt(v) = sign(g)).
  w = {1.0f, -1.0f};
  b = {2.0f};
  gw = {0.5f, 0.25f};
  gb = {1.0f};
  AdamW<float> adamw(entries(), AdamWOptions{0.9, 0.999, 1e-8, 0.0, false, 3.0});
  adamw.step(0.01);
  BOOST_TEST(std::abs(w[0] - 0.99) < 1e-6);
  BOOST_TEST(std::abs(b[0] - 1.97) < 1e-6);
}

BOOST_AUTO_TEST_CASE(a_run_starts_from_given_weights_and_can_reset_its_classifier) {
  testing::TempDir dir("recipes-init");
  auto source = std::make_unique<Net>(1);
  const fs::path file = dir.path / "source.safetensors";
  save_weights(file, *source, {});
  const auto want = values(state(*source));

  auto net = std::make_unique<Net>(2);
  BOOST_TEST((values(state(*net)) != want));
  load_initial_weights(file, *net, false);
  BOOST_TEST((values(state(*net)) == want));

  // Another class count: refused naming the classifier tensor, and nothing is loaded.
  auto five = std::make_unique<Net5>(2);
  const auto fresh = values(state(*five));
  try {
    load_initial_weights(file, *five, false);
    BOOST_FAIL("no exception");
  } catch (const ShapeError& e) {
    const std::string what = e.what();
    BOOST_TEST(what.find("'linear.weight'") != std::string::npos, what);
    BOOST_TEST(what.find("reset_classifier") != std::string::npos, what);
  }
  BOOST_TEST((values(state(*five)) == fresh));
  // With the classifier reset: everything else from the file, the classifier its own.
  load_initial_weights(file, *five, true);
  BOOST_TEST((classifier_names(state(*five)) == std::vector<std::string>{"linear.weight", "linear.bias"}));
  auto by_name = [](const std::vector<StateEntry<float>>& entries) {
    std::map<std::string, std::vector<double>> out;
    for (const auto& e : entries) out[e.name] = values(std::vector<StateEntry<float>>{e});
    return out;
  };
  const auto loaded = by_name(state(*five));
  const auto from_source = by_name(state(*source));
  auto own = std::make_unique<Net5>(2);
  const auto from_own = by_name(state(*own));
  for (const auto& [name, v] : loaded)
    BOOST_TEST((v == (name.rfind("linear.", 0) == 0 ? from_own : from_source).at(name)), name);

  // Through train(): the run starts from the file (its first step's loss is the file's
  // model's), and a misfit file fails before the run directory exists.
  auto s = settings(1);
  s.init_weights = file.string();
  const auto from_file = train<Net>(s, options(dir.path / "from-file"), train_set(), test_set(), "tiny");
  const auto from_scratch = train<Net>(settings(1), options(dir.path / "scratch"), train_set(), test_set(), "tiny");
  BOOST_TEST((bytes(from_file.weights) != bytes(from_scratch.weights)));
  auto source_copy = std::make_unique<Net>(9);
  load_initial_weights(file, *source_copy, false);
  const auto same_start = train(*source_copy, settings(1), options(dir.path / "same-start"), train_set(), test_set(), "tiny");
  BOOST_TEST((bytes(from_file.weights) != bytes(same_start.weights)));  // the settings (init_weights) differ...
  std::vector<double> a, b2;
  {
    auto x = std::make_unique<Net>(0), y = std::make_unique<Net>(0);
    load_weights(from_file.weights, *x);
    load_weights(same_start.weights, *y);
    a = values(state(*x));
    b2 = values(state(*y));
  }
  BOOST_TEST((a == b2));  // ...but the weights are the same: both started from the file
  BOOST_CHECK_THROW(train<Net5>(s, options(dir.path / "misfit"), train_set(), test_set(), "tiny5"), ShapeError);
  BOOST_TEST(!fs::exists(dir.path / "misfit"));
  auto no_file = settings(1);
  no_file.reset_classifier = true;
  BOOST_CHECK_THROW(train<Net>(no_file, options(dir.path / "none"), train_set(), test_set(), "tiny"), SettingError);
}

BOOST_AUTO_TEST_CASE(checkpoints_that_predate_a_setting_resume_under_its_default) {
  nlohmann::json now = TrainSettings{}.to_json();
  now["model"] = "tiny";
  nlohmann::json old = now;
  for (const char* key : {"translate", "flip", "erase", "ema", "ema_eval", "bn_recalibrate", "eval_flip",
                          "init_weights", "reset_classifier", "zero_init_residual", "norm_lr_scale"})
    BOOST_TEST_REQUIRE(old.erase(key) == 1u, key);
  const Metadata meta{{"odyssey.settings", old.dump()}};
  BOOST_CHECK_NO_THROW(detail::expect_same_settings("old.safetensors", meta, now, TrainSettings{}.to_json()));
  // A run that now asks for a weight average is another run.
  nlohmann::json with_ema = now;
  with_ema["ema"] = 0.99;
  try {
    detail::expect_same_settings("old.safetensors", meta, with_ema, TrainSettings{}.to_json());
    BOOST_FAIL("no exception");
  } catch (const SettingError& e) {
    BOOST_TEST(std::string(e.what()).find("ema: the run has 0.0, now 0.99") != std::string::npos, e.what());
  }
}

BOOST_AUTO_TEST_CASE(a_run_with_every_recipe_option_resumes_bitwise) {
  testing::TempDir whole("recipes-whole"), split("recipes-split"), plain("recipes-plain");
  auto s = settings(3);
  s.augmentation = AugmentOptions{2, FlipMode::alternate, 0.5};
  s.ema_decay = 0.9;
  s.bn_recalibrate = 3;
  s.eval_flip = true;
  s.label_smoothing = 0.1;
  s.sgd.nesterov = true;
  s.sgd.norm_lr_scale = 2;
  const auto r = train<Net>(s, options(whole.path), train_set(), test_set(), "tiny");
  BOOST_TEST(r.other_weights == whole.path / "weights-last.safetensors");
  BOOST_TEST((bytes(r.weights) != bytes(r.other_weights)));  // the average is not the last weights
  train<Net>(s, options(split.path), train_set(), test_set(), "tiny");
  for (const auto& c : list_checkpoints(split.path))
    if (c.filename() != "checkpoint-epoch-0001.safetensors") fs::remove(c);
  fs::remove(split.path / "weights.safetensors");
  fs::remove(split.path / "weights-last.safetensors");
  {
    tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
    const auto resumed = train<Net>(s, options(split.path, true), train_set(), test_set(), "tiny");
    BOOST_TEST(resumed.epochs_run == 2u);
    BOOST_TEST(resumed.test.accuracy == r.test.accuracy);
    BOOST_TEST(resumed.test.loss == r.test.loss);
  }
  for (const char* f : {"weights.safetensors", "weights-last.safetensors", "checkpoint-epoch-0003.safetensors"})
    BOOST_TEST((bytes(whole.path / f) == bytes(split.path / f)), f);
  // The checkpoint holds the average; the options changed the run.
  const SafeTensors ckpt = SafeTensors::read(whole.path / "checkpoint-epoch-0003.safetensors");
  BOOST_TEST(ckpt.contains("ema.conv1.weight"));
  BOOST_TEST(ckpt.contains("ema.bn1.num_batches_tracked"));
  const auto p = train<Net>(settings(3), options(plain.path), train_set(), test_set(), "tiny");
  BOOST_TEST((bytes(p.weights) != bytes(r.other_weights)));
  BOOST_TEST(p.other_weights.empty());
}

BOOST_AUTO_TEST_CASE(a_state_dict_saved_by_pytorch_starts_a_run) {
  // The model's tensors of PyTorch's ResNet-18 (width 4; tests/fixtures/make_references.py),
  // as a plain state dict file; its reference input and logits set aside.
  testing::TempDir dir("recipes-torch");
  const SafeTensors fixture = SafeTensors::read(std::string(ODYSSEY_FIXTURES) + "/resnet18_w4.safetensors");
  std::vector<TensorEntry> model;
  for (const auto& name : fixture.names()) {
    if (name.rfind("test.", 0) == 0) continue;
    const TensorView& t = fixture.tensor(name);
    model.push_back({name, t.dtype, t.shape, t.bytes.data()});
  }
  const fs::path file = dir.path / "torch.safetensors";
  write_safetensors(file, model, {});
  std::vector<float> input(2 * 3 * 32 * 32), logits_eval(20);
  {
    const TensorView& in = fixture.tensor("test.input");
    std::memcpy(input.data(), in.bytes.data(), in.bytes.size());
    const TensorView& out = fixture.tensor("test.logits_eval");
    std::memcpy(logits_eval.data(), out.bytes.data(), out.bytes.size());
  }
  using Torch = models::ResNet18<float, 3, 32, 32, 10, 4>;
  auto net = std::make_unique<Torch>(5);
  load_initial_weights(file, *net, false);
  Activation<float, Shape<3, 32, 32>> x;
  x.from_nchw(input.data(), 2);
  Context<float> ctx;
  ctx.mode = Mode::inference;
  const auto y = net->forward(x, ctx).span();
  double worst = 0;
  for (std::size_t i = 0; i < 20; ++i) worst = std::max(worst, std::abs(double(y[i]) - double(logits_eval[i])));
  BOOST_TEST(worst < 1e-4);  // PyTorch's logits: the weights arrived
  // Fine-tuning it for five classes: the classifier is the model's own, the rest PyTorch's.
  using Torch5 = models::ResNet18<float, 3, 32, 32, 5, 4>;
  auto five = std::make_unique<Torch5>(5);
  BOOST_CHECK_THROW(load_initial_weights(file, *five, false), ShapeError);
  BOOST_CHECK_NO_THROW(load_initial_weights(file, *five, true));
  for (const auto& e : state(*five))
    if (e.name == "conv1.weight") {
      const TensorView& t = fixture.tensor("conv1.weight");
      BOOST_TEST(std::memcmp(e.value.data(), t.bytes.data(), t.bytes.size()) == 0);
    }
}

BOOST_AUTO_TEST_CASE(zero_init_residual_zeroes_the_last_norm_of_each_residual_branch) {
  auto net = std::make_unique<Net>(4);
  const auto before = state(*net);
  std::vector<std::vector<float>> kept;
  for (const auto& e : before) kept.emplace_back(e.value.begin(), e.value.end());
  BOOST_TEST(zero_init_residual(*net) == 8u);  // ResNet-18: two BasicBlocks in each of four stages
  const auto after = state(*net);
  std::size_t zeroed = 0;
  for (std::size_t i = 0; i < after.size(); ++i) {
    const auto& e = after[i];
    const bool last_norm = e.name.starts_with("layer") && e.name.ends_with(".bn2.weight");
    const std::vector<float> now(e.value.begin(), e.value.end());
    if (last_norm) {
      zeroed += std::all_of(now.begin(), now.end(), [](float v) { return v == 0.0f; });
      BOOST_TEST(std::any_of(kept[i].begin(), kept[i].end(), [](float v) { return v != 0.0f; }), e.name);
    } else {
      BOOST_TEST((now == kept[i]), e.name);  // nothing else changes
    }
  }
  BOOST_TEST(zeroed == 8u);
  // Pre-activation blocks end in a convolution: nothing to zero.
  auto preact = std::make_unique<models::PreActResNet18<float, 1, 8, 8, 10, 4>>(4);
  BOOST_TEST(zero_init_residual(*preact) == 0u);
  // A fresh run with it differs from one without; weights to start from exclude it.
  testing::TempDir a("recipes-zero-a"), b("recipes-zero-b");
  auto s = settings(1);
  s.zero_init_residual = true;
  const auto with = train<Net>(s, options(a.path), train_set(), test_set(), "tiny");
  const auto without = train<Net>(settings(1), options(b.path), train_set(), test_set(), "tiny");
  BOOST_TEST(with.test.loss != without.test.loss);
  s.init_weights = (a.path / "weights.safetensors").string();
  BOOST_CHECK_THROW(s.check(), SettingError);
}
