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

// A tensor of a decoded blob whose bytes stay in the blob: valid while the blob is.
struct TensorView {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::string_view data;
};

struct TensorSetView {
  std::vector<TensorView> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
};

std::string EncodeSafetensors(const TensorSet& set);
// Parses `blob`; INVALID_ARGUMENT (saying what is wrong) for anything malformed.
absl::StatusOr<TensorSet> DecodeSafetensors(std::string_view blob);
// As DecodeSafetensors, with the same checks, without copying the tensors' bytes: for files too
// large to hold twice.
absl::StatusOr<TensorSetView> DecodeSafetensorsView(std::string_view blob);

// Half-precision numbers as their bit patterns. To float32: exact (every BF16 and F16 value,
// subnormals, infinities and NaN included, is a float32). From float32: rounded to the nearest
// representable value, ties to even; beyond the largest finite value to infinity; NaN stays NaN
// (quiet, sign kept).
float Bf16ToFloat(uint16_t bits);
uint16_t FloatToBf16(float value);
float HalfToFloat(uint16_t bits);
uint16_t FloatToHalf(float value);

// The little-endian bytes of a tensor of dtype "F32", "BF16" or "F16" as F32 bytes, and back.
// INVALID_ARGUMENT for another dtype or a byte count that is not a whole number of elements.
absl::StatusOr<std::string> ToF32Bytes(std::string_view data, const std::string& dtype);
absl::StatusOr<std::string> FromF32Bytes(std::string_view f32, const std::string& dtype);

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
