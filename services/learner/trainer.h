// The training loop of one learner rank for one job: samples batches of episodes from the
// replay's stream, computes the job's loss, steps Adam, and (rank 0) publishes every
// learner.publish_every_steps steps and checkpoints every learner.checkpoint_every_steps.
// Runs on the calling thread until the job ends, shutdown is requested, or an error occurs.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config/job_config.h"
#include "common/metrics/metrics.h"
#include "common/net/control_client.h"
#include "rally/v1/control.pb.h"
#include "services/learner/weight_service.h"

namespace rally {

struct TrainerProgress {
  std::atomic<int64_t> steps{0};
  std::atomic<int64_t> version{0};
};

struct TrainerMetrics {
  explicit TrainerMetrics(prometheus::Registry& registry);
  prometheus::Counter& steps_total;
  prometheus::Counter& episodes_total;
  prometheus::Gauge& loss;
  prometheus::Gauge& entropy;
  prometheus::Gauge& importance_weight;
  prometheus::Gauge& value_loss;
  prometheus::Gauge& kl;
  prometheus::Gauge& magnet_kl;
  prometheus::Gauge& mean_return;
  prometheus::Histogram& policy_lag;
  prometheus::Histogram& step_seconds;
  prometheus::Histogram& batch_wait_seconds;
  // rally_learner_batches_skipped_total{reason}: batches never applied, by why.
  prometheus::Counter& skipped_non_finite_loss;      // reason="non_finite_loss"
  prometheus::Counter& skipped_non_finite_gradient;  // reason="non_finite_gradient"
  // rally_learner_weights_refused_total{destination}: weight sets kept in the process because a
  // parameter is not finite.
  prometheus::Counter& refused_publish;     // destination="publish"
  prometheus::Counter& refused_checkpoint;  // destination="checkpoint"
};

class DataParallel;
class Rendezvous;

// One optimiser update of a learner rank that never applies a number that is not finite. A
// loss or gradient that is inf or NaN (a corrupt trajectory, an overflow) would make every weight
// NaN at the next Adam step, and every policy published after it.
//
// Update() checks the loss after the forward pass, and every gradient after backward and after
// the data-parallel all-reduce, before the optimiser steps. A batch that fails a check is
// skipped: no optimiser step, gradients zeroed, counted in
// rally_learner_batches_skipped_total{reason="non_finite_loss"|"non_finite_gradient"} and logged
// (the 1st, 2nd, 4th, 8th, ... skip, with the count so far). Ranks always decide alike: a rank's
// non-finite loss travels with its gradients as a flag, and the averaged gradients are the same on
// every rank.
//
// WeightsFinite() guards what leaves the process: weights with a parameter that is not finite
// are neither published nor checkpointed (counted in rally_learner_weights_refused_total and
// logged as an error).
//
// Not thread safe: the training thread owns it. LibTorch errors are thrown as c10::Error.
class GuardedOptimiser {
 public:
  enum class Outcome {
    kApplied,  // the optimiser stepped
    kSkipped,  // a loss or gradient was not finite: nothing applied, gradients zeroed
    kStopped,  // some rank has no batch: nothing applied, every rank stops
  };
  enum class Destination { kPublish, kCheckpoint };

  // `parameters` are those `optimiser` steps. `dp` null: a single rank.
  GuardedOptimiser(std::vector<torch::Tensor> parameters, torch::optim::Optimizer& optimiser,
                   DataParallel* dp, TrainerMetrics& metrics);

  // Zeroes the gradients, backpropagates `loss` if it is finite, averages the gradients across
  // ranks, and steps the optimiser if every rank's loss and every gradient is finite. `loss` is
  // this rank's; undefined when this rank has no batch and asks every rank to stop. Errors: the
  // all-reduce failed.
  absl::StatusOr<Outcome> Update(const torch::Tensor& loss);

  // Whether every parameter is finite. If not, counts and logs the refusal to hand the weights
  // to `destination`.
  bool WeightsFinite(Destination destination);

  int64_t skipped() const { return skipped_; }

 private:
  Outcome Skip(bool non_finite_loss);

  std::vector<torch::Tensor> parameters_;
  torch::optim::Optimizer& optimiser_;
  DataParallel* dp_;
  TrainerMetrics& metrics_;
  int64_t skipped_ = 0;
  int64_t refused_ = 0;
};

// Whether every element of every defined tensor is finite (one device synchronisation).
bool AllFinite(const std::vector<torch::Tensor>& tensors);

struct TrainerOptions {
  std::string checkpoint_dir;  // empty: no checkpoints (rank 0 writes them)
  int rank = 0;
  // The learner ranks' rendezvous; null or a world of one: no data parallelism.
  Rendezvous* rendezvous = nullptr;
};

// Trains `assignment`'s job until it ends. Returns IsPeerLost (distributed.h) when a collective
// lost a peer rank: not an error of the job, but the end of this process's group; the caller
// leaves it (the learner exits, and its group is restarted to resume from rank 0's checkpoint).
absl::Status RunTrainer(const v1::Assignment& assignment, const JobConfig& config,
                        const TrainerOptions& options, ControlClient& control,
                        WeightServiceImpl& weights, TrainerMetrics& metrics,
                        TrainerProgress& progress);

}  // namespace rally
