// Shared by the fuzz targets: the input as a file (the readers under test take paths, as
// the CLI does). One file per process in /dev/shm (or the temp dir), rewritten each run.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace odyssey::fuzz {

inline std::filesystem::path input_file(const uint8_t* data, std::size_t size, const char* suffix) {
  static const std::filesystem::path dir =
      std::filesystem::exists("/dev/shm") ? std::filesystem::path("/dev/shm") : std::filesystem::temp_directory_path();
  const auto path = dir / ("odyssey-fuzz-" + std::to_string(::getpid()) + suffix);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

}  // namespace odyssey::fuzz
