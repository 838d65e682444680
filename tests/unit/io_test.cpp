// odyssey.io: safetensors round trips, the byte layout checked against a hand-written
// file, every corrupt-file rule, all-or-nothing loading into slots, and atomic saving.
#define BOOST_TEST_MODULE io
#include <boost/test/unit_test.hpp>

#include "../support/expect_error.h"

#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <string>
#include <vector>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
import odyssey;
import odyssey.testing;

using namespace odyssey;
namespace fs = std::filesystem;

namespace {

using odyssey::testing::TempDir;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// A safetensors file from a header length, a header and a data region, written verbatim.
std::string raw_file(std::uint64_t header_length, const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header_length >> (8 * i)) & 0xff);
  return out + header + data;
}
std::string raw_file(const std::string& header, const std::string& data) {
  return raw_file(header.size(), header, data);
}

/// Writes a file with the given header and data, reads it, expects FormatError naming the
/// file and each of `parts`.
void expect_corrupt(const std::string& header, const std::string& data,
                    const std::vector<std::string>& parts) {
  TempDir dir("io-test");
  const fs::path p = dir / "bad.safetensors";
  write_all(p, raw_file(header, data));
  std::vector<std::string> all = parts;
  all.push_back(p.string());
  expect_error<FormatError>([&] { (void)SafeTensors::read(p); }, all);
}

bool no_temp_files(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp-") != std::string::npos) return false;
  return true;
}

}  // namespace

BOOST_AUTO_TEST_CASE(round_trip_all_dtypes_with_metadata) {
  TempDir dir("io-test");
  const std::vector<float> w = {1.5f, -2.25f, 0.0f, 3e-8f, -0.0f, 1e30f};
  const std::vector<double> b = {0.1, -1e-300, 12345.678};
  const std::vector<std::int64_t> step = {-3, std::numeric_limits<std::int64_t>::max()};
  const float scalar = 7.0f;
  const std::vector<TensorEntry> entries = {
      {"layer1.0.conv1.weight", DType::f32, {2, 3}, w.data()},
      {"bn1.running_mean", DType::f64, {3}, b.data()},
      {"step", DType::i64, {2}, step.data()},
      {"scale", DType::f32, {}, &scalar},
      {"empty", DType::f32, {0, 4}, nullptr},
  };
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"epoch", "3"}};
  const fs::path p = dir / "model.safetensors";
  write_safetensors(p, entries, meta);

  const SafeTensors st = SafeTensors::read(p);
  BOOST_TEST(st.names() == (std::vector<std::string>{"bn1.running_mean", "empty",
                                                     "layer1.0.conv1.weight", "scale", "step"}),
             boost::test_tools::per_element());
  BOOST_TEST(st.metadata() == meta);
  BOOST_TEST(st.values<float>("layer1.0.conv1.weight") == w, boost::test_tools::per_element());
  BOOST_TEST(st.values<double>("bn1.running_mean") == b, boost::test_tools::per_element());
  BOOST_TEST(st.values<std::int64_t>("step") == step, boost::test_tools::per_element());
  BOOST_TEST(st.values<float>("scale").at(0) == 7.0f);
  BOOST_TEST(st.tensor("scale").shape.empty());
  BOOST_TEST((st.tensor("empty").shape == std::vector<std::size_t>{0, 4}));
  BOOST_TEST(st.tensor("empty").elements() == 0u);
  BOOST_TEST((st.tensor("layer1.0.conv1.weight").shape == std::vector<std::size_t>{2, 3}));
  BOOST_TEST((st.tensor("step").dtype == DType::i64));

  // Typed copy-out checks the type and the count.
  std::vector<double> wrong_type(6);
  BOOST_CHECK_THROW(st.copy_to<double>("layer1.0.conv1.weight", wrong_type), FormatError);
  std::vector<float> wrong_count(5);
  BOOST_CHECK_THROW(st.copy_to<float>("layer1.0.conv1.weight", wrong_count), ShapeError);
  expect_error<FormatError>([&] { (void)st.tensor("nope"); }, {"'nope'", p.string()});

  // The order of the entries does not matter: the file is the same byte for byte.
  const std::vector<TensorEntry> reversed(entries.rbegin(), entries.rend());
  write_safetensors(dir / "again.safetensors", reversed, meta);
  BOOST_TEST(read_all(p) == read_all(dir / "again.safetensors"));
  // The data region starts on an 8-byte boundary.
  std::uint64_t n = 0;
  std::memcpy(&n, read_all(p).data(), 8);
  BOOST_TEST(n % 8 == 0u);
}

