// The safetensors layout (8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw bytes), used for weights on the wire and for
// checkpoints, so that Python users open rally's files with standard tools.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json_fwd.hpp"

namespace rally {

struct NamedTensor {
  std::string name;
  std::string dtype = "F32";  // safetensors dtype name
  std::vector<int64_t> shape;
  std::string data;  // raw little-endian bytes
};

struct TensorSet {
  std::vector<NamedTensor> tensors;
  std::map<std::string, std::string> metadata;  // the "__metadata__" entry
};

std::string EncodeSafetensors(const TensorSet& set);
// Parses `blob`; INVALID_ARGUMENT (saying what is wrong) for anything malformed.
absl::StatusOr<TensorSet> DecodeSafetensors(std::string_view blob);

// How a manifest records the checksum of a file it lists: "crc32c:" and the eight hex digits of
// the file's CRC-32C. Safetensors has no checksum of its own, and a flipped bit in a tensor's
// data parses as well as the right one.
std::string FileChecksum(std::string_view bytes);
// A manifest lists its files' checksums as {"checksums": {"<file>": "crc32c:...", ...}}.
// OK when `bytes`, read from `path`, match what `manifest` records for the file `file`, or when
// it records nothing for it (written before checksums were recorded); DATA_LOSS naming `path`
// when they differ or the entry is not a string.
absl::Status VerifyFileChecksum(const nlohmann::json& manifest, const std::string& file,
                                std::string_view bytes, const std::string& path);

}  // namespace rally
