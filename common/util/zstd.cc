#include "common/util/zstd.h"

#include <zstd.h>

#include <memory>

#include "absl/strings/str_cat.h"

namespace rally {
namespace {

// One compression and one decompression context per thread, reused: creating a context per
// call allocates and clears its tables, which costs more than compressing a small probe.
ZSTD_CCtx* ThreadCompressionContext() {
  struct Free {
    void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  };
  thread_local std::unique_ptr<ZSTD_CCtx, Free> context(ZSTD_createCCtx());
  return context.get();
}

ZSTD_DCtx* ThreadDecompressionContext() {
  struct Free {
    void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
  };
  thread_local std::unique_ptr<ZSTD_DCtx, Free> context(ZSTD_createDCtx());
  return context.get();
}

constexpr size_t kProbeBytes = 4096;

// Whether the first kProbeBytes of a payload shrink by a tenth.
bool ProbeCompresses(std::string_view head, int level) {
  std::string probe = ZstdCompress(head, level);
  return !probe.empty() && probe.size() <= kProbeBytes * 9 / 10;
}

}  // namespace

std::string ZstdCompress(std::string_view raw, int level) {
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  size_t n = ZSTD_compressCCtx(ThreadCompressionContext(), out.data(), out.size(), raw.data(),
                               raw.size(), level);
  if (ZSTD_isError(n) || n >= raw.size()) return "";
  out.resize(n);
  return out;
}

std::string ZstdCompressIfWorthIt(std::string_view raw, int level) {
  if (raw.size() > 4 * kProbeBytes && !ProbeCompresses(raw.substr(0, kProbeBytes), level)) {
    return "";
  }
  return ZstdCompress(raw, level);
}

std::string ZstdCompressIfWorthIt(const absl::Cord& raw, int level) {
  if (raw.size() > 4 * kProbeBytes &&
      !ProbeCompresses(std::string(raw.Subcord(0, kProbeBytes)), level)) {
    return "";
  }
  if (absl::optional<absl::string_view> flat = raw.TryFlat()) {
    return ZstdCompress(std::string_view(flat->data(), flat->size()), level);
  }
  return ZstdCompress(std::string(raw), level);
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
  size_t n = ZSTD_decompressDCtx(ThreadDecompressionContext(), raw.data(), raw.size(), frame.data(),
                                 frame.size());
  if (ZSTD_isError(n) || n != size) {
    return absl::InvalidArgumentError(
        absl::StrCat("zstd frame does not decompress: ",
                     ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short content"));
  }
  return raw;
}

}  // namespace rally
