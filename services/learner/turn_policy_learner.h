// The PolicyLearner (policy_learner.h) of board and card games: a PolicyNet trained on
// TurnBatches (one row per turn, RAE advantages) decoded from the replay's sample streams, with
// the loss learner.algorithm selects (common/rl/losses.h) and its optional frozen copies: the
// KL penalty's reference policy and the EMA magnet.
// Includes LibTorch: only the learner includes it.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config/job_config.h"
#include "common/models/policy_net.h"
#include "common/rl/rae.h"
#include "common/rl/reinforce.h"
#include "services/learner/batch_source.h"
#include "services/learner/policy_learner.h"

namespace rally {

class TurnPolicyLearner : public PolicyLearner {
 public:
  // A freshly initialised PolicyNet of `config`'s policy.hidden (drawn from LibTorch's global
  // RNG) for a game of `observation_size` and `num_actions`.
  TurnPolicyLearner(const JobConfig& config, int observation_size, int num_actions);
  ~TurnPolicyLearner() override;

  std::vector<torch::Tensor> Parameters() override;
  absl::StatusOr<LearnerState> Restore(const std::string& dir, const std::string& job_id,
                                       torch::optim::Adam& optimiser) override;
  void ToDevice(const torch::Device& device) override;
  std::string EncodeWeights(int64_t version, int64_t step) override;
  void DescribeModel(LearnerState& state) override;
  absl::Status SaveCheckpoint(const std::string& dir, LearnerState state,
                              torch::optim::Adam& optimiser, int keep) override;

  void Begin() override;
  LossTerms Loss(const LossOptions& options) override;
  void AfterUpdate() override;
  void AfterStep(int64_t step) override;

  void OpenBatches(BatchSourceOptions options, const std::atomic<int64_t>& version,
                   prometheus::Histogram* policy_lag) override;
  absl::StatusOr<bool> NextBatch() override;
  BatchSummary PrepareBatch() override;
  void CancelBatches() override;
  grpc::Status FinishBatches() override;

 private:
  // A copy of the net that takes no gradient, on the training device.
  PolicyNet FrozenCopy();

  const LearnerConfig config_;
  const std::vector<int> hidden_;
  const int observation_size_;
  const int num_actions_;
  torch::Device device_ = torch::kCPU;
  PolicyNet net_;
  // The KL penalty's reference policy (the policy at the job's start, or refreshed every
  // kl_reference_update_steps) and the EMA magnet; null when the loss has no such term. Neither
  // is checkpointed: a resumed job starts both from the resumed policy.
  PolicyNet reference_{nullptr};
  PolicyNet magnet_{nullptr};
  // The baselines restored from a checkpoint: the batch source's starting point.
  std::map<RoleBaselines::Key, double> restored_baselines_;
  std::unique_ptr<BatchSource> source_;
  std::optional<TurnBatch> batch_;  // the current batch
};

}  // namespace rally
