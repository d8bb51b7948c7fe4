// The write-ahead log's reader on an arbitrary segment: ReadSegment (services/replay/
// durable_store.h) on the bytes as wal-0.log, then the replay's recovery of a directory holding
// only that segment (DurableStore::Open, ReplayJob::Create: records applied to the tables).
// The first input byte picks whether the rest is the segment as it is (headers and checksums
// fuzzed too) or a list of record payloads ([u16 length][payload], little-endian) that the
// target frames with their right CRC-32C, so that the fuzzer reaches the records' content.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/util/crc32c.h"
#include "tests/fuzz/replay_recovery.h"

namespace {

void PutLittleEndian32(uint32_t v, std::string* out) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// A segment of the records listed in `list`, as DurableStore writes one.
std::string Framed(std::string_view list) {
  std::string out = "RALLYWL2";
  while (list.size() >= 2) {
    const size_t length = static_cast<uint8_t>(list[0]) | static_cast<uint8_t>(list[1]) << 8;
    const std::string_view payload = list.substr(2, length);
    PutLittleEndian32(static_cast<uint32_t>(payload.size()), &out);
    PutLittleEndian32(rally::Crc32c(0, payload), &out);
    out.append(payload);
    list.remove_prefix(2 + payload.size());
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static rally::fuzz::ScratchDir* scratch = [] {
    rally::fuzz::SilenceLog();
    return new rally::fuzz::ScratchDir();
  }();
  if (size == 0) return 0;
  const std::string_view rest = rally::fuzz::Bytes(data + 1, size - 1);
  const std::string segment = data[0] % 2 == 0 ? std::string(rest) : Framed(rest);
  const std::string& dir = scratch->Reset();
  scratch->Write("wal-0.log", segment);
  absl::StatusOr<rally::SegmentRead> read = rally::ReadSegment(dir + "/wal-0.log");
  if (read.ok()) {
    FUZZ_CHECK(read->file_bytes == static_cast<int64_t>(segment.size()));
    FUZZ_CHECK(read->good_bytes >= 0 && read->good_bytes <= read->file_bytes);
  }
  rally::fuzz::RecoverAndSample(dir);
  return 0;
}
