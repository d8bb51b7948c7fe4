// A worker's side of the control plane: registers with rally-control, heartbeats in the
// background with the worker's report, and holds the latest assignment. Every worker process
// (replay, learner, actor, evaluator) runs one.
//
// Control away: while heartbeats fail the worker keeps its assignment (IsActive stays true) and
// keeps working; it retries every heartbeat interval. When control answers that it does not know
// the worker (it restarted), the worker registers again with its previous id, that
// registration's lease and its job, and control re-adopts the job.
//
// Leases: every heartbeat carries the lease of the worker's registration, and GetJob carries it as
// the metadata `x-rally-lease` (control's credential for workers when its job API needs tokens).
// A registration refused because another live worker holds the slot (ALREADY_EXISTS) is retried
// until the holder is gone; a registration or heartbeat refused for its lease (PERMISSION_DENIED)
// makes the worker register anew, under a new id.
//
// Thread safety: all methods may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "rally/v1/control.grpc.pb.h"

namespace rally {

class ControlClient {
 public:
  using ReportFn = std::function<void(v1::WorkerReport*)>;

  ControlClient(const std::string& control_address, v1::RegisterRequest registration);
  ~ControlClient();

  // Starts the heartbeat thread; `report` fills each heartbeat's report (called on that thread).
  void Start(ReportFn report);
  // Sends one heartbeat now (e.g. right after an evaluation round) instead of waiting.
  void HeartbeatNow();
  // Sends a heartbeat now and waits (up to `timeout`) until control has answered it: a worker
  // calls this when it stops working a job, so that control holds its final counts.
  void FlushReport(std::chrono::milliseconds timeout = std::chrono::seconds(2));
  void Stop();

  // Blocks until an assignment whose job is STARTING or RUNNING arrives, or `timeout` passes, or
  // shutdown is requested.
  std::optional<v1::Assignment> WaitForActiveAssignment(std::chrono::milliseconds timeout);
  // True while the job `job_id` is still assigned to this worker and not ended.
  bool IsActive(const std::string& job_id) const;
  // The latest assignment received (empty job_id when none).
  v1::Assignment assignment() const;
  // The job `job_id` as control holds it now (JobService.GetJob).
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(2)) const;

 private:
  void Loop();
  bool Register();
  void Beat();
  // Handles a refusal of a registration or heartbeat: logs it (once per code until registered)
  // and, for a lease that does not match, forgets the previous registration.
  void NoteRefusalLocked(const grpc::Status& s);
  // Counts a registration that failed for another reason than a refusal, and logs every
  // kQuietRegistrations-th in a row with gRPC's error.
  void NoteUnreachableLocked(const grpc::Status& s);

  std::unique_ptr<v1::WorkerService::Stub> stub_;
  std::unique_ptr<v1::JobService::Stub> jobs_;  // on the same channel
  v1::RegisterRequest registration_;
  ReportFn report_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool beat_now_ = false;
  uint64_t beats_done_ = 0;                               // heartbeats answered by control
  std::string worker_id_;                                 // "" while not registered
  std::string previous_worker_id_;                        // the id of the last registration
  std::string lease_;                                     // the lease of the last registration
  grpc::StatusCode last_refusal_ = grpc::StatusCode::OK;  // logged since the last registration
  // Registrations that failed in a row without a refusal (control unreachable); logged every
  // kQuietRegistrations of them.
  static constexpr int kQuietRegistrations = 25;
  int64_t failed_registrations_ = 0;
  int64_t interval_ms_ = 500;
  v1::Assignment assignment_;
};

// True for SUCCEEDED, FAILED and CANCELLED.
bool IsTerminal(v1::JobState state);

}  // namespace rally
