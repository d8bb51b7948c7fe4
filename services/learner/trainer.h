// The training loop of one learner rank for one job (Trainer): samples batches of episodes from
// the replay's streams, computes the job's loss, steps Adam across the data-parallel group, and
// (rank 0) publishes every learner.publish_every_steps steps and checkpoints every
// learner.checkpoint_every_steps. What is particular to a kind of policy (its model, batches and
// loss) sits behind PolicyLearner (policy_learner.h).
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/config/job_config.h"
#include "common/metrics/metrics.h"
#include "common/net/control_client.h"
#include "common/rl/losses.h"
#include "rally/v1/control.pb.h"
#include "services/learner/policy_learner.h"
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

// Trains one job on one learner rank: the loop every kind of policy (PolicyLearner) goes through.
//
// Create() builds the job's policy and its Adam optimiser from the job's seed, resumes from the
// newest checkpoint in options.checkpoint_dir (same step and version numbering, optimiser
// moments, baselines and RNG state; rank 0 numbers versions above all those reserved before a
// restart), and, in a world of several ranks, joins the job's data-parallel group and takes rank
// 0's training state.
//
// Run() publishes the starting weights (rank 0), waits until the job is RUNNING, opens the
// sample streams and trains learner steps until the job ends, shutdown is requested,
// stop.max_learner_steps is reached or an error occurs. One learner step: take a batch, train it
// with learner.epochs_per_batch guarded optimiser updates (TrainBatch), then complete it
// (CompleteStep): metrics, a new policy version every publish_every_steps (published by rank 0),
// a comparison of the ranks' weights every kDigestCheckEverySteps, a checkpoint every
// checkpoint_every_steps. At the end: a last comparison of the ranks' weights, a checkpoint of
// the final policy, and the version that met the job's target saved as checkpoint_dir/target
// (the last two by rank 0 with a checkpoint directory).
//
// Errors of both: IsPeerLost (distributed.h) when a collective lost a peer rank: not an error of
// the job, but the end of this process's group; the caller leaves it (the learner exits, and its
// group is restarted to resume from rank 0's checkpoint).
//
// Threads: the calling thread owns the Trainer and Run() blocks it; Run() starts one watcher
// thread that ends the sample streams when the job ends or shutdown is requested. The references
// given to Create() must outlive the Trainer. Run() at most once.
class Trainer {
 public:
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(
      const v1::Assignment& assignment, const JobConfig& config, const TrainerOptions& options,
      ControlClient& control, WeightServiceImpl& weights, TrainerMetrics& metrics,
      TrainerProgress& progress);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  absl::Status Run();

 private:
  using Clock = std::chrono::steady_clock;
  // What training one batch came to.
  struct TrainedBatch {
    bool stop = false;     // some rank had no batch: every rank stops after this step
    bool applied = false;  // at least one optimiser update was applied
    LossTerms loss;        // of the latest update applied
    BatchSummary summary;  // of this rank's batch
  };
  // A weight set the weight service published (a reference to its blob, not a copy).
  struct Published {
    int64_t version;
    int64_t step;
    grpc::Slice blob;
  };

  Trainer(const v1::Assignment& assignment, const JobConfig& config, const TrainerOptions& options,
          ControlClient& control, WeightServiceImpl& weights, TrainerMetrics& metrics,
          TrainerProgress& progress, std::unique_ptr<PolicyLearner> learner, Algorithm algorithm);

  // Create()'s steps.
  absl::Status Restore();
  void ContinueVersionNumbering();
  absl::Status JoinDataParallel();
  absl::Status BroadcastTrainingState();

  // Run()'s steps.
  void WaitUntilRunning();
  absl::Status OpenBatches();
  void WatchForEnd();
  absl::Status Train();
  // One pass of the loop: whether to go on; an error ends training.
  absl::StatusOr<bool> Step();
  // The next batch. When the replay's streams end while the job goes on (a replay restarted,
  // as `rally run` does with one that was killed), opens them again, once a second, until a batch
  // comes, the job ends or the process stops: false then.
  absl::StatusOr<bool> NextBatch();
  void ApplySchedules();
  absl::StatusOr<TrainedBatch> TrainBatch(bool have_batch);
  absl::StatusOr<bool> CompleteStep(const TrainedBatch& batch, Clock::time_point step_start);
  void RecordMetrics(const TrainedBatch& batch);
  absl::Status Finish(absl::Status result);

  // What leaves the process.
  void Publish();
  void ReserveVersionsAhead();
  void KeepPublished(grpc::Slice blob);
  void WriteCheckpoint();
  void SaveTargetPolicy();
  // Every rank's weights digest, equal across ranks (a difference is a bug, not noise).
  absl::StatusOr<uint64_t> CheckIdenticalWeights();
  // The job's part of a checkpoint's state; the PolicyLearner describes its model.
  LearnerState JobState(int64_t step, int64_t version) const;

  const v1::Assignment& assignment_;
  const JobConfig& config_;
  const LearnerConfig& learner_config_;
  const TrainerOptions options_;
  ControlClient& control_;
  WeightServiceImpl& weights_;
  TrainerMetrics& metrics_;
  TrainerProgress& progress_;
  const std::string job_id_;
  const bool rank0_;
  // Rank 0 with a checkpoint directory keeps what outlives this run there: version
  // reservations, checkpoints, and the policy that met the target.
  const bool saves_;
  const torch::Device device_;

  std::unique_ptr<PolicyLearner> learner_;
  torch::optim::Adam optimiser_;
  std::unique_ptr<DataParallel> dp_;  // null: a single rank
  int world_size_ = 1;
  std::unique_ptr<GuardedOptimiser> guard_;
  LossOptions loss_options_;

  int64_t step_ = 0;
  int64_t version_ = 0;
  std::atomic<int64_t> acting_version_{0};  // version_, read by the sample streams
  // Versions are reserved ahead of publishing (checkpoint.h): the last reserved (-1: none), and
  // the version at which a failed reservation is tried again.
  int64_t reserved_ = -1;
  int64_t retry_reservation_at_ = 0;
  // The newest published weight sets, up to kRecentWeightsBytes: when the job ends because an
  // evaluation round met its target, the learner has trained on for a second or two, and the
  // version that round measured is saved from here. A weight set over the bound is not kept.
  std::deque<Published> recent_;
  size_t recent_bytes_ = 0;

  Clock::time_point wait_start_;   // when the wait for the next batch began
  std::atomic<bool> done_{false};  // training ended: the watcher stops
  std::thread watcher_;
};

}  // namespace rally