BOOST_AUTO_TEST_CASE(file_matches_hand_written_bytes) {
  const std::int64_t a = 258;
  const float b[2] = {1.0f, -2.0f};
  // Given in reverse order: the file lists them sorted.
  const std::vector<TensorEntry> entries = {{"b", DType::f32, {2}, b}, {"a", DType::i64, {1}, &a}};
  TempDir dir("io-test");
  const fs::path p = dir / "tiny.safetensors";
  write_safetensors(p, entries, {{"k", "v"}});

  // 133 bytes of JSON + 3 spaces = 136 = 0x88; then 258 as little-endian i64; then the two
  // floats 1.0 = 0x3f800000 and -2.0 = 0xc0000000, little-endian.
  const std::string json =
      R"({"__metadata__":{"k":"v"},"a":{"data_offsets":[0,8],"dtype":"I64","shape":[1]},)"
      R"("b":{"data_offsets":[8,16],"dtype":"F32","shape":[2]}})";
  BOOST_TEST(json.size() == 133u);
  const unsigned char expected_head[8] = {0x88, 0, 0, 0, 0, 0, 0, 0};
  const unsigned char expected_data[16] = {0x02, 0x01, 0, 0, 0, 0, 0, 0,
                                           0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0};
  const std::string expected = std::string(reinterpret_cast<const char*>(expected_head), 8) + json +
                               "   " +
                               std::string(reinterpret_cast<const char*>(expected_data), 16);
  BOOST_TEST(read_all(p) == expected);

  // And the hand-written bytes read back as the tensors they describe.
  write_all(dir / "hand.safetensors", expected);
  const SafeTensors st = SafeTensors::read(dir / "hand.safetensors");
  BOOST_TEST(st.values<std::int64_t>("a").at(0) == 258);
  BOOST_TEST(st.values<float>("b").at(1) == -2.0f);
  BOOST_TEST(st.metadata().at("k") == "v");
}

BOOST_AUTO_TEST_CASE(unreadable_and_short_files) {
  TempDir dir("io-test");
  expect_error<IoError>([&] { (void)SafeTensors::read(dir / "missing.safetensors"); },
                        {(dir / "missing.safetensors").string(), "No such file"});
  expect_error<IoError>([&] { (void)SafeTensors::read(dir.path); }, {dir.path.string()});
  write_all(dir / "short", std::string("\x10\0\0\0\0", 5));
  expect_error<FormatError>([&] { (void)SafeTensors::read(dir / "short"); },
                            {(dir / "short").string(), "5 bytes"});
  // Header length beyond the file, and an absurd one: refused before anything is allocated.
  write_all(dir / "long", raw_file(1000, "{}", ""));
  expect_error<FormatError>([&] { (void)SafeTensors::read(dir / "long"); },
                            {(dir / "long").string(), "1000-byte header"});
  write_all(dir / "absurd", raw_file(std::uint64_t{1} << 62, "{}", ""));
  expect_error<FormatError>([&] { (void)SafeTensors::read(dir / "absurd"); },
                            {(dir / "absurd").string(), "limit"});
}

BOOST_AUTO_TEST_CASE(corrupt_headers_are_named) {
  const std::string d8(8, '\0');
  expect_corrupt(R"({"w": {"dtype": "F32", )", "", {"not valid JSON", "parse error"});
  expect_corrupt(R"([1, 2])", "", {"not a JSON object"});
  expect_corrupt(R"({"w": 5})", "", {"'w'", "not a JSON object"});
  expect_corrupt(R"({"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}})", d8,
                 {"'w'", "F16"});
  expect_corrupt(R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", d8, {"'w'", "dtype"});
  expect_corrupt(R"({"w": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}})", d8,
                 {"'w'", "shape"});
  expect_corrupt(R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", d8,
                 {"'w'", "-2"});
  expect_corrupt(R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", d8,
                 {"'w'", "2.5"});
  expect_corrupt(R"({"w": {"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]}})", d8,
                 {"'w'", "non-negative integer"});
  expect_corrupt(
      R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 8]}})",
      d8, {"'w'", "overflows"});
  expect_corrupt(
      R"({"w": {"dtype": "F64", "shape": [4294967296, 1073741824], "data_offsets": [0, 8]}})", d8,
      {"'w'", "overflows"});
  expect_corrupt(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})", d8,
                 {"'w'", "data_offsets"});
  expect_corrupt(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": ["0", 8]}})", d8,
                 {"'w'", "data_offsets"});
  expect_corrupt(R"({"w": {"dtype": "F32", "shape": [2]}})", d8, {"'w'", "data_offsets"});
  expect_corrupt(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", d8,
                 {"'w'", "ends before it begins"});
  expect_corrupt(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", d8,
                 {"'w'", "beyond the 8-byte data region"});
  expect_corrupt(R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 12]}})",
                 std::string(12, '\0'), {"'w'", "12 bytes", "needs 8"});
  expect_corrupt(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                 R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                 std::string(12, '\0'), {"'b'", "overlap", "'a'"});
  expect_corrupt(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                 R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}})",
                 std::string(20, '\0'), {"'b'", "[8, 12)", "no tensor"});
  expect_corrupt(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
                 std::string(12, '\0'), {"last 4 bytes", "no tensor"});
  expect_corrupt(R"({"__metadata__": {"epoch": 3}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
                 d8, {"__metadata__", "'epoch'", "not a string"});
  expect_corrupt(R"({"__metadata__": ["x"]})", "", {"__metadata__", "not a JSON object"});
}

