#include "common/util/zstd.h"

#include <zstd.h>

#include <algorithm>
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

}  // namespace

std::string ZstdCompress(std::string_view raw, int level) {
  std::string out(ZSTD_compressBound(raw.size()), '\0');
  size_t n = ZSTD_compressCCtx(ThreadCompressionContext(), out.data(), out.size(), raw.data(),
                               raw.size(), level);
  if (ZSTD_isError(n) || n >= raw.size()) return "";
  out.resize(n);
  return out;
}

bool AdaptiveCompressor::MayCompress(size_t size) {
  if (size <= 4 * kProbeBytes) return true;  // small enough to compress without a probe
  int skip = skip_.load(std::memory_order_relaxed);
  if (skip == 0) return true;
  skip_.store(skip - 1, std::memory_order_relaxed);
  return false;
}

bool AdaptiveCompressor::Probe(std::string_view head) {
  probes_.fetch_add(1, std::memory_order_relaxed);
  std::string probe = ZstdCompress(head, level_);
  if (!probe.empty() && probe.size() <= kProbeBytes * 9 / 10) {
    backoff_.store(0, std::memory_order_relaxed);
    return true;
  }
  const int backoff = std::min(kMaxSkip, std::max(1, 2 * backoff_.load(std::memory_order_relaxed)));
  backoff_.store(backoff, std::memory_order_relaxed);
  skip_.store(backoff, std::memory_order_relaxed);
  return false;
}

std::string AdaptiveCompressor::ProbeAndCompress(std::string_view raw) {
  if (raw.size() > 4 * kProbeBytes && !Probe(raw.substr(0, kProbeBytes))) return "";
  return ZstdCompress(raw, level_);
}

std::string AdaptiveCompressor::Compress(std::string_view raw) {
  return MayCompress(raw.size()) ? ProbeAndCompress(raw) : "";
}

std::string AdaptiveCompressor::Compress(size_t size, absl::FunctionRef<std::string()> make) {
  return MayCompress(size) ? ProbeAndCompress(make()) : "";
}

std::string AdaptiveCompressor::Compress(const absl::Cord& raw) {
  if (absl::optional<absl::string_view> flat = raw.TryFlat()) {
    return Compress(std::string_view(flat->data(), flat->size()));
  }
  if (!MayCompress(raw.size())) return "";
  if (raw.size() > 4 * kProbeBytes && !Probe(std::string(raw.Subcord(0, kProbeBytes)))) return "";
  return ZstdCompress(std::string(raw), level_);
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
