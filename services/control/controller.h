// The state of rally-control: jobs (persisted in the JobStore), registered workers, and the
// job lifecycle. One job is active at a time; later submissions wait PENDING in order.
//
// Lifecycle: SubmitJob -> PENDING; when no other job is active -> STARTING (every worker gets
// the assignment); once the replay, the learner, at least one actor and (when the spec names
// evaluation opponents) the evaluator report working it -> RUNNING; when an evaluation round meets
// the spec's target -> SUCCEEDED; when a stop limit (stop.max_wall_seconds, stop.max_learner_steps)
// is reached first -> FAILED (or SUCCEEDED if the spec sets no target); StopJob -> CANCELLED. Ended
// jobs stay in the store.
//
// Thread safety: all public methods may be called concurrently (one internal lock).
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/config/job_config.h"
#include "common/metrics/metrics.h"
#include "rally/v1/control.pb.h"
#include "services/control/job_store.h"

namespace rally {

class Controller {
 public:
  using Clock = std::chrono::steady_clock;

  Controller(std::unique_ptr<JobStore> store, prometheus::Registry& metrics);
  // Loads the stored jobs; jobs that were active when control stopped are marked FAILED.
  absl::Status Recover();

  absl::StatusOr<v1::Job> Submit(const std::string& spec_yaml, const std::string& source_name);
  absl::StatusOr<v1::Job> Get(const std::string& id);
  std::vector<v1::Job> List();
  absl::StatusOr<v1::Job> Stop(const std::string& id, const std::string& reason);

  v1::RegisterResponse Register(const v1::RegisterRequest& req);
  v1::HeartbeatResponse Heartbeat(const v1::HeartbeatRequest& req);

  // Applies time-based transitions (stop limits, lost workers); called periodically.
  void Tick();

  static constexpr int64_t kHeartbeatIntervalMs = 500;
  static constexpr auto kWorkerTimeout = std::chrono::seconds(10);

 private:
  struct Worker {
    v1::RegisterRequest registration;
    int index = 0;  // among the workers of its role, in registration order
    Clock::time_point last_seen;
    v1::WorkerReport report;
  };
  struct ActiveJob {
    std::string id;
    JobConfig config;
    Clock::time_point started;       // when it became STARTING
    Clock::time_point submitted;     // steady-clock image of its submission
    Clock::time_point last_rate_at;  // episodes/s bookkeeping
    int64_t last_rate_episodes = 0;
    Clock::time_point last_persist;
  };

  void MaybeStartNextLocked();
  void EndActiveLocked(v1::JobState state, const std::string& reason);
  void UpdateProgressLocked();
  // Folds the workers' latest reports for `job` into its progress; true when the replay, a
  // learner, an actor and (if the spec evaluates) the evaluator all report working it.
  bool AggregateReportsLocked(v1::Job& job);
  void CheckTargetLocked(const std::vector<v1::EvalResult>& round);
  // Keeps the latest round per opponent in the job's progress.
  void MergeEvalsLocked(v1::Job& job, const std::vector<v1::EvalResult>& round);
  void CheckLimitsLocked();
  void PersistLocked(const v1::Job& job);
  void SetStateLocked(v1::Job& job, v1::JobState state, const std::string& reason);
  v1::Assignment AssignmentLocked(const Worker& worker) const;
  std::string NewJobIdLocked();

  std::mutex mu_;
  std::unique_ptr<JobStore> store_;
  std::map<std::string, v1::Job> jobs_;
  std::vector<std::string> order_;  // job ids in submission order
  std::optional<ActiveJob> active_;
  std::map<std::string, Worker> workers_;
  std::map<int, int> next_index_;  // per role
  int64_t next_worker_ = 1;
  int64_t next_job_ = 1;

  prometheus::Gauge& workers_gauge_;
  prometheus::Counter& jobs_submitted_;
  prometheus::Gauge& learner_steps_gauge_;
  prometheus::Gauge& episodes_gauge_;
  prometheus::Gauge& jobs_active_gauge_;
};

}  // namespace rally