BOOST_AUTO_TEST_CASE(load_tensors_is_all_or_nothing) {
  TempDir dir("io-test");
  const std::vector<float> w = {1, 2, 3, 4, 5, 6};
  const std::vector<double> b = {0.5, 1.5, 2.5};
  const std::int64_t step = 42;
  const fs::path p = dir / "state.safetensors";
  write_safetensors(p, std::vector<TensorEntry>{{"w", DType::f32, {2, 3}, w.data()},
                                                {"b", DType::f64, {3}, b.data()},
                                                {"step", DType::i64, {1}, &step}});
  const SafeTensors st = SafeTensors::read(p);

  std::vector<float> dw(6, -1.0f);
  std::vector<double> db(3, -1.0);
  std::int64_t dstep = -1;
  const auto untouched = [&] {
    return dw == std::vector<float>(6, -1.0f) && db == std::vector<double>(3, -1.0) && dstep == -1;
  };
  const std::vector<TensorSlot> good = {{"w", DType::f32, {2, 3}, dw.data()},
                                        {"b", DType::f64, {3}, db.data()},
                                        {"step", DType::i64, {1}, &dstep}};

  // Missing tensor (listed last, so the slots before it were already validated).
  expect_error<FormatError>(
      [&] {
        auto s = good;
        s.push_back({"extra.weight", DType::f32, {1}, dw.data()});
        load_tensors(st, s);
      },
      {p.string(), "'extra.weight'"});
  BOOST_TEST(untouched());
  // dtype mismatch.
  expect_error<FormatError>(
      [&] {
        auto s = good;
        s[1].dtype = DType::f32;
        load_tensors(st, s);
      },
      {p.string(), "'b'", "F64", "F32"});
  BOOST_TEST(untouched());
  // shape mismatch.
  expect_error<ShapeError>(
      [&] {
        auto s = good;
        s[0].shape = {3, 2};
        load_tensors(st, s);
      },
      {p.string(), "'w'", "[2, 3]", "[3, 2]"});
  BOOST_TEST(untouched());
  // A tensor in the file that nothing takes.
  expect_error<FormatError>([&] { load_tensors(st, std::vector<TensorSlot>{good[0], good[1]}); },
                            {p.string(), "'step'"});
  BOOST_TEST(untouched());

  // Non-finite values, found after the structure passed.
  for (const double bad : {std::nan(""), std::numeric_limits<double>::infinity()}) {
    std::vector<double> b2 = b;
    b2[2] = bad;
    const fs::path q = dir / "nan.safetensors";
    write_safetensors(q, std::vector<TensorEntry>{{"w", DType::f32, {2, 3}, w.data()},
                                                  {"b", DType::f64, {3}, b2.data()},
                                                  {"step", DType::i64, {1}, &step}});
    const SafeTensors sq = SafeTensors::read(q);
    expect_error<ValueError>([&] { load_tensors(sq, good); }, {q.string(), "'b'", "element 2"});
    BOOST_TEST(untouched());
  }
  std::vector<float> w2 = w;
  w2[4] = -std::numeric_limits<float>::infinity();
  write_safetensors(dir / "inf.safetensors",
                    std::vector<TensorEntry>{{"w", DType::f32, {2, 3}, w2.data()},
                                             {"b", DType::f64, {3}, b.data()},
                                             {"step", DType::i64, {1}, &step}});
  expect_error<ValueError>([&] { load_tensors(SafeTensors::read(dir / "inf.safetensors"), good); },
                           {"'w'", "element 4"});
  BOOST_TEST(untouched());

  load_tensors(st, good);
  BOOST_TEST(dw == w, boost::test_tools::per_element());
  BOOST_TEST(db == b, boost::test_tools::per_element());
  BOOST_TEST(dstep == 42);
}

