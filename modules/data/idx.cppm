// IDX files (the MNIST family's format), plain or gzipped: a big-endian magic number
// 0x000008NN (unsigned bytes, NN dimensions), NN big-endian 32-bit extents, then exactly
// product(extents) bytes. A header is never trusted for an allocation: the payload is read
// in chunks and the buffer grows only with bytes actually read, so a hostile header that
// promises 2^31 images in a tiny file ends in a FormatError, not a giant allocation.
module;
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>
#include <fmt/format.h>
#include <zlib.h>
export module odyssey.data:idx;
import odyssey.tensor;

namespace odyssey::detail {

/// A file read through zlib, which passes plain (non-gzip) files through unchanged.
class GzReader {
 public:
  explicit GzReader(const std::filesystem::path& path) : path_(path.string()) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
      throw IoError(fmt::format("cannot read '{}': it is a directory", path_));
    errno = 0;
    file_ = ::gzopen(path_.c_str(), "rb");
    if (!file_)
      throw IoError(fmt::format("cannot open '{}': {}", path_,
                                errno ? std::strerror(errno) : "out of memory"));
    ::gzbuffer(file_, 1 << 17);
  }
  ~GzReader() {
    if (file_) ::gzclose(file_);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  /// Reads up to n bytes; fewer only at the end of the data.
  std::size_t read(void* dst, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
      const unsigned want = static_cast<unsigned>(std::min<std::size_t>(n - done, 1u << 30));
      const int got = ::gzread(file_, static_cast<char*>(dst) + done, want);
      if (got < 0) check();
      if (got <= 0) break;
      done += static_cast<std::size_t>(got);
    }
    return done;
  }

  /// Throws unless the stream so far is intact (a truncated or corrupt gzip stream is a
  /// FormatError, a failing read an IoError).
  void check() {
    int err = Z_OK;
    const char* msg = ::gzerror(file_, &err);
    if (err == Z_ERRNO)
      throw IoError(fmt::format("cannot read '{}': {}", path_, std::strerror(errno)));
    if (err != Z_OK) {
      std::string_view why = msg;  // zlib prefixes the path: drop it, ours comes first
      if (why.starts_with(path_ + ": ")) why.remove_prefix(path_.size() + 2);
      throw FormatError(fmt::format("{}: the gzip stream is damaged: {}", path_, why));
    }
  }

  /// True when the file is compressed (false: read as is).
  [[nodiscard]] bool gzipped() const { return ::gzdirect(file_) == 0; }

 private:
  std::string path_;
  gzFile file_ = nullptr;
};

struct IdxContents {
  std::vector<std::uint32_t> extents;
  std::vector<std::uint8_t> data;
};

/// Reads an IDX file of unsigned bytes with `rank` dimensions; `what` names its contents.
inline IdxContents read_idx(const std::filesystem::path& path, std::uint8_t rank,
                            std::string_view what) {
  const std::string name = path.string();
  GzReader in(path);
  unsigned char head[4];
  const std::size_t got_head = in.read(head, 4);
  in.check();
  if (got_head < 4)
    throw FormatError(fmt::format("{}: ends after {} bytes, inside the 4-byte IDX magic number",
                                  name, got_head));
  const std::uint32_t magic = std::uint32_t{head[0]} << 24 | std::uint32_t{head[1]} << 16 |
                              std::uint32_t{head[2]} << 8 | head[3];
  const std::uint32_t expected_magic = 0x0800u | rank;
  if (magic != expected_magic) {
    std::string hint;
    if (magic == 0x0803u) hint = " (this is an IDX image file)";
    if (magic == 0x0801u) hint = " (this is an IDX label file)";
    throw FormatError(fmt::format("{}: magic number 0x{:08x} where {} need 0x{:08x} (IDX, "
                                  "unsigned bytes, {} dimension{}){}", name, magic, what,
                                  expected_magic, rank, rank == 1 ? "" : "s", hint));
  }
  IdxContents out;
  std::uint64_t payload = 1;
  for (std::uint8_t d = 0; d < rank; ++d) {
    unsigned char b[4];
    if (in.read(b, 4) < 4) {
      in.check();
      throw FormatError(fmt::format("{}: ends inside its header (extent {} of {})", name, d + 1, rank));
    }
    const std::uint32_t e = std::uint32_t{b[0]} << 24 | std::uint32_t{b[1]} << 16 |
                            std::uint32_t{b[2]} << 8 | b[3];
    out.extents.push_back(e);
    if (__builtin_mul_overflow(payload, std::uint64_t{e}, &payload))
      throw FormatError(fmt::format("{}: the header's extents multiply beyond 2^64", name));
  }
  const std::size_t header_bytes = 4 + 4 * std::size_t{rank};
  // Grow with the data actually read, 1 MiB at a time (vector growth is geometric).
  constexpr std::size_t chunk = std::size_t{1} << 20;
  while (out.data.size() < payload) {
    const std::size_t old = out.data.size();
    const std::size_t want = std::min<std::uint64_t>(chunk, payload - old);
    out.data.resize(old + want);
    const std::size_t got = in.read(out.data.data() + old, want);
    out.data.resize(old + got);
    if (got < want) break;
  }
  const char* after = in.gzipped() ? " after decompression" : "";
  if (out.data.size() < payload) {
    in.check();
    throw FormatError(fmt::format("{}: truncated: its header promises {} bytes of {} after the "
                                  "{}-byte header, but only {} follow{}", name, payload, what,
                                  header_bytes, out.data.size(), after));
  }
  unsigned char extra;
  if (in.read(&extra, 1) != 0)
    throw FormatError(fmt::format("{}: longer than its header says: more than {} bytes of {} "
                                  "follow the {}-byte header{}", name, payload, what,
                                  header_bytes, after));
  in.check();
  return out;
}

}  // namespace odyssey::detail

export namespace odyssey {

/// The images of an IDX3 file: [count, rows, cols] bytes.
struct IdxImages {
  std::size_t count = 0, rows = 0, cols = 0;
  std::vector<std::uint8_t> pixels;
};

/// Reads an IDX image file (magic 0x00000803), gzipped or plain.
/// IoError when it cannot be read; FormatError naming the file when it is malformed.
[[nodiscard]] IdxImages load_idx_images(const std::filesystem::path& path) {
  detail::IdxContents c = detail::read_idx(path, 3, "images");
  if (c.extents[1] == 0 || c.extents[2] == 0)
    throw FormatError(fmt::format("{}: images of {}x{} pixels", path.string(), c.extents[1],
                                  c.extents[2]));
  return {c.extents[0], c.extents[1], c.extents[2], std::move(c.data)};
}

/// Reads an IDX label file (magic 0x00000801), gzipped or plain; every label must be below
/// `classes` (FormatError naming the file, the label's index and its value otherwise).
[[nodiscard]] std::vector<std::uint8_t> load_idx_labels(const std::filesystem::path& path,
                                                        std::size_t classes = 10) {
  detail::IdxContents c = detail::read_idx(path, 1, "labels");
  for (std::size_t i = 0; i < c.data.size(); ++i)
    if (c.data[i] >= classes)
      throw FormatError(fmt::format("{}: label {} is {}; labels must be below {}", path.string(),
                                    i, c.data[i], classes));
  return std::move(c.data);
}

}  // namespace odyssey
