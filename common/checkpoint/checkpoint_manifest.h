// The manifest of a learner checkpoint (checkpoint.h describes the directory), read without
// LibTorch: the bytes of manifest.json become the learner's state and what loading the optimiser
// and the RNG needs. Kept apart from checkpoint.cc so that the bytes read from disk can be
// fuzzed (tests/fuzz/checkpoint_manifest_fuzz.cc) in a build without LibTorch.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/games/game.h"
#include "common/rl/rae.h"
#include "nlohmann/json.hpp"

namespace rally {

struct LearnerState {
  std::string job_id;
  std::string game;
  GameParameters game_params;  // the job's, over the game's defaults
  int64_t step = 0;
  int64_t version = 0;
  std::map<RoleBaselines::Key, double> baselines;
  int observation_size = 0;
  std::vector<int> hidden;
  int num_actions = 0;
};

struct CheckpointManifest {
  nlohmann::json document;  // as parsed: its "checksums" are checked against the files
  LearnerState state;
  std::map<std::string, int64_t> adam_steps;  // by parameter name
  std::string rng_bytes;                      // the CPU generator's state; empty: none recorded
};

// Parses the manifest.json `bytes` of a checkpoint of job `job_id`; `path` names the file in
// messages. NOT_FOUND when it is another job's; DATA_LOSS when it does not parse, lacks a
// job_id string, or a field has the wrong type or is out of range. Never throws.
absl::StatusOr<CheckpointManifest> ParseCheckpointManifest(std::string_view bytes,
                                                           const std::string& job_id,
                                                           const std::string& path);

}  // namespace rally
