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

}  // namespace rally
