// zstd for trajectories on the wire and at rest. Levels are zstd's; the fast negative levels
// compress at GB/s, so the network and the log stay the bottleneck, not the codec.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/cord.h"

namespace rally {

// Items serialised above this many bytes travel zstd-compressed between actors, replay and
// learners (smaller ones gain little and cost a frame header).
inline constexpr size_t kWireCompressAboveBytes = 16 << 10;
inline constexpr int kFastZstdLevel = -3;

// The zstd frame of `raw`; empty when compression does not make it smaller.
std::string ZstdCompress(std::string_view raw, int level = kFastZstdLevel);
// The same for payloads on the wire, after a cheap probe: when the first 4 KiB do not shrink by
// a tenth, the payload (random ids, already compressed data) is left alone at once instead of
// spending a whole compression pass on both ends to save nothing.
std::string ZstdCompressIfWorthIt(std::string_view raw, int level = kFastZstdLevel);
// The same for a payload held in pieces (one copy to flatten it, and only when it is compressed).
std::string ZstdCompressIfWorthIt(const absl::Cord& raw, int level = kFastZstdLevel);
// The content of one zstd frame. INVALID_ARGUMENT for a malformed frame, one that does not
// state its size, or one that would expand beyond `max_bytes` (so a small request cannot make
// the receiver allocate without bound).
absl::StatusOr<std::string> ZstdDecompress(std::string_view frame, size_t max_bytes);

}  // namespace rally
