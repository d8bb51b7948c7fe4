// The replay's snapshot reader on an arbitrary file: the bytes as snapshot-1.pb (the checked
// format: "RALLYSN1", length, CRC-32C, a ReplaySnapshot), recovered by DurableStore::Open and
// turned into tables by ReplayJob::Create. The first input byte picks whether the checksum is
// set right (so that the fuzzer reaches the snapshot's content without forging CRCs) and
// whether the file is the legacy, unchecked snapshot.pb.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/util/crc32c.h"
#include "tests/fuzz/replay_recovery.h"

namespace {

// The checked file around `payload`, as DurableStore writes it.
std::string Checked(std::string_view payload) {
  std::string out = "RALLYSN1";
  const uint64_t length = payload.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  const uint32_t crc = rally::Crc32c(0, payload);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  out.append(payload);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static rally::fuzz::ScratchDir* scratch = [] {
    rally::fuzz::SilenceLog();
    return new rally::fuzz::ScratchDir();
  }();
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 3;
  const std::string_view rest = rally::fuzz::Bytes(data + 1, size - 1);
  const std::string& dir = scratch->Reset();
  if (mode == 0) {
    scratch->Write("snapshot-1.pb", rest);  // as it is: header, length and CRC fuzzed too
  } else if (mode == 1) {
    scratch->Write("snapshot-1.pb", Checked(rest));  // the payload alone fuzzed
  } else {
    scratch->Write("snapshot.pb", rest);  // legacy: the serialised ReplaySnapshot alone
  }
  rally::fuzz::RecoverAndSample(dir);
  return 0;
}
