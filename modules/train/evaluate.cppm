// Evaluation of any model on a dataset (loss, accuracy, confusion matrix), and the metadata
// that makes a weights file self-describing.
module;
#include <algorithm>
#include <cstddef>
#include <functional>
#include <string>
#include <nlohmann/json.hpp>
export module odyssey.train:evaluate;
import odyssey.tensor;
import odyssey.layers;
import odyssey.data;
import :format;
import :metrics;
import :checkpoint;

export namespace odyssey {

/// Called after each evaluated batch with (images done, images in all).
using EvalProgress = std::function<void(std::size_t, std::size_t)>;

/// Loss, accuracy and confusion matrix of `net` on `data`, in inference mode. ShapeError
/// when the dataset's images are not the model's input shape.
template <Layer Net>
EvalResult evaluate(Net& net, const Dataset& data, std::size_t batch_size, const EvalProgress& progress = {}) {
  using T = typename Net::value_type;
  constexpr std::size_t classes = Net::output_shape::size;
  expect_images<typename Net::input_shape>(data, "the model");
  BatchLoader loader(data, LoaderOptions{batch_size, false, false, 0});
  loader.start_epoch(0);
  Context<T> ctx;
  ctx.mode = Mode::inference;
  SoftmaxCrossEntropy<T, classes> loss;
  Activation<T, typename Net::input_shape> x;
  Batch batch;
  EvalResult r;
  r.confusion = ConfusionMatrix(classes);
  double loss_sum = 0;
  std::size_t correct = 0;
  while (loader.next(batch)) {
    copy_batch(batch, x);
    const auto st = loss.forward(net.forward(x, ctx), batch.labels);
    loss_sum += st.loss * double(batch.size);
    correct += st.correct;
    const auto& p = loss.probabilities();
    for (std::size_t i = 0; i < batch.size; ++i) {
      const T* row = p.sample(i);
      const std::size_t pred = std::size_t(std::max_element(row, row + classes) - row);
      r.confusion.add(std::size_t(batch.labels[i]), pred);
    }
    r.count += batch.size;
    if (progress) progress(r.count, data.count);
  }
  r.loss = r.count ? loss_sum / double(r.count) : 0;
  r.accuracy = r.count ? double(correct) / double(r.count) : 0;
  return r;
}

/// Metadata that makes a weights file self-describing: dataset, normalisation, classes.
inline Metadata dataset_metadata(const Dataset& d, const std::string& dataset_key) {
  nlohmann::json mean = nlohmann::json::array(), std = nlohmann::json::array();
  for (std::size_t c = 0; c < d.channels; ++c) {
    mean.push_back(d.mean[c]);
    std.push_back(d.stddev[c]);
  }
  return {{"dataset", dataset_key},
          {"in_channels", std::to_string(d.channels)},
          {"image_size", detail::rformat("{}x{}", d.height, d.width)},
          {"normalize_mean", mean.dump()},
          {"normalize_std", std.dump()},
          {"class_names", nlohmann::json(d.class_names).dump()}};
}

}  // namespace odyssey
