// The state of rally-control: jobs (persisted in the JobStore), registered workers, and the
// job lifecycle. One job is active at a time; later submissions wait PENDING in order.
//
// Lifecycle: SubmitJob -> PENDING; when no other job is active -> STARTING (every worker gets
// the assignment); once the replay, the learner, at least one actor and (when the spec names
// evaluation opponents) the evaluator report working it -> RUNNING; when an evaluation round meets
// the spec's target -> SUCCEEDED; when a stop limit (stop.max_wall_seconds, stop.max_learner_steps)
// is reached first -> FAILED (or SUCCEEDED if the spec sets no target); StopJob -> CANCELLED. Ended
// jobs stay in the store until DeleteJob. ResumeJob puts a CANCELLED or FAILED job back to
// PENDING under its own id; it starts again once no worker reports its previous run. Every
// transition is appended to the job's history with its reason.
//
// Durability: a job is in the store before Submit returns it, and after every transition. When
// control restarts (even after SIGKILL), Recover loads every job; a job that was active is
// re-adopted (RECOVERING, "control restarted ...") and goes back to RUNNING once its workers,
// which keep working while control is away, register and report it again. If none reports it
// within kReadoptTimeout it fails.
//
// Worker identity: Register hands each worker a lease (128 random bits) and keeps its SHA-256, in
// memory and in the store. A heartbeat must carry its worker's lease, and a registration that
// names a previous_worker_id must carry that worker's lease, or they are refused
// (PERMISSION_DENIED) and change nothing; so a restarted control still knows the leases of the
// workers that register again. With mutual TLS a lease is also bound to the peer certificate's
// component it was handed to. A worker's slot — a learner's rank, or a worker name (e.g.
// replay-0, actor-1) within its role — is held by one worker: another registration claiming it
// while the holder has heartbeated within kLiveHolderWindow is refused (ALREADY_EXISTS); a holder
// silent that long (e.g. killed and being restarted) is replaced.
//
// Thread safety: all public methods may be called concurrently (one internal lock).
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
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
  // `data_dirs`: directories whose jobs/<job_id> holds a job's data (removed by Delete).
  Controller(std::unique_ptr<JobStore> store, prometheus::Registry& metrics,
             std::vector<std::string> data_dirs);
  // Loads the stored jobs; the job that was active when control stopped is re-adopted.
  absl::Status Recover();

  // Validates and stores a job. With a non-empty `request_id` already used, returns the job that
  // request created instead. INVALID_ARGUMENT for a bad spec or a size above the limits below.
  absl::StatusOr<v1::Job> Submit(const std::string& spec_yaml, const std::string& source_name,
                                 const std::string& request_id = "");
  absl::StatusOr<v1::Job> Get(const std::string& id);
  // Jobs oldest first; `state` UNSPECIFIED for all; `page_token` "" or a previous next_page_token.
  absl::StatusOr<v1::ListJobsResponse> List(v1::JobState state, int page_size,
                                            const std::string& page_token);
  absl::StatusOr<v1::Job> Stop(const std::string& id, const std::string& reason);
  // FAILED_PRECONDITION unless the job is CANCELLED or FAILED.
  absl::StatusOr<v1::Job> Resume(const std::string& id, const std::string& reason);
  // FAILED_PRECONDITION unless the job has ended; the data directories removed.
  absl::StatusOr<std::vector<std::string>> Delete(const std::string& id);

  // A counter that grows with every change to any job (transition or progress).
  uint64_t changes();
  // Blocks until changes() exceeds `seen` or `timeout` passes; returns changes().
  uint64_t WaitForChange(uint64_t seen, std::chrono::milliseconds timeout);

  // `component`: the caller's peer certificate component ("" without mutual TLS).
  // PERMISSION_DENIED for a previous_worker_id without its lease, ALREADY_EXISTS for a slot held
  // by a live worker, UNAVAILABLE when no lease can be drawn.
  absl::StatusOr<v1::RegisterResponse> Register(const v1::RegisterRequest& req,
                                                const std::string& component = "");
  // PERMISSION_DENIED ("lease does not match worker w1") when the lease or the component is not
  // the worker's; the response's unknown_worker when control does not know the worker.
  absl::StatusOr<v1::HeartbeatResponse> Heartbeat(const v1::HeartbeatRequest& req,
                                                  const std::string& component = "");
  // The id of the registered worker holding `lease`, if any.
  std::optional<std::string> LeaseHolder(std::string_view lease);

  // Applies time-based transitions (stop limits, lost workers); called periodically.
  void Tick();

  static constexpr int64_t kHeartbeatIntervalMs = 500;
  static constexpr auto kWorkerTimeout = std::chrono::seconds(10);
  // A worker that heartbeated this recently holds its slot against other registrations.
  static constexpr auto kLiveHolderWindow = std::chrono::seconds(3);
  // How long a job re-adopted after a control restart waits for a worker to report it.
  static constexpr auto kReadoptTimeout = std::chrono::seconds(30);
  // Upper bounds of what a client may send (documented in docs/api.md).
  static constexpr size_t kMaxSpecBytes = 1 << 20;
  static constexpr size_t kMaxNameBytes = 128;
  static constexpr size_t kMaxRequestIdBytes = 128;
  static constexpr size_t kMaxReasonBytes = 1024;
  static constexpr int kMaxHistory = 1000;
  static constexpr int kDefaultPageSize = 100;
  static constexpr int kMaxPageSize = 1000;

 private:
  struct Worker {
    v1::RegisterRequest registration;
    int index = 0;  // among the workers of its role, in registration order
    Clock::time_point last_seen;
    v1::WorkerReport report;
    Sha256Digest lease_digest{};
    std::string component;  // peer certificate component it registered from ("": none)
  };
  struct ActiveJob {
    std::string id;
    JobConfig config;
    Clock::time_point started;       // when it became STARTING
    Clock::time_point submitted;     // steady-clock image of its submission
    Clock::time_point last_rate_at;  // episodes/s bookkeeping
    int64_t last_rate_episodes = 0;
    Clock::time_point last_persist;
    // Set when re-adopted after a control restart, until a worker reports the job.
    std::optional<Clock::time_point> readopted;
  };

  void MaybeStartNextLocked();
  bool ReportedByAnyWorkerLocked(const std::string& job_id) const;
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
  // Makes the stored job `id` the active one again after a control restart.
  void ReadoptLocked(v1::Job& job);
  // INVALID_ARGUMENT naming `field` when `bytes` exceeds `limit`.
  static absl::Status CheckSize(const char* field, size_t bytes, size_t limit);
  // Whether `req` proves it is previous_worker_id (true), names none or one control has no record
  // of (false), or names one whose lease or component it does not match (PERMISSION_DENIED).
  absl::StatusOr<bool> ProvesPreviousLocked(const v1::RegisterRequest& req,
                                            const std::string& component) const;
  // ALREADY_EXISTS when a live worker other than `self` holds the slot `req` claims.
  absl::Status CheckSlotFreeLocked(const v1::RegisterRequest& req, const std::string& self) const;
  // Removes `self` and the silent holders of `req`'s slot; returns the index to keep, if any.
  std::optional<int> ReplaceLocked(const v1::RegisterRequest& req, const std::string& self);
  void ForgetLeaseLocked(const std::string& worker_id);
  // A new worker id, unused by live workers and by leases awaiting re-registration.
  std::string NewWorkerIdLocked();
  v1::Assignment AssignmentLocked(const Worker& worker) const;
  std::string NewJobIdLocked();

  std::mutex mu_;
  std::condition_variable changed_;
  uint64_t changes_ = 0;  // guarded by mu_
  std::unique_ptr<JobStore> store_;
  std::vector<std::string> data_dirs_;
  std::map<std::string, v1::Job> jobs_;
  std::vector<std::string> order_;  // job ids in submission order
  std::optional<ActiveJob> active_;
  std::map<std::string, Worker> workers_;
  // Leases of workers registered before control restarted that have not registered again; kept
  // until kReadoptTimeout after Recover.
  std::map<std::string, StoredLease> stored_leases_;
  Clock::time_point recovered_at_;
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
