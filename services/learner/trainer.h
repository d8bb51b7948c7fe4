// The training loop of one learner rank for one job: samples batches of episodes from the
// replay's stream, computes the job's loss, steps Adam, and (rank 0) publishes every
// learner.publish_every_steps steps and checkpoints every learner.checkpoint_every_steps.
// Runs on the calling thread until the job ends, shutdown is requested, or an error occurs.
#pragma once

#include <atomic>
#include <string>

#include "absl/status/status.h"
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
};

class Rendezvous;

struct TrainerOptions {
  std::string checkpoint_dir;  // empty: no checkpoints (rank 0 writes them)
  int rank = 0;
  // The learner ranks' rendezvous; null or a world of one: no data parallelism.
  Rendezvous* rendezvous = nullptr;
};

absl::Status RunTrainer(const v1::Assignment& assignment, const JobConfig& config,
                        const TrainerOptions& options, ControlClient& control,
                        WeightServiceImpl& weights, TrainerMetrics& metrics,
                        TrainerProgress& progress);

}  // namespace rally
