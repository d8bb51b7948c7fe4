// Checkpoints of language-model (transformer) policies: the learner's checkpoint layout
// (services/learner/checkpoint.h: step-<N>/ with weights.safetensors, optimizer.safetensors and
// manifest.json; `latest` naming the newest), with what rebuilding the model needs beyond it:
//   manifest.json  "policy_kind": "transformer",
//                  "transformer": the model's shape as a Hugging Face config.json
//                                 (HfConfigJson, common/lm/hf_checkpoint.h),
//                  "tokenizer": "byte", or "tokenizer.json" (a file in the checkpoint)
//   tokenizer.json a copy of the job's tokenizer file, when it is not the byte tokenizer
// weights.safetensors holds Transformer::ExportWeights() (F32, Hugging Face names) with metadata
// policy_version and learner_step, as the weight service publishes them.
//
// Torch-free: the CLI (`rally export-hf`, the lm tools) reads checkpoints through this file
// without the learner's code.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/lm/game_tokenizer.h"
#include "common/lm/model_config.h"
#include "common/models/safetensors.h"
#include "nlohmann/json.hpp"

namespace rally {

inline constexpr char kTransformerPolicyKind[] = "transformer";

// The tokenizer a job's policy names: `tokenizer` ("byte", "game" or a tokenizer.json path) when
// set, else `from`'s tokenizer.json when that directory has one, else "byte".
std::string ResolveTokenizerReference(const std::string& tokenizer, const std::string& from);

// The manifest fields above for `config`: "tokenizer" is "tokenizer.json" when the checkpoint
// stores one (`tokenizer_json` not empty: TokenizerJsonBytes), else "byte".
nlohmann::json LmManifestFields(const TransformerConfig& config, const std::string& tokenizer_json);

// Writes the directory `dir`/`name` as a checkpoint: each (file name, bytes) of `files`,
// `tokenizer_json` as tokenizer.json unless it is empty (the byte tokenizer), and manifest.json
// (`manifest` with the CRC-32C of every other file added under "checksums"). Written into
// `name`.tmp, synced and renamed into place, replacing what was there. Errors name the file.
absl::Status WriteLmCheckpointDirectory(const std::string& dir, const std::string& name,
                                        nlohmann::json manifest,
                                        std::vector<std::pair<std::string, std::string>> files,
                                        const std::string& tokenizer_json);

// A transformer checkpoint as read back.
struct LmCheckpoint {
  std::string dir;  // the step-<N> directory
  nlohmann::json manifest;
  TransformerConfig config;
  std::string tokenizer_path;  // "<dir>/tokenizer.json", or "" for the byte tokenizer
  TensorSet weights;           // F32, ExpectedTensors(config)'s names
  int64_t policy_version = 0;
  int64_t learner_step = 0;
};

// Reads the checkpoint directory `dir` (one holding manifest.json). NOT_FOUND naming the file when
// manifest.json, weights.safetensors or the tokenizer.json it names is absent;
// FAILED_PRECONDITION when it is not a transformer policy's (an MLP checkpoint); DATA_LOSS naming
// the file and the key or tensor for a damaged or incomplete one (checksums are checked, and the
// weights must be exactly ExpectedTensors of the recorded shape).
absl::StatusOr<LmCheckpoint> ReadLmCheckpoint(const std::string& dir);

// `rally export-hf`: the checkpoint in `checkpoint_dir` (ReadLmCheckpoint) written as a Hugging
// Face directory `out_dir` (WriteHfDirectory: config.json, model.safetensors in `dtype` "fp32",
// "bf16" or "fp16", and the checkpoint's tokenizer.json when it has one). Errors name the file.
absl::Status ExportLmCheckpointToHf(const std::string& checkpoint_dir, const std::string& out_dir,
                                    const std::string& dtype);

}  // namespace rally
