// The on-disk layout of learner checkpoints, owned here so that the learners that write them and
// the tools that read them (the CLI, the evaluator) agree on it. Torch-free.
//
// Layout, under a learner's --checkpoint_dir (a run's work directory keeps it in checkpoints/):
//   step-<N>/weights.safetensors    policy parameters, metadata policy_version, learner_step
//   step-<N>/optimizer.safetensors  Adam state per parameter: <name>.exp_avg, <name>.exp_avg_sq
//   step-<N>/manifest.json          job id, game and its parameters, model shape, step, policy
//                                   version, Adam step counts, RAE baselines, the CPU RNG state
//                                   (hex), and the CRC-32C of each other file ("checksums"),
//                                   which loading checks (checkpoint_manifest.h reads it)
//   latest                          the name of the newest complete checkpoint
//   versions.json                   job id and the last policy version reserved for publishing
// A transformer's checkpoint also holds config.json and, when its tokenizer is not the byte
// tokenizer, tokenizer.json (common/lm/lm_checkpoint.h). A checkpoint is written into
// step-<N>.tmp and renamed into place, then `latest` is replaced (also by rename), so a crash at
// any moment leaves the previous checkpoint intact.
#pragma once

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace rally {

inline constexpr char kLatestCheckpointFile[] = "latest";
inline constexpr char kCheckpointManifestFile[] = "manifest.json";
inline constexpr char kCheckpointsSubdirectory[] = "checkpoints";

// The checkpoint name `dir`/latest holds, without trailing whitespace. NOT_FOUND when there is
// no such file; DATA_LOSS when it cannot be read or is empty.
absl::StatusOr<std::string> ReadLatestCheckpointName(const std::filesystem::path& dir);

// The checkpoint directory `path` names: one checkpoint (it holds manifest.json), a checkpoint
// directory holding `latest`, or a run's work directory (its checkpoints/ subdirectory's newest).
// NOT_FOUND, saying what was expected, otherwise.
absl::StatusOr<std::string> ResolveCheckpoint(const std::string& path);

// The manifest.json of the checkpoint directory `dir`, parsed: NOT_FOUND when it is missing,
// DATA_LOSS naming the file when it cannot be read or is not a JSON object. Never throws.
absl::StatusOr<nlohmann::json> ReadCheckpointManifestJson(const std::filesystem::path& dir);

}  // namespace rally
