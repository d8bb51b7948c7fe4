// Keeps a curriculum's opponent pool equal to the learner's snapshot pool: a thread calls the
// learner's WeightService.ListSnapshots about every `period` and, when the pooled versions
// changed, calls Curriculum::SetPool with their ids ("snapshot-<v>", oldest first). Fixed
// opponents (the spec's actors.opponents) are not in the pool: actors keep playing their shares
// of those themselves.
//
// Robustness: while the learner's address is unknown ("" from `address`) or the learner does not
// answer, the pool is left as it is; the first failure in a row is logged, then retried every
// period. Each call has a deadline of `period` (at least 500 ms).
//
// Thread safety: Start() and Stop() from one thread; PollOnce() is for tests and must not run
// concurrently with the thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "rally/v1/weights.grpc.pb.h"
#include "services/replay/curriculum.h"

namespace rally {

class SnapshotPoolPoller {
 public:
  // `address` returns the learner's WeightService address, "" while unknown.
  SnapshotPoolPoller(std::function<std::string()> address, std::shared_ptr<Curriculum> curriculum,
                     std::chrono::milliseconds period = std::chrono::seconds(1));
  ~SnapshotPoolPoller();  // Stop()

  void Start();
  void Stop();

  // One poll: OK when the pool is up to date with the learner's.
  absl::Status PollOnce();

 private:
  const std::function<std::string()> address_;
  const std::shared_ptr<Curriculum> curriculum_;
  const std::chrono::milliseconds period_;
  std::string channel_address_;
  std::unique_ptr<v1::WeightService::Stub> stub_;  // for channel_address_
  std::vector<std::string> pool_;
  bool failing_ = false;
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace rally
