// DecodeSafetensors (common/models/safetensors.h) on arbitrary blobs: a blob that decodes
// encodes into one that decodes to the same tensors and metadata.
#include <cstddef>
#include <cstdint>

#include "common/models/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

bool Same(const rally::TensorSet& a, const rally::TensorSet& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const rally::NamedTensor& x = a.tensors[i];
    const rally::NamedTensor& y = b.tensors[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.data != y.data) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::StatusOr<rally::TensorSet> set = rally::DecodeSafetensors(rally::fuzz::Bytes(data, size));
  if (!set.ok()) return 0;
  absl::StatusOr<rally::TensorSet> again = rally::DecodeSafetensors(rally::EncodeSafetensors(*set));
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(Same(*set, *again));
  return 0;
}
