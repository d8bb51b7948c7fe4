#include "services/learner/turn_policy_learner.h"

#include "absl/strings/str_cat.h"
#include "common/models/safetensors.h"
#include "services/learner/checkpoint.h"

namespace rally {

TurnPolicyLearner::TurnPolicyLearner(const JobConfig& config, int observation_size, int num_actions)
    : config_(config.learner),
      hidden_(config.policy.hidden),
      observation_size_(observation_size),
      num_actions_(num_actions),
      net_(observation_size, config.policy.hidden, num_actions) {}

TurnPolicyLearner::~TurnPolicyLearner() = default;

std::vector<torch::Tensor> TurnPolicyLearner::Parameters() { return net_->parameters(); }

absl::StatusOr<LearnerState> TurnPolicyLearner::Restore(const std::string& dir,
                                                        const std::string& job_id,
                                                        torch::optim::Adam& optimiser) {
  absl::StatusOr<LearnerState> state = LoadLatestCheckpoint(dir, job_id, net_, optimiser);
  if (state.ok()) restored_baselines_ = state->baselines;
  return state;
}

void TurnPolicyLearner::ToDevice(const torch::Device& device) {
  device_ = device;
  net_->to(device_);
}

std::string TurnPolicyLearner::EncodeWeights(int64_t version, int64_t step) {
  net_->to(torch::kCPU);
  TensorSet set;
  set.tensors = ExportParameters(net_);
  set.metadata = {{"policy_version", absl::StrCat(version)}, {"learner_step", absl::StrCat(step)}};
  net_->to(device_);
  return EncodeSafetensors(set);
}

void TurnPolicyLearner::DescribeModel(LearnerState& state) {
  state.baselines = source_ != nullptr ? source_->baselines() : restored_baselines_;
  state.observation_size = observation_size_;
  state.hidden = hidden_;
  state.num_actions = num_actions_;
}

absl::Status TurnPolicyLearner::SaveCheckpoint(const std::string& dir, LearnerState state,
                                               torch::optim::Adam& optimiser, int keep) {
  DescribeModel(state);
  net_->to(torch::kCPU);
  absl::Status saved = rally::SaveCheckpoint(dir, state, net_, optimiser, keep);
  net_->to(device_);
  return saved;
}

PolicyNet TurnPolicyLearner::FrozenCopy() {
  PolicyNet copy(observation_size_, hidden_, num_actions_);
  copy->to(device_);
  UpdateEma(copy, net_, 0.0);
  for (torch::Tensor& p : copy->parameters()) p.set_requires_grad(false);
  return copy;
}

void TurnPolicyLearner::Begin() {
  if (config_.kl_coef > 0) reference_ = FrozenCopy();
  if (config_.magnet == "ema" && (config_.magnet_coef > 0 || config_.magnet_coef_final > 0)) {
    magnet_ = FrozenCopy();
  }
}

LossTerms TurnPolicyLearner::Loss(const LossOptions& options) {
  torch::Tensor reference_log_probs, magnet_log_probs;
  if (reference_) reference_log_probs = PolicyLogProbs(reference_, *batch_);
  if (magnet_) magnet_log_probs = PolicyLogProbs(magnet_, *batch_);
  return ComputeLoss(net_, *batch_, options, reference_log_probs, magnet_log_probs);
}

void TurnPolicyLearner::AfterUpdate() {
  if (magnet_) UpdateEma(magnet_, net_, config_.magnet_ema_decay);
}

void TurnPolicyLearner::AfterStep(int64_t step) {
  if (reference_ && config_.kl_reference_update_steps > 0 &&
      step % config_.kl_reference_update_steps == 0) {
    UpdateEma(reference_, net_, 0.0);
  }
}

void TurnPolicyLearner::OpenBatches(BatchSourceOptions options, const std::atomic<int64_t>& version,
                                    prometheus::Histogram* policy_lag) {
  options.observation_size = observation_size_;
  options.num_actions = num_actions_;
  RoleBaselines baselines(config_.baseline_decay);
  // Streams opened again (a replay restarted) go on from the baselines so far.
  baselines.set_values(source_ != nullptr ? source_->baselines() : restored_baselines_);
  source_ =
      std::make_unique<BatchSource>(std::move(options), std::move(baselines), version, policy_lag);
}

absl::StatusOr<bool> TurnPolicyLearner::NextBatch() {
  batch_.reset();
  absl::StatusOr<std::optional<TurnBatch>> next = source_->Next();
  if (!next.ok()) return next.status();
  batch_ = *std::move(next);
  return batch_.has_value();
}

BatchSummary TurnPolicyLearner::PrepareBatch() {
  for (torch::Tensor* t :
       {&batch_->observations, &batch_->legal_mask, &batch_->actions, &batch_->advantages,
        &batch_->behaviour_log_probs, &batch_->rewards, &batch_->dones}) {
    if (t->defined()) *t = t->to(device_);
  }
  return {.episodes = batch_->episodes, .mean_return = batch_->mean_return};
}

void TurnPolicyLearner::CancelBatches() {
  if (source_ != nullptr) source_->Cancel();
}

grpc::Status TurnPolicyLearner::FinishBatches() {
  return source_ != nullptr ? source_->Finish() : grpc::Status::OK;
}

}  // namespace rally
