#include "common/util/zstd.h"

#include <zstd.h>

#include "absl/strings/str_cat.h"

namespace rally {

std::string ZstdCompress(std::string_view raw, int level) {
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), raw.data(), raw.size(), level);
  if (ZSTD_isError(n) || n >= raw.size()) return "";
  out.resize(n);
  return out;
}

std::string ZstdCompressIfWorthIt(std::string_view raw, int level) {
  constexpr size_t kProbeBytes = 4096;
  if (raw.size() > 4 * kProbeBytes) {
    std::string probe = ZstdCompress(raw.substr(0, kProbeBytes), level);
    if (probe.empty() || probe.size() > kProbeBytes * 9 / 10) return "";
  }
  return ZstdCompress(raw, level);
}

absl::StatusOr<std::string> ZstdDecompress(std::string_view frame, size_t max_bytes) {
  unsigned long long size = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (size == ZSTD_CONTENTSIZE_ERROR) return absl::InvalidArgumentError("not a zstd frame");
  if (size == ZSTD_CONTENTSIZE_UNKNOWN) {
    return absl::InvalidArgumentError("zstd frame does not state its content size");
  }
  if (size > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("zstd frame expands to ", size, " bytes, more than the limit of ", max_bytes));
  }
  std::string raw(size, '\0');
  size_t n = ZSTD_decompress(raw.data(), raw.size(), frame.data(), frame.size());
  if (ZSTD_isError(n) || n != size) {
    return absl::InvalidArgumentError(
        absl::StrCat("zstd frame does not decompress: ",
                     ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short content"));
  }
  return raw;
}

}  // namespace rally
