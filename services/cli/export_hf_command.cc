// `rally export-hf --checkpoint RUN --out DIR [--dtype bf16|fp16|fp32]`: a language-model
// checkpoint (a run's work directory, a checkpoints directory or one step-N directory) written
// as a Hugging Face directory (common/lm/lm_checkpoint.h, ExportLmCheckpointToHf).
#include <cstdio>
#include <string>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "common/lm/lm_checkpoint.h"
#include "services/cli/lm_commands.h"
#include "services/cli/policy_commands.h"

ABSL_DECLARE_FLAG(std::string, checkpoint);
ABSL_DECLARE_FLAG(std::string, out);
ABSL_FLAG(std::string, dtype, "fp32", "export-hf: dtype of model.safetensors: fp32, bf16 or fp16");

namespace rally {

int ExportHfCommand() {
  const std::string checkpoint = absl::GetFlag(FLAGS_checkpoint);
  const std::string out = absl::GetFlag(FLAGS_out);
  const std::string dtype = absl::GetFlag(FLAGS_dtype);
  if (checkpoint.empty() || out.empty()) {
    std::fprintf(stderr,
                 "export-hf: --checkpoint RUN and --out DIR are required "
                 "([--dtype bf16|fp16|fp32])\n");
    return 2;
  }
  if (dtype != "fp32" && dtype != "bf16" && dtype != "fp16") {
    std::fprintf(stderr, "export-hf: --dtype %s: expected fp32, bf16 or fp16\n", dtype.c_str());
    return 2;
  }
  absl::StatusOr<std::string> dir = ResolveCheckpoint(checkpoint);
  if (!dir.ok()) {
    std::fprintf(stderr, "export-hf: %s\n", std::string(dir.status().message()).c_str());
    return 1;
  }
  if (absl::Status s = ExportLmCheckpointToHf(*dir, out, dtype); !s.ok()) {
    std::fprintf(stderr, "export-hf: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("%s\n", out.c_str());
  return 0;
}

}  // namespace rally
