// The learner's input pipeline: one credit-based sample stream per replay shard, read and
// decoded into TurnBatches (RAE advantages included) on a background thread, so that the next
// batch is ready when the training step ends. Batches are taken from the shards in turn. At most
// `decoded_ahead` decoded batches wait for the trainer (a BoundedQueue); while they wait, the
// reader decodes one more and then waits too, and each shard's stream holds `credits_per_shard`
// batches in flight.
// Includes LibTorch: only the learner includes it.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "common/concurrency/bounded_queue.h"
#include "common/rl/reinforce.h"
#include "rally/v1/replay.grpc.pb.h"

namespace prometheus {
class Histogram;
}

namespace rally {

struct BatchSourceOptions {
  std::vector<std::string> replay_addresses;
  std::string table;
  int batch_episodes = 0;
  int observation_size = 0;
  int num_actions = 0;
  Objective objective = Objective::kReturn;
  // Batches each shard's stream assembles ahead of training.
  int credits_per_shard = 2;
  // Decoded batches held ready for the trainer.
  int decoded_ahead = 1;
};

class BatchSource {
 public:
  // `version` is the learner's current policy version (sent to the replay with each credit, for
  // staleness); `policy_lag` (optional) observes version − the acting version of every turn.
  BatchSource(BatchSourceOptions options, RoleBaselines baselines,
              const std::atomic<int64_t>& version, prometheus::Histogram* policy_lag);
  ~BatchSource();

  // The next batch; nullopt once the streams have ended (Cancel(), or a stream closed); an error
  // for a batch that could not be decoded.
  absl::StatusOr<std::optional<TurnBatch>> Next();
  // Ends the streams; Next() then returns what is queued and then nullopt.
  void Cancel();
  // Waits for the reader to stop and returns the first stream error other than CANCELLED.
  grpc::Status Finish();
  // The advantage baselines after the batches decoded so far (for checkpoints).
  std::map<RoleBaselines::Key, double> baselines();

 private:
  struct Shard {
    std::unique_ptr<v1::ReplayService::Stub> stub;
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReaderWriter<v1::SampleRequest, v1::SampleResponse>> stream;
  };
  void ReadLoop();
  // The batch of `episodes`, its advantages against (and updating) the baselines.
  absl::StatusOr<TurnBatch> Decode(const std::vector<const v1::Trajectory*>& episodes);

  BatchSourceOptions options_;
  const std::atomic<int64_t>& version_;
  prometheus::Histogram* policy_lag_;
  std::vector<std::unique_ptr<Shard>> shards_;

  std::mutex baselines_mu_;
  RoleBaselines baselines_;  // guarded by baselines_mu_ (the reader updates, checkpoints read)
  // Decoded batches (or the error of one that could not be), oldest first; closed when the
  // streams end or on Cancel().
  BoundedQueue<absl::StatusOr<TurnBatch>> ready_;
  bool finished_ = false;
  grpc::Status finish_status_;
  std::thread reader_;
};

}  // namespace rally
