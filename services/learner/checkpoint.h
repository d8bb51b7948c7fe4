// Learner checkpoints: everything training needs to continue as if it had not stopped. The
// layout (step-<N>/ with weights, optimiser state and manifest, `latest`, versions.json) is
// common/checkpoint/checkpoint_dir.h's. The newest `keep` checkpoints are kept; older ones are
// deleted.
// Includes LibTorch: only the learner includes it.
#pragma once

#include <torch/torch.h>

#include <string>

#include "absl/status/statusor.h"
#include "common/checkpoint/checkpoint_manifest.h"
#include "common/games/game.h"
#include "common/models/policy_net.h"
#include "common/rl/rae.h"

namespace rally {

// The Adam state of parameter `p`, created (zero moments, step 0) when the optimiser has none.
torch::optim::AdamParamState& AdamState(torch::optim::Adam& optimizer, const torch::Tensor& p);

absl::Status SaveCheckpoint(const std::string& dir, const LearnerState& state, PolicyNet& net,
                            torch::optim::Adam& optimizer, int keep);

// Writes `dir`/`name`/ as a policy without training state: manifest.json (the game and model
// shape of `state`, its policy_version and learner step) and `weights` (a safetensors weight
// set as the weight service publishes it). rally export-policy and evaluate-checkpoint read it
// like a checkpoint; a resuming learner ignores it (it follows `latest`).
absl::Status SavePolicy(const std::string& dir, const std::string& name, const LearnerState& state,
                        const std::string& weights);
// The name under which a job saves the policy version that met its target.
inline constexpr char kTargetPolicy[] = "target";
// Removes `dir`/`name` when it holds a policy saved by a job other than `job_id` (or one that
// does not parse), so that it cannot pass for this job's.
void RemoveOtherJobsPolicy(const std::string& dir, const std::string& name,
                           const std::string& job_id);

// Policy versions are reserved before they are published, kVersionBlock at a time, in
// `dir`/versions.json (written to a temporary file and renamed). A learner that restarts
// continues above every version reserved before, since its previous run may have published any
// of them: no version number is published with two different weight sets (evaluation results
// and the saved target policy name versions).
inline constexpr int64_t kVersionBlock = 64;
// The last version reserved for `job_id` in `dir`; -1 when none is (or they are another job's);
// DATA_LOSS when the file does not parse.
absl::StatusOr<int64_t> ReservedVersions(const std::string& dir, const std::string& job_id);
// Records that versions up to `through` may be published for `job_id`.
absl::Status ReserveVersions(const std::string& dir, const std::string& job_id, int64_t through);
// How far beyond its checkpoint a resumed learner numbers when the reservations were lost (a
// damaged versions.json): no bound on what the run before published is known, so numbering
// skips further than that run could have gone without a checkpoint, leaving a gap rather than
// publishing a number twice.
inline constexpr int64_t kVersionsSkippedWhenReservationsAreLost = int64_t{1} << 20;
// The first version a learner resumed at `checkpoint_version` publishes, given what
// ReservedVersions() read: above every version reserved before.
int64_t FirstVersionAfterRestart(int64_t checkpoint_version,
                                 const absl::StatusOr<int64_t>& reserved);

// Loads the newest checkpoint in `dir` into `net` and `optimizer` and returns its state;
// NOT_FOUND when there is none, or when it belongs to another job than `job_id`.
absl::StatusOr<LearnerState> LoadLatestCheckpoint(const std::string& dir, const std::string& job_id,
                                                  PolicyNet& net, torch::optim::Adam& optimizer);

}  // namespace rally
