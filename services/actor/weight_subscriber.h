// Keeps an actor's policy current: subscribes to the learner's weight stream, assembles each
// version from its chunks and hands it to an apply function (by default: build the network and
// swap it into a LatestPolicy). Reconnects, asking for versions newer than the one held, when the
// stream breaks, until Stop() or until the learner ends the job (ABORTED).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/metrics/metrics.h"
#include "common/models/network_policy.h"
#include "rally/v1/weights.pb.h"

namespace rally {

// Reassembles weight blobs from the WeightChunks of a Subscribe or Get stream. A version's chunks
// arrive in order; a chunk at offset 0 starts a new version. Not thread safe.
class WeightAssembler {
 public:
  // Takes the data out of `chunk`. Returns true when the chunk completed its version (then
  // TakeBlob()), false when more chunks are due, DATA_LOSS when the chunk does not continue the
  // version being assembled.
  absl::StatusOr<bool> Add(v1::WeightChunk& chunk);
  // The completed blob; the assembler is then empty.
  std::string TakeBlob();

  // Of the version being (or last) assembled.
  int64_t version() const { return version_; }
  int64_t published_unix_micros() const { return published_unix_micros_; }

 private:
  std::string blob_;
  int64_t version_ = -1;
  uint64_t total_bytes_ = 0;
  int64_t published_unix_micros_ = 0;
};

class WeightSubscriber {
 public:
  // Applies a complete version; an error is logged and the version skipped.
  using ApplyFn = std::function<absl::Status(int64_t version, std::string blob)>;

  // Subscribes on `channel`; `subscriber` names this client in the learner's logs.
  WeightSubscriber(std::shared_ptr<grpc::Channel> channel, std::string subscriber, ApplyFn apply,
                   prometheus::Registry& metrics);
  // Builds each version as a network of the job's shape and sets it into `latest`.
  WeightSubscriber(const std::string& address, std::string subscriber, int observation_size,
                   std::vector<int> hidden, int num_actions, LatestPolicy& latest,
                   prometheus::Registry& metrics);
  ~WeightSubscriber();

  void Start();
  // Cancels the open stream and joins the thread. Idempotent.
  void Stop();
  // The version last applied; -1 before the first.
  int64_t version() const { return version_; }

 private:
  void Loop();

  const std::shared_ptr<grpc::Channel> channel_;
  const std::string subscriber_;
  const ApplyFn apply_;
  std::atomic<int64_t> version_{-1};
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex ctx_mu_;
  grpc::ClientContext* ctx_ = nullptr;  // the open stream's context, for Stop() to cancel

  prometheus::Gauge& version_gauge_;
  prometheus::Histogram& latency_;
};

}  // namespace rally
