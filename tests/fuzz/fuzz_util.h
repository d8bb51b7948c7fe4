// Helpers shared by the libFuzzer targets of tests/fuzz.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "common/util/log.h"

namespace rally::fuzz {

// An invariant of the decoder under test: when it does not hold, says which and aborts, so
// that libFuzzer saves the input as a crash.
#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

// Recovery reports damage to the process log: an input is all damage, and its lines would
// only slow the run down.
inline void SilenceLog() {
  SetMinLogLevel(static_cast<LogLevel>(static_cast<int>(LogLevel::kError) + 1));
}

inline std::string_view Bytes(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

// A directory of this process's own, emptied for each input (in memory where /dev/shm exists).
class ScratchDir {
 public:
  ScratchDir() {
    const std::filesystem::path base =
        std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path();
    path_ = (base / ("rally-fuzz-" + std::to_string(getpid()))).string();
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  // Empties the directory (creating it) and returns its path.
  const std::string& Reset() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    std::filesystem::create_directories(path_, ec);
    return path_;
  }
  void Write(const std::string& name, std::string_view bytes) const {
    std::ofstream out(std::filesystem::path(path_) / name, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }

 private:
  std::string path_;
};

}  // namespace rally::fuzz
