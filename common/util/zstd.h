// zstd for trajectories on the wire and at rest. Levels are zstd's; the fast negative levels
// compress at GB/s, so the network and the log stay the bottleneck, not the codec.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"

namespace rally {

// Items serialised above this many bytes travel zstd-compressed between actors, replay and
// learners (smaller ones gain little and cost a frame header).
inline constexpr size_t kWireCompressAboveBytes = 16 << 10;
inline constexpr int kFastZstdLevel = -3;

// The zstd frame of `raw`; empty when compression does not make it smaller.
std::string ZstdCompress(std::string_view raw, int level = kFastZstdLevel);

// Compresses a stream of payloads from one source (a writer's items, a store's log), deciding
// cheaply whether each is worth it. A payload over 16 KiB is first probed: when its first
// 4 KiB do not shrink by a tenth (random ids, already compressed data) it is left alone at once
// instead of spending a whole compression pass on both ends to save nothing. A source that sends
// one such payload usually sends more, so after a failed probe the next 1, 2, 4, ... up to 32
// payloads go plain without a probe; a probe that succeeds ends that. A stream that does not
// compress then probes one payload in 33, and one that starts to compress goes plain for at
// most 32 payloads first.
// Thread safety: any thread (the counters are relaxed; a race costs a probe or a plain payload).
class AdaptiveCompressor {
 public:
  static constexpr int kMaxSkip = 32;

  explicit AdaptiveCompressor(int level = kFastZstdLevel) : level_(level) {}

  // The zstd frame of `raw`; empty when it stays plain.
  std::string Compress(std::string_view raw);
  // The same for a payload held in pieces (flattened only when it is compressed).
  std::string Compress(const absl::Cord& raw);
  // The same for a payload of `size` bytes made only when needed: `make` does not run when the
  // payload goes plain without a probe.
  std::string Compress(size_t size, absl::FunctionRef<std::string()> make);

  // Probes run so far.
  int64_t probes() const { return probes_.load(std::memory_order_relaxed); }

 private:
  // False when the payload of `size` bytes goes plain without a probe.
  bool MayCompress(size_t size);
  // Whether `head` (a payload's first bytes) shrinks by a tenth; remembers a failure.
  bool Probe(std::string_view head);
  // Compress() after MayCompress() said yes.
  std::string ProbeAndCompress(std::string_view raw);

  const int level_;
  std::atomic<int> skip_{0};     // payloads still to go plain without a probe
  std::atomic<int> backoff_{0};  // the skip after the next failed probe
  std::atomic<int64_t> probes_{0};
};

// The content of one zstd frame. INVALID_ARGUMENT for a malformed frame, one that does not
// state its size, or one that would expand beyond `max_bytes` (so a small request cannot make
// the receiver allocate without bound).
absl::StatusOr<std::string> ZstdDecompress(std::string_view frame, size_t max_bytes);

}  // namespace rally