BOOST_AUTO_TEST_CASE(atomic_write_failures_keep_the_previous_file) {
  TempDir dir("io-test");
  const std::vector<float> v(16 * 1024, 0.25f);  // 64 KiB of data
  const std::vector<TensorEntry> big = {{"v", DType::f32, {v.size()}, v.data()}};
  const float one = 1.0f;
  const std::vector<TensorEntry> small = {{"one", DType::f32, {1}, &one}};

  // A directory that does not exist.
  const fs::path nowhere = dir / "no-such-dir" / "model.safetensors";
  expect_error<IoError>([&] { write_safetensors(nowhere, small); },
                        {nowhere.string(), "No such file or directory"});
  BOOST_TEST(!fs::exists(nowhere.parent_path()));

  const fs::path p = dir / "model.safetensors";
  write_safetensors(p, small);
  const std::string before = read_all(p);

  // A full disk, simulated with a file-size limit: the write fails part way through.
  {
    rlimit old{};
    ::getrlimit(RLIMIT_FSIZE, &old);
    const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    rlimit tight = old;
    tight.rlim_cur = 4096;
    ::setrlimit(RLIMIT_FSIZE, &tight);
    std::string message;
    try {
      write_safetensors(p, big);
    } catch (const IoError& e) {
      message = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
    BOOST_TEST(message.find(p.string()) != std::string::npos, message);
    BOOST_TEST(message.find("File too large") != std::string::npos, message);
  }
  BOOST_TEST(read_all(p) == before);
  BOOST_TEST(no_temp_files(dir.path));

  // The destination is a directory: the rename fails, the temp file goes away.
  fs::create_directory(dir / "taken");
  expect_error<IoError>([&] { write_safetensors(dir / "taken", small); }, {(dir / "taken").string()});
  BOOST_TEST(fs::is_directory(dir / "taken"));
  BOOST_TEST(no_temp_files(dir.path));

  // A read-only directory (root may write anyway; then there is nothing to test).
  fs::create_directory(dir / "ro");
  const fs::path ro = dir / "ro" / "model.safetensors";
  write_safetensors(ro, small);
  fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
  if (::access((dir / "ro").c_str(), W_OK) == 0) {
    BOOST_TEST_MESSAGE("read-only directory case skipped: this user may write anyway (root)");
  } else {
    expect_error<IoError>([&] { write_safetensors(ro, big); }, {ro.string(), "Permission denied"});
    BOOST_TEST(read_all(ro) == before);
  }
  fs::permissions(dir / "ro", fs::perms::owner_all);
  BOOST_TEST(no_temp_files(dir / "ro"));

  // A successful overwrite replaces the file and leaves no temp file behind.
  write_safetensors(p, big);
  BOOST_TEST(SafeTensors::read(p).values<float>("v") == v);
  BOOST_TEST(no_temp_files(dir.path));
}

BOOST_AUTO_TEST_CASE(leftover_temp_file_does_not_affect_loading) {
  TempDir dir("io-test");
  const float one = 1.0f;
  const fs::path p = dir / "ckpt.safetensors";
  write_safetensors(p, std::vector<TensorEntry>{{"one", DType::f32, {1}, &one}});
  // What a save killed mid-write leaves: a truncated temp file beside the real one.
  write_all(p.string() + ".tmp-12345", std::string("\x40\0\0\0\0\0\0\0{\"one\":", 15));
  BOOST_TEST(SafeTensors::read(p).values<float>("one").at(0) == 1.0f);
  const float two = 2.0f;
  write_safetensors(p, std::vector<TensorEntry>{{"one", DType::f32, {1}, &two}});
  BOOST_TEST(SafeTensors::read(p).values<float>("one").at(0) == 2.0f);
}

BOOST_AUTO_TEST_CASE(writer_rejects_bad_names) {
  TempDir dir("io-test");
  const float x = 0.0f;
  BOOST_CHECK_THROW(write_safetensors(dir / "a", std::vector<TensorEntry>{{"", DType::f32, {1}, &x}}),
                    ValueError);
  BOOST_CHECK_THROW(write_safetensors(dir / "a", std::vector<TensorEntry>{{"x", DType::f32, {1}, &x},
                                                                          {"x", DType::f32, {1}, &x}}),
                    ValueError);
  BOOST_CHECK_THROW(
      write_safetensors(dir / "a", std::vector<TensorEntry>{{"__metadata__", DType::f32, {1}, &x}}),
      ValueError);
  BOOST_TEST(!fs::exists(dir / "a"));
}
