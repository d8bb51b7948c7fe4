// ZstdDecompress (common/util/zstd.h) on arbitrary frames: never more than the limit, and what
// it returns compresses and decompresses back to itself.
#include <cstddef>
#include <cstdint>

#include "common/util/zstd.h"
#include "tests/fuzz/fuzz_util.h"

namespace {
constexpr size_t kLimit = 1 << 20;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view frame = rally::fuzz::Bytes(data, size);
  absl::StatusOr<std::string> raw = rally::ZstdDecompress(frame, kLimit);
  if (raw.ok()) {
    FUZZ_CHECK(raw->size() <= kLimit);
    const std::string again = rally::ZstdCompress(*raw);
    if (!again.empty()) {
      absl::StatusOr<std::string> back = rally::ZstdDecompress(again, kLimit);
      FUZZ_CHECK(back.ok() && *back == *raw);
    }
  }
  // A limit below the frame's size is refused, never exceeded.
  absl::StatusOr<std::string> small = rally::ZstdDecompress(frame, 16);
  FUZZ_CHECK(!small.ok() || small->size() <= 16);
  return 0;
}
