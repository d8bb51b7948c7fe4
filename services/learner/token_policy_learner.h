// The PolicyLearner (policy_learner.h) of language-model policies (policy.kind transformer): a
// Transformer (common/lm/transformer.h) trained at token level on text-game turns with
// role-conditioned advantages (SPIRAL) and the loss of common/rl/token_losses.h (REINFORCE with
// truncated importance weights, or PPO, per generated token; entropy over the vocabulary; exact
// KL to a frozen reference when learner.kl_coef > 0).
//
// Batches are packed by tokens: whole episodes, in the order the replay's streams give them
// (shards in turn), until the next would pass learner.batch_tokens (a batch holds at least one
// episode); the episode that did not fit starts the next batch. Streams are read on the training
// thread, each response asking the shard for one more.
//
// Under learner.algorithm vtrace the learner keeps a value head beside the model: a linear map
// (d_model -> 1, starting at zero) of the final hidden state (after the final RMSNorm) at each
// turn's last prompt token, V(x) of the turn's state (token_losses.h). It is the learner's own:
// its parameters are stepped with the model's, but it is not published to actors, not in
// `rally export-hf`'s output, and not a tensor of the Transformer.
//
// learner.magnet uniform with a magnet coefficient: every row's legal answers (the actor records
// them in Turn.legal_actions as the tokens of the legal moves' canonical answers, where each is
// one token) feed the magnet of TokenLoss.
//
// Weights are published as safetensors of Transformer::ExportWeights() (F32, Hugging Face names)
// with metadata policy_version and learner_step, as TurnPolicyLearner's are. Checkpoints follow
// the learner's layout (checkpoint.h) with common/lm/lm_checkpoint.h's additions: the model's
// shape and the tokenizer (copied in when it is a file), so that `rally export-hf` and the
// evaluator rebuild the model; the value head, when there is one, in value_head.safetensors
// ("value_head.weight", "value_head.bias"; a checkpoint without it restores with a fresh head).
// Adam moments are stored under the parameters' names (Hugging Face names, and the value head's).
// Includes LibTorch: only the learner includes it.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config/job_config.h"
#include "common/lm/transformer.h"
#include "common/rl/rae.h"
#include "common/rl/token_losses.h"
#include "services/learner/policy_learner.h"

namespace rally {

class TokenPolicyLearner : public PolicyLearner {
 public:
  // The model of `config.policy` on `device`: LoadHfDirectory(policy.from)'s when set, else a
  // fresh one of policy.transformer seeded with the job's seed. INVALID_ARGUMENT for an unknown
  // algorithm, a magnet without a token form (ema) or whose tokenizer writes some legal answer of
  // the game as more than one token, a bad model shape, a tokenizer that does not load or has
  // more ids than the model's vocabulary; the HF loader's errors for `from`.
  static absl::StatusOr<std::unique_ptr<TokenPolicyLearner>> Create(const JobConfig& config,
                                                                    torch::Device device);
  ~TokenPolicyLearner() override;

  std::vector<torch::Tensor> Parameters() override;
  absl::StatusOr<LearnerState> Restore(const std::string& dir, const std::string& job_id,
                                       torch::optim::Adam& optimiser) override;
  // The model lives on the device it was created on: `device` must be it.
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

  // Makes `episodes` the current batch, as NextBatch does with what the streams give (baselines
  // read and updated): the way to train on episodes that come from elsewhere (tests, tools).
  absl::Status SetBatch(const std::vector<const v1::Trajectory*>& episodes);
  const TokenBatch& batch() const { return *batch_; }
  const Transformer& model() const { return *model_; }
  // The value head (vtrace), or null.
  const torch::nn::Linear& value_head() const { return value_head_; }
  const RoleBaselines& baselines() const { return baselines_; }
  // The tokenizer.json the checkpoints store ("" for the byte tokenizer).
  const std::string& tokenizer_json() const { return tokenizer_json_; }

 private:
  class Streams;
  TokenPolicyLearner(const JobConfig& config, std::unique_ptr<Transformer> model,
                     std::string tokenizer_json, TokenBatchOptions batch_options);
  // The name of each of Parameters(), in its order (ExpectedTensors without a tied head).
  std::vector<std::string> ParameterNames() const;
  // A copy of the model that takes no gradient.
  std::unique_ptr<Transformer> FrozenCopy() const;
  // Logits of `model` over the current batch. Throws c10::Error.
  torch::Tensor Logits(const Transformer& model) const;
  // The value head's file of a checkpoint, and reading it back into the head (a no-op without a
  // head or without the file); DATA_LOSS naming the file and tensor when it does not fit.
  std::string EncodeValueHead() const;
  absl::Status RestoreValueHead(const std::string& checkpoint_dir, const nlohmann::json& manifest);

  const JobConfig config_;
  std::unique_ptr<Transformer> model_;
  torch::nn::Linear value_head_{nullptr};
  const std::string tokenizer_json_;
  const TokenBatchOptions batch_options_;
  // The KL penalty's reference (null without one). Not checkpointed: a resumed job starts it
  // from the resumed policy.
  std::unique_ptr<Transformer> reference_;
  RoleBaselines baselines_;
  std::unique_ptr<Streams> streams_;
  std::optional<TokenBatch> batch_;
};

}  // namespace rally
