// The seam between the learner's training loop (Trainer, trainer.h) and one kind of policy. The
// Trainer owns what every kind shares: the optimiser, the learner step and policy version, the
// data-parallel group, publishing, checkpoint cadence and the job's lifecycle. A PolicyLearner
// owns what is particular to its kind: the model and the frozen copies its loss compares against,
// the batches it decodes from the replay's sample streams, the loss of a batch, and the bytes its
// weights and checkpoints are made of. TurnPolicyLearner (turn_policy_learner.h) is the kind that
// trains a PolicyNet on TurnBatches; a token-level policy is a second implementation, not a second
// loop.
//
// The Trainer calls, in this order: Restore, ToDevice, (data-parallel broadcast of Parameters),
// Begin, OpenBatches, then per learner step NextBatch, PrepareBatch, and for each optimiser update
// Loss and AfterUpdate, then AfterStep; EncodeWeights, DescribeModel and SaveCheckpoint between
// steps; CancelBatches and FinishBatches at the end.
//
// Thread safety: called from the training thread only, except CancelBatches, which any thread may
// call. Methods documented as throwing throw LibTorch's c10::Error; the Trainer turns it into a
// status.
// Includes LibTorch: only the learner includes it.
#pragma once

#include <grpcpp/grpcpp.h>
#include <torch/torch.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/checkpoint/checkpoint_manifest.h"
#include "common/rl/losses.h"
#include "services/learner/batch_source.h"

namespace prometheus {
class Histogram;
}

namespace rally {

// What the Trainer reports of a batch (metrics).
struct BatchSummary {
  int64_t episodes = 0;
  double mean_return = 0;  // over the learning seats' returns
};

class PolicyLearner {
 public:
  virtual ~PolicyLearner() = default;

  // --- The model.
  // The parameters the optimiser steps (the same tensors for the learner's life; on the training
  // device once ToDevice has run).
  virtual std::vector<torch::Tensor> Parameters() = 0;
  // Loads the newest checkpoint of `job_id` in `dir` into the model and `optimiser` (and the CPU
  // RNG) and returns its state; NOT_FOUND when there is none or it is another job's.
  virtual absl::StatusOr<LearnerState> Restore(const std::string& dir, const std::string& job_id,
                                               torch::optim::Adam& optimiser) = 0;
  // Moves the model to the training device; weights go to the CPU and back when they leave.
  virtual void ToDevice(const torch::Device& device) = 0;
  // The weight set the weight service publishes (safetensors, on CPU), with `version` and
  // `step` in its metadata.
  virtual std::string EncodeWeights(int64_t version, int64_t step) = 0;
  // Fills the model's shape and the advantage baselines into `state` (whose job, game, step and
  // version the Trainer sets): what a checkpoint or a saved policy's manifest records.
  virtual void DescribeModel(LearnerState& state) = 0;
  // Writes checkpoint `state` (DescribeModel is applied to it) of the model and `optimiser` into
  // `dir`, keeping the newest `keep`.
  virtual absl::Status SaveCheckpoint(const std::string& dir, LearnerState state,
                                      torch::optim::Adam& optimiser, int keep) = 0;

  // --- The objective.
  // Training starts from the current weights (restored, and broadcast from rank 0): takes the
  // frozen copies the loss compares against. Throws c10::Error.
  virtual void Begin() = 0;
  // The loss of the current batch under `options` (differentiable; LossTerms' statistics for
  // the metrics). Throws c10::Error.
  virtual LossTerms Loss(const LossOptions& options) = 0;
  // After each optimiser update that was applied. Throws c10::Error.
  virtual void AfterUpdate() = 0;
  // After learner step `step` (counted from the job's start) completed. Throws c10::Error.
  virtual void AfterStep(int64_t step) = 0;

  // --- The batches.
  // Opens the sample streams `options` name (the model's shapes are this learner's to fill);
  // called again after the streams ended (and FinishBatches), opens new ones in their place.
  // `version` is the learner's current policy version, read as batches are requested;
  // `policy_lag` (optional) observes how far behind it each turn was acted.
  virtual void OpenBatches(BatchSourceOptions options, const std::atomic<int64_t>& version,
                           prometheus::Histogram* policy_lag) = 0;
  // Takes the next batch as the current one: false once the streams have ended; an error for a
  // batch that could not be decoded. Blocks until a batch is ready.
  virtual absl::StatusOr<bool> NextBatch() = 0;
  // Moves the current batch to the training device. Throws c10::Error.
  virtual BatchSummary PrepareBatch() = 0;
  // Ends the streams: NextBatch then returns what is queued and then false. Any thread.
  virtual void CancelBatches() = 0;
  // Waits for the streams' reader to stop; the first stream error other than CANCELLED.
  virtual grpc::Status FinishBatches() = 0;
};

}  // namespace rally
