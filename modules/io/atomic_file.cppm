// Writing a file so that a crash or an error never leaves a half-written file in its place:
// the bytes go to "<path>.tmp-<pid>" in the same directory, which is flushed, fsync'ed and
// then renamed over <path>; the directory is fsync'ed so the rename itself is durable. On
// any failure the temporary file is removed and the previous file at <path> is untouched.
module;
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <fcntl.h>
#include <unistd.h>
export module odyssey.io:atomic_file;
import odyssey.tensor;

export namespace odyssey {

/// A file being written in place of `path`; it replaces `path` only on commit().
/// Not for several writers of one path at once in one process (they share the temp name).
class AtomicFile {
 public:
  explicit AtomicFile(std::filesystem::path path)
      : path_(std::move(path)),
        temp_(path_.string() + ".tmp-" + std::to_string(static_cast<long>(::getpid()))) {
    file_ = std::fopen(temp_.c_str(), "wb");
    if (!file_) fail("cannot create the temporary file", errno);
  }

  /// Removes the temporary file unless commit() succeeded.
  ~AtomicFile() { discard(); }

  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, std::size_t bytes) {
    if (bytes == 0) return;
    if (std::fwrite(data, 1, bytes, file_) != bytes) fail("cannot write the temporary file", errno);
  }
  void write(std::span<const std::byte> bytes) { write(bytes.data(), bytes.size()); }

  /// Flushes and fsyncs the data, renames the temporary file over `path` and fsyncs the
  /// directory. Throws IoError naming `path` and the system's reason on failure.
  void commit() {
    if (std::fflush(file_) != 0) fail("cannot write the temporary file", errno);
    if (::fsync(::fileno(file_)) != 0) fail("cannot fsync the temporary file", errno);
    std::FILE* f = std::exchange(file_, nullptr);
    if (std::fclose(f) != 0) fail("cannot close the temporary file", errno);
    if (std::rename(temp_.c_str(), path_.c_str()) != 0)
      fail("cannot rename the temporary file over it", errno);
    committed_ = true;
    // The data is in place; make the directory entry durable too.
    std::filesystem::path dir = path_.parent_path();
    if (dir.empty()) dir = ".";
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd < 0) fail("cannot open its directory to fsync it", errno);
    const int r = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (r != 0) fail("cannot fsync its directory", err);
  }

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  [[nodiscard]] const std::filesystem::path& temp_path() const noexcept { return temp_; }

 private:
  void discard() noexcept {
    if (file_) std::fclose(std::exchange(file_, nullptr));
    if (!committed_) {
      std::error_code ec;
      std::filesystem::remove(temp_, ec);
    }
  }

  [[noreturn]] void fail(std::string_view what, int err) {
    discard();
    throw IoError("cannot save '" + path_.string() + "': " + std::string(what) + " ('" +
                  temp_.string() + "'): " + std::strerror(err));
  }

  std::filesystem::path path_;
  std::filesystem::path temp_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

/// Replaces the file at `path` by `bytes`, atomically (see AtomicFile).
void write_file_atomically(const std::filesystem::path& path, std::span<const std::byte> bytes) {
  AtomicFile f(path);
  f.write(bytes);
  f.commit();
}

}  // namespace odyssey
