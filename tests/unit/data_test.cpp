// odyssey.data: CIFAR-10 and IDX files written here (plain and gzipped, good and broken),
// and the batch loader: coverage, order, determinism, resumption, normalisation, and crop +
// flip against a plain reference. The real Fashion-MNIST is loaded when it is installed.
#define BOOST_TEST_MODULE data
#include <boost/test/unit_test.hpp>

#include "../support/expect_error.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>
#include <unistd.h>
#include <zlib.h>
import odyssey;
import odyssey.testing;

using namespace odyssey;
namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

namespace {

using odyssey::testing::TempDir;

void write_file(const fs::path& p, const Bytes& b) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void write_gz(const fs::path& p, const Bytes& b) {
  gzFile f = gzopen(p.c_str(), "wb");
  BOOST_REQUIRE(f != nullptr);
  if (!b.empty()) BOOST_REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
  gzclose(f);
}

/// An IDX file: magic, big-endian extents, payload.
Bytes idx_file(std::uint32_t magic, const std::vector<std::uint32_t>& extents, const Bytes& payload) {
  Bytes out;
  const auto put = [&](std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
  };
  put(magic);
  for (auto e : extents) put(e);
  out.insert(out.end(), payload.begin(), payload.end());
  return out;
}

std::uint8_t test_pixel(std::size_t image, std::size_t c, std::size_t y, std::size_t x) {
  return static_cast<std::uint8_t>(image * 37 + c * 101 + y * 7 + x * 3 + 1);
}

/// `n` CIFAR records; image i is numbered first + i and labelled label(first + i).
Bytes cifar_records(std::size_t first, std::size_t n, const std::function<std::uint8_t(std::size_t)>& label) {
  Bytes out;
  for (std::size_t i = first; i < first + n; ++i) {
    out.push_back(label(i));
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t y = 0; y < 32; ++y)
        for (std::size_t x = 0; x < 32; ++x) out.push_back(test_pixel(i, c, y, x));
  }
  return out;
}

std::uint8_t label_of(std::size_t i) { return static_cast<std::uint8_t>(i % 10); }

