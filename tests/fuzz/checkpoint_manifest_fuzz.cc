// ParseCheckpointManifest (common/checkpoint/checkpoint_manifest.h), the torch-free part of
// loading a learner checkpoint, on arbitrary manifest.json bytes; then the checksum check that
// loading runs against the manifest (VerifyFileChecksum, common/models/safetensors.h).
#include <cstddef>
#include <cstdint>

#include "common/checkpoint/checkpoint_manifest.h"
#include "common/models/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto manifest = rally::ParseCheckpointManifest(rally::fuzz::Bytes(data, size), "job-1",
                                                 "step-1/manifest.json");
  if (!manifest.ok()) {
    FUZZ_CHECK(absl::IsDataLoss(manifest.status()) || absl::IsNotFound(manifest.status()));
    return 0;
  }
  FUZZ_CHECK(manifest->state.job_id == "job-1");
  for (const char* file : {"weights.safetensors", "optimizer.safetensors"}) {
    absl::Status s = rally::VerifyFileChecksum(manifest->document, file, "bytes", file);
    FUZZ_CHECK(s.ok() || absl::IsDataLoss(s));
  }
  return 0;
}