/// A 28x28 IDX image set and label set for Fashion-MNIST tests.
Bytes mnist_pixels(std::size_t n) {
  Bytes px;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t y = 0; y < 28; ++y)
      for (std::size_t x = 0; x < 28; ++x) px.push_back(test_pixel(i, 0, y, x));
  return px;
}
Bytes mnist_labels(std::size_t n) {
  Bytes l;
  for (std::size_t i = 0; i < n; ++i) l.push_back(label_of(i + 3));
  return l;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// CIFAR-10

BOOST_AUTO_TEST_CASE(cifar_loads_records_in_file_order) {
  TempDir dir("data-test");
  const std::size_t per_file[5] = {2, 3, 1, 2, 2};
  std::size_t first = 0;
  for (int f = 0; f < 5; ++f) {
    write_file(dir / ("data_batch_" + std::to_string(f + 1) + ".bin"),
               cifar_records(first, per_file[f], label_of));
    first += per_file[f];
  }
  write_file(dir / "test_batch.bin", cifar_records(100, 3, label_of));

  const Dataset train = load_cifar10(dir.path, Split::train);
  BOOST_TEST(train.count == 10u);
  BOOST_TEST(train.channels == 3u);
  BOOST_TEST(train.height == 32u);
  BOOST_TEST(train.width == 32u);
  BOOST_TEST(train.pixels.size() == 10u * 3072u);
  for (std::size_t i = 0; i < 10; ++i) {
    BOOST_TEST(train.labels[i] == label_of(i));
    bool same = true;
    for (std::size_t c = 0; c < 3; ++c)
      for (std::size_t y = 0; y < 32; ++y)
        for (std::size_t x = 0; x < 32; ++x)
          same = same && train.pixels[((i * 3 + c) * 32 + y) * 32 + x] == test_pixel(i, c, y, x);
    BOOST_TEST(same, "image " << i);
  }
  BOOST_TEST(train.class_names.size() == 10u);
  BOOST_TEST(train.class_names[0] == "airplane");
  BOOST_TEST(train.class_names[9] == "truck");
  BOOST_TEST(train.mean[1] == 0.4822f);
  BOOST_TEST(train.stddev[2] == 0.2616f);

  const Dataset test = load_cifar10(dir.path, Split::test);
  BOOST_TEST(test.count == 3u);
  BOOST_TEST(test.labels[2] == label_of(102));
  BOOST_TEST(test.pixels[3072 + 5] == test_pixel(101, 0, 0, 5));
}

BOOST_AUTO_TEST_CASE(cifar_errors_name_the_file) {
  TempDir dir("data-test");
  for (int f = 1; f <= 4; ++f)
    write_file(dir / ("data_batch_" + std::to_string(f) + ".bin"), cifar_records(0, 1, label_of));
  // data_batch_5.bin is missing.
  expect_error<IoError>([&] { (void)load_cifar10(dir.path, Split::train); },
                        {(dir / "data_batch_5.bin").string(), "data_batch_1.bin", "cifar-10-binary.tar.gz",
                         "cifar-10-batches-bin"});
  expect_error<IoError>([&] { (void)load_cifar10(dir / "nowhere", Split::test); },
                        {(dir / "nowhere" / "test_batch.bin").string(), "No such file"});

  // Two whole records and 100 bytes over.
  Bytes truncated = cifar_records(0, 3, label_of);
  truncated.resize(2 * 3073 + 100);
  write_file(dir / "test_batch.bin", truncated);
  expect_error<FormatError>([&] { (void)load_cifar10(dir.path, Split::test); },
                            {(dir / "test_batch.bin").string(), "6246 bytes", "2 records", "100 bytes over"});
  write_file(dir / "test_batch.bin", {});
  expect_error<FormatError>([&] { (void)load_cifar10(dir.path, Split::test); },
                            {(dir / "test_batch.bin").string(), "empty"});

  for (const std::uint8_t bad : {std::uint8_t{10}, std::uint8_t{255}}) {
    write_file(dir / "test_batch.bin",
               cifar_records(0, 3, [bad](std::size_t i) { return i == 1 ? bad : std::uint8_t{0}; }));
    expect_error<FormatError>([&] { (void)load_cifar10(dir.path, Split::test); },
                              {(dir / "test_batch.bin").string(), "record 1",
                               "label " + std::to_string(bad)});
  }
}

// ---------------------------------------------------------------------------------------
// IDX and Fashion-MNIST

BOOST_AUTO_TEST_CASE(fashion_mnist_loads_gzipped_and_plain_files_padded_to_32) {
  TempDir dir("data-test");
  // train: gzipped; test: plain names.
  write_gz(dir / "train-images-idx3-ubyte.gz", idx_file(0x803, {5, 28, 28}, mnist_pixels(5)));
  write_gz(dir / "train-labels-idx1-ubyte.gz", idx_file(0x801, {5}, mnist_labels(5)));
  write_file(dir / "t10k-images-idx3-ubyte", idx_file(0x803, {2, 28, 28}, mnist_pixels(2)));
  write_file(dir / "t10k-labels-idx1-ubyte", idx_file(0x801, {2}, mnist_labels(2)));

  for (const Split split : {Split::train, Split::test}) {
    const Dataset d = load_fashion_mnist(dir.path, split);
    const std::size_t n = split == Split::train ? 5 : 2;
    BOOST_TEST(d.count == n);
    BOOST_TEST(d.channels == 1u);
    BOOST_TEST(d.height == 32u);
    BOOST_TEST(d.width == 32u);
    BOOST_TEST(d.pixels.size() == n * 1024u);
    BOOST_TEST(d.labels == mnist_labels(n), boost::test_tools::per_element());
    BOOST_TEST(d.class_names[0] == "T-shirt/top");
    BOOST_TEST(d.class_names[9] == "Ankle boot");
    BOOST_TEST(d.mean[0] == 0.2860f);
    BOOST_TEST(d.stddev[0] == 0.3530f);
    bool ok = true;
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t y = 0; y < 32; ++y)
        for (std::size_t x = 0; x < 32; ++x) {
          const bool inside = y >= 2 && y < 30 && x >= 2 && x < 30;
          const std::uint8_t want = inside ? test_pixel(i, 0, y - 2, x - 2) : 0;
          ok = ok && d.pixels[(i * 32 + y) * 32 + x] == want;
        }
    BOOST_TEST(ok, "padding and placement of split " << split_name(split));
  }

  // The generic readers see the file as it is.
  const IdxImages raw = load_idx_images(dir / "train-images-idx3-ubyte.gz");
  BOOST_TEST(raw.count == 5u);
  BOOST_TEST(raw.rows == 28u);
  BOOST_TEST(raw.cols == 28u);
  BOOST_TEST(raw.pixels == mnist_pixels(5), boost::test_tools::per_element());
  BOOST_TEST(load_idx_labels(dir / "t10k-labels-idx1-ubyte") == mnist_labels(2),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(idx_errors_name_the_file) {
  TempDir dir("data-test");
  const auto images = dir / "train-images-idx3-ubyte";
  const auto labels = dir / "train-labels-idx1-ubyte";

  // Truncated, plain and gzipped: the header promises 4*28*28 = 3136 bytes, 3000 follow.
  Bytes px = mnist_pixels(4);
  px.resize(3000);
  for (const bool gz : {false, true}) {
    const fs::path p = gz ? fs::path(images.string() + ".gz") : images;
    gz ? write_gz(p, idx_file(0x803, {4, 28, 28}, px)) : write_file(p, idx_file(0x803, {4, 28, 28}, px));
    expect_error<FormatError>([&] { (void)load_idx_images(p); }, {p.string(), "3136 bytes", "only 3000"});
    fs::remove(p);
  }
  // More bytes than promised.
  Bytes longer = mnist_pixels(2);
  longer.push_back(0);
  write_file(images, idx_file(0x803, {2, 28, 28}, longer));
  expect_error<FormatError>([&] { (void)load_idx_images(images); }, {images.string(), "longer"});

  // Wrong magic: a label file given as images, and an arbitrary number.
  write_file(images, idx_file(0x801, {2}, {1, 2}));
  expect_error<FormatError>([&] { (void)load_idx_images(images); },
                            {images.string(), "0x00000801", "0x00000803"});
  write_file(labels, idx_file(0x12345678, {2}, {1, 2}));
  expect_error<FormatError>([&] { (void)load_idx_labels(labels); }, {labels.string(), "0x12345678"});
  write_file(labels, Bytes{0, 0});
  expect_error<FormatError>([&] { (void)load_idx_labels(labels); }, {labels.string(), "magic"});

  // Labels out of range.
  for (const std::uint8_t bad : {std::uint8_t{10}, std::uint8_t{255}}) {
    write_gz(labels.string() + ".gz", idx_file(0x801, {4}, {1, 2, bad, 3}));
    expect_error<FormatError>([&] { (void)load_idx_labels(labels.string() + ".gz"); },
                              {labels.string() + ".gz", "label 2 is " + std::to_string(bad)});
  }
  fs::remove(labels.string() + ".gz");

  // Image and label counts disagree.
  write_file(images, idx_file(0x803, {3, 28, 28}, mnist_pixels(3)));
  write_file(labels, idx_file(0x801, {2}, mnist_labels(2)));
  expect_error<FormatError>([&] { (void)load_fashion_mnist(dir.path, Split::train); },
                            {images.string(), labels.string(), "3 images", "2 labels"});

  // Missing files.
  expect_error<IoError>([&] { (void)load_fashion_mnist(dir.path, Split::test); },
                        {dir.path.string(), "t10k-images-idx3-ubyte.gz", "dataset-fashion-mnist"});
  expect_error<IoError>([&] { (void)load_idx_images(dir / "absent.gz"); },
                        {(dir / "absent.gz").string(), "No such file"});

  // A hostile header: 2^31 images of 28x28 (1.7 TB) in a file of a few bytes. Allocating
  // by the header would throw bad_alloc; the reader must answer with a FormatError.
  for (const bool gz : {false, true}) {
    const fs::path p = dir / (gz ? "hostile.gz" : "hostile");
    const Bytes f = idx_file(0x803, {0x80000000u, 28, 28}, {1, 2, 3, 4, 5});
    gz ? write_gz(p, f) : write_file(p, f);
    expect_error<FormatError>([&] { (void)load_idx_images(p); }, {p.string(), "1683627180032 bytes", "only 5"});
    const Bytes l = idx_file(0x801, {0xffffffffu}, {1, 2, 3});
    gz ? write_gz(p, l) : write_file(p, l);
    expect_error<FormatError>([&] { (void)load_idx_labels(p); }, {p.string(), "4294967295 bytes", "only 3"});
  }

  // A damaged gzip stream: the compressed file cut short.
  const fs::path cut = dir / "cut.gz";
  write_gz(cut, idx_file(0x803, {40, 28, 28}, mnist_pixels(40)));
  fs::resize_file(cut, fs::file_size(cut) / 2);
  expect_error<FormatError>([&] { (void)load_idx_images(cut); }, {cut.string()});
}

BOOST_AUTO_TEST_CASE(subset_takes_the_first_images) {
  TempDir dir("data-test");
  write_file(dir / "test_batch.bin", cifar_records(0, 5, label_of));
  const Dataset d = load_cifar10(dir.path, Split::test);
  const Dataset s = subset(d, 3);
  BOOST_TEST(s.count == 3u);
  BOOST_TEST(s.pixels.size() == 3u * 3072u);
  BOOST_TEST(std::equal(s.pixels.begin(), s.pixels.end(), d.pixels.begin()));
  BOOST_TEST(s.labels == Bytes(d.labels.begin(), d.labels.begin() + 3), boost::test_tools::per_element());
  BOOST_TEST(s.mean == d.mean);
  BOOST_CHECK_THROW((void)subset(d, 6), ValueError);
  BOOST_CHECK_THROW((void)subset(d, 0), ValueError);
}

// ---------------------------------------------------------------------------------------
// The real dataset, when installed.

BOOST_AUTO_TEST_CASE(real_fashion_mnist_when_installed) {
  const fs::path dir(fashion_mnist_default_dir);
  if (!fs::exists(dir / "train-images-idx3-ubyte.gz") && !fs::exists(dir / "train-images-idx3-ubyte")) {
    BOOST_TEST_MESSAGE("skipped: Fashion-MNIST is not installed in " << dir
                       << " (Debian package dataset-fashion-mnist)");
    return;
  }
  const Dataset train = load_fashion_mnist(Split::train);
  const Dataset test = load_fashion_mnist(dir, Split::test);
  BOOST_TEST(train.count == 60000u);
  BOOST_TEST(test.count == 10000u);
  BOOST_TEST(train.pixels.size() == 60000u * 32u * 32u);
  BOOST_TEST(*std::max_element(train.labels.begin(), train.labels.end()) < 10);
  BOOST_TEST(*std::max_element(test.labels.begin(), test.labels.end()) < 10);
  // The padding is background in every image.
  bool border_zero = true;
  for (std::size_t i = 0; i < test.count; ++i)
    for (std::size_t x = 0; x < 32; ++x)
      border_zero = border_zero && test.pixels[i * 1024 + x] == 0 && test.pixels[i * 1024 + 31 * 32 + x] == 0;
  BOOST_TEST(border_zero);
}
