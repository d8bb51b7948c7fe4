#include "services/control/controller.h"

#include <algorithm>
#include <filesystem>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/net/control_client.h"
#include "common/util/log.h"

namespace rally {
namespace {

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Whether two registrations claim the same slot: a learner's rank, or a name within a role.
bool SameSlot(const v1::RegisterRequest& a, const v1::RegisterRequest& b) {
  if (a.role() != b.role()) return false;
  if (a.role() == v1::WORKER_ROLE_LEARNER) return a.rank() == b.rank();
  return !a.name().empty() && a.name() == b.name();
}

std::string SlotName(const v1::RegisterRequest& req) {
  if (req.role() == v1::WORKER_ROLE_LEARNER) return absl::StrCat("learner rank ", req.rank());
  if (req.role() == v1::WORKER_ROLE_REPLAY) return absl::StrCat("replay shard '", req.name(), "'");
  return absl::StrCat(
      absl::AsciiStrToLower(absl::StripPrefix(v1::WorkerRole_Name(req.role()), "WORKER_ROLE_")),
      " '", req.name(), "'");
}

}  // namespace

Controller::Controller(std::unique_ptr<JobStore> store, prometheus::Registry& metrics,
                       std::vector<std::string> data_dirs)
    : store_(std::move(store)),
      data_dirs_(std::move(data_dirs)),
      workers_gauge_(AddGauge(metrics, "rally_control_workers", "Registered live workers.")),
      jobs_submitted_(
          AddCounter(metrics, "rally_control_jobs_submitted_total", "Jobs accepted by SubmitJob.")),
      learner_steps_gauge_(
          AddGauge(metrics, "rally_control_job_learner_steps", "Learner steps of the active job.")),
      episodes_gauge_(AddGauge(metrics, "rally_control_job_episodes",
                               "Episodes played by the active job's actors.")),
      jobs_active_gauge_(AddGauge(metrics, "rally_control_jobs_active",
                                  "1 while a job is starting or running, 0 when none is.")) {}

absl::Status Controller::Recover() {
  auto jobs = store_->List();
  if (!jobs.ok()) return jobs.status();
  std::lock_guard<std::mutex> lock(mu_);
  for (v1::Job& job : *jobs) {
    order_.push_back(job.id());
    jobs_[job.id()] = std::move(job);
    ++next_job_;
  }
  auto leases = store_->ListLeases();
  if (!leases.ok()) return leases.status();
  for (StoredLease& lease : *leases) stored_leases_[lease.worker_id] = std::move(lease);
  recovered_at_ = Clock::now();
  for (const std::string& id : order_) {
    v1::Job& job = jobs_[id];
    if (IsTerminal(job.state()) || job.state() == v1::JOB_STATE_PENDING) continue;
    if (!active_) {
      ReadoptLocked(job);
    } else {
      // Only one job is ever active; a second one can only come from a damaged store.
      SetStateLocked(job, v1::JOB_STATE_FAILED,
                     "control restarted and found a second active job in its store");
      PersistLocked(job);
    }
  }
  MaybeStartNextLocked();
  return absl::OkStatus();
}

void Controller::ReadoptLocked(v1::Job& job) {
  auto config = ParseJobConfig(job.spec_yaml(), job.id());
  if (!config.ok()) {
    SetStateLocked(job, v1::JOB_STATE_FAILED, std::string(config.status().message()));
    PersistLocked(job);
    return;
  }
  ActiveJob a;
  a.id = job.id();
  a.config = *config;
  a.started = Clock::now();
  a.submitted = a.started - std::chrono::microseconds(NowMicros() - job.created_unix_micros());
  a.last_rate_at = a.started;
  a.last_rate_episodes = job.progress().episodes();
  a.last_persist = a.started;
  a.readopted = a.started;
  active_ = std::move(a);
  const v1::JobState was = job.state();
  SetStateLocked(job, was == v1::JOB_STATE_STARTING ? was : v1::JOB_STATE_RECOVERING,
                 absl::StrCat("control restarted while the job was ",
                              absl::StripPrefix(v1::JobState_Name(was), "JOB_STATE_"),
                              " (last recorded ", (NowMicros() - job.updated_unix_micros()) / 1000,
                              " ms before); waiting for its workers to report again"));
  PersistLocked(job);
}

std::string Controller::NewJobIdLocked() {
  static std::mt19937_64 rng(std::random_device{}());
  return absl::StrFormat("job-%04d-%06x", next_job_++, rng() & 0xffffff);
}

absl::Status Controller::CheckSize(const char* field, size_t bytes, size_t limit) {
  if (bytes <= limit) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": ", bytes, " bytes, above the limit of ", limit, " bytes"));
}

absl::StatusOr<v1::Job> Controller::Submit(const std::string& spec_yaml,
                                           const std::string& source_name,
                                           const std::string& request_id) {
  if (auto s = CheckSize("spec_yaml", spec_yaml.size(), kMaxSpecBytes); !s.ok()) return s;
  if (auto s = CheckSize("request_id", request_id.size(), kMaxRequestIdBytes); !s.ok()) return s;
  if (!request_id.empty()) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, job] : jobs_) {
      if (job.request_id() == request_id) return job;
    }
  }
  auto config = ParseJobConfig(spec_yaml, source_name.empty() ? "job spec" : source_name);
  if (!config.ok()) return config.status();
  if (auto s = CheckSize("name", config->name.size(), kMaxNameBytes); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  if (!request_id.empty()) {
    // A concurrent call with the same request id may have won while the spec was parsed.
    for (const auto& [id, job] : jobs_) {
      if (job.request_id() == request_id) return job;
    }
  }
  v1::Job job;
  job.set_id(NewJobIdLocked());
  job.set_name(config->name);
  job.set_spec_yaml(spec_yaml);
  job.set_request_id(request_id);
  job.set_created_unix_micros(NowMicros());
  SetStateLocked(job, v1::JOB_STATE_PENDING, "waiting for the cluster");
  // Stored before the id is returned: an acknowledged job survives a crash of control.
  if (auto s = store_->Put(job); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("the job could not be stored: ", s.message()));
  }
  jobs_[job.id()] = job;
  order_.push_back(job.id());
  jobs_submitted_.Increment();
  LogInfo("job submitted",
          {{"job_id", job.id()}, {"name", job.name()}, {"request_id", request_id}});
  MaybeStartNextLocked();
  return jobs_[job.id()];
}

absl::StatusOr<v1::Job> Controller::Get(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job '", id, "'"));
  return it->second;
}

absl::StatusOr<v1::ListJobsResponse> Controller::List(v1::JobState state, int page_size,
                                                      const std::string& page_token) {
  if (page_size < 0 || page_size > kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: ", page_size, ", outside [0, ", kMaxPageSize, "]"));
  }
  if (page_size == 0) page_size = kDefaultPageSize;
  // The token is the position in submission order of the first job of the page.
  size_t start = 0;
  if (!page_token.empty() && !absl::SimpleAtoi(page_token, &start)) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_token: '", page_token, "' is not a token ListJobs returned"));
  }
  std::lock_guard<std::mutex> lock(mu_);
  v1::ListJobsResponse resp;
  size_t i = start;
  for (; i < order_.size() && resp.jobs_size() < page_size; ++i) {
    const v1::Job& job = jobs_[order_[i]];
    if (state == v1::JOB_STATE_UNSPECIFIED || job.state() == state) *resp.add_jobs() = job;
  }
  if (i < order_.size()) resp.set_next_page_token(absl::StrCat(i));
  return resp;
}

absl::StatusOr<v1::Job> Controller::Stop(const std::string& id, const std::string& reason) {
  if (auto s = CheckSize("reason", reason.size(), kMaxReasonBytes); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job '", id, "'"));
  std::string why = reason.empty() ? "stopped by request" : reason;
  if (active_ && active_->id == id) {
    EndActiveLocked(v1::JOB_STATE_CANCELLED, why);
  } else if (it->second.state() == v1::JOB_STATE_PENDING) {
    SetStateLocked(it->second, v1::JOB_STATE_CANCELLED, why);
    PersistLocked(it->second);
  }
  return it->second;
}

absl::StatusOr<v1::Job> Controller::Resume(const std::string& id, const std::string& reason) {
  if (auto s = CheckSize("reason", reason.size(), kMaxReasonBytes); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job '", id, "'"));
  v1::Job& job = it->second;
  if (job.state() != v1::JOB_STATE_CANCELLED && job.state() != v1::JOB_STATE_FAILED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", id, " is ", absl::StripPrefix(v1::JobState_Name(job.state()), "JOB_STATE_"),
        "; only a CANCELLED or FAILED job can be resumed"));
  }
  job.mutable_progress()->set_target_met(false);
  SetStateLocked(job, v1::JOB_STATE_PENDING, reason.empty() ? "resumed by request" : reason);
  PersistLocked(job);
  MaybeStartNextLocked();
  return job;
}

absl::StatusOr<std::vector<std::string>> Controller::Delete(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job '", id, "'"));
  if (!IsTerminal(it->second.state())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", id, " is ", absl::StripPrefix(v1::JobState_Name(it->second.state()), "JOB_STATE_"),
        "; only an ended job (SUCCEEDED, FAILED or CANCELLED) can be deleted: stop it first"));
  }
  std::vector<std::string> removed;
  for (const std::string& dir : data_dirs_) {
    const std::filesystem::path path = std::filesystem::path(dir) / "jobs" / id;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) continue;
    std::filesystem::remove_all(path, ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("cannot remove ", path.string(), ": ", ec.message(), "; the job is kept"));
    }
    removed.push_back(path.string());
  }
  if (auto s = store_->Delete(id); !s.ok()) return s;
  jobs_.erase(it);
  order_.erase(std::find(order_.begin(), order_.end(), id));
  ++changes_;
  changed_.notify_all();
  LogInfo("job deleted", {{"job_id", id}, {"removed", absl::StrJoin(removed, ",")}});
  return removed;
}

uint64_t Controller::changes() {
  std::lock_guard<std::mutex> lock(mu_);
  return changes_;
}

uint64_t Controller::WaitForChange(uint64_t seen, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait_for(lock, timeout, [&] { return changes_ > seen; });
  return changes_;
}

void Controller::SetStateLocked(v1::Job& job, v1::JobState state, const std::string& reason) {
  job.set_state(state);
  job.set_reason(reason);
  job.set_updated_unix_micros(NowMicros());
  v1::JobTransition* t = job.add_history();
  t->set_state(state);
  t->set_reason(reason);
  t->set_unix_micros(job.updated_unix_micros());
  if (job.history_size() > kMaxHistory) {
    // Keeps the first transition (the submission) and the newest ones.
    job.mutable_history()->DeleteSubrange(1, job.history_size() - kMaxHistory);
  }
  ++changes_;
  changed_.notify_all();
  LogInfo("job state",
          {{"job_id", job.id()}, {"state", v1::JobState_Name(state)}, {"reason", reason}});
}

void Controller::PersistLocked(const v1::Job& job) {
  if (auto s = store_->Put(job); !s.ok()) {
    LogError("cannot persist job", {{"job_id", job.id()}, {"error", s.ToString()}});
  }
}

void Controller::MaybeStartNextLocked() {
  if (active_) return;
  for (const std::string& id : order_) {
    v1::Job& job = jobs_[id];
    if (job.state() != v1::JOB_STATE_PENDING) continue;
    // A resumed job starts once every worker has let go of its previous run (reports no longer
    // name it): a worker still finishing that run would otherwise take the new one for it.
    if (ReportedByAnyWorkerLocked(id)) return;
    auto config = ParseJobConfig(job.spec_yaml(), job.id());
    if (!config.ok()) {
      SetStateLocked(job, v1::JOB_STATE_FAILED, std::string(config.status().message()));
      PersistLocked(job);
      continue;
    }
    ActiveJob a;
    a.id = id;
    a.config = *config;
    a.started = Clock::now();
    // A resumed job's wall clock goes on from where it ended; a new one's counts from submission.
    const double ran = job.progress().wall_seconds();
    a.submitted =
        ran > 0
            ? a.started -
                  std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(ran))
            : a.started - std::chrono::microseconds(NowMicros() - job.created_unix_micros());
    a.last_rate_at = a.started;
    a.last_rate_episodes = job.progress().episodes();
    a.last_persist = a.started;
    active_ = std::move(a);
    SetStateLocked(job, v1::JOB_STATE_STARTING, "waiting for replay, learner and actors");
    PersistLocked(job);
    return;
  }
}

bool Controller::ReportedByAnyWorkerLocked(const std::string& job_id) const {
  return std::any_of(workers_.begin(), workers_.end(),
                     [&](const auto& w) { return w.second.report.job_id() == job_id; });
}

void Controller::EndActiveLocked(v1::JobState state, const std::string& reason) {
  if (!active_) return;
  v1::Job& job = jobs_[active_->id];
  UpdateProgressLocked();
  SetStateLocked(job, state, reason);
  PersistLocked(job);
  active_.reset();
  MaybeStartNextLocked();
}

absl::StatusOr<v1::RegisterResponse> Controller::Register(const v1::RegisterRequest& req,
                                                          const std::string& component) {
  auto lease = NewLease();
  if (!lease.ok()) return lease.status();
  std::lock_guard<std::mutex> lock(mu_);
  auto proven = ProvesPreviousLocked(req, component);
  if (!proven.ok()) return proven.status();
  const std::string self = *proven ? req.previous_worker_id() : "";
  if (auto s = CheckSlotFreeLocked(req, self); !s.ok()) return s;
  Worker w;
  w.registration = req;
  const std::optional<int> kept_index = ReplaceLocked(req, self);
  w.index = kept_index ? *kept_index : next_index_[req.role()]++;
  if (req.role() == v1::WORKER_ROLE_LEARNER) w.index = req.rank();
  w.last_seen = Clock::now();
  w.lease_digest = Sha256(*lease);
  w.component = component;
  const std::string id = self.empty() ? NewWorkerIdLocked() : self;
  stored_leases_.erase(id);
  if (auto s = store_->PutLease({id, w.lease_digest, component}); !s.ok()) {
    // The worker works on; only a restarted control could not check its next registration.
    LogError("cannot store the worker's lease", {{"worker_id", id}, {"error", s.ToString()}});
  }
  workers_[id] = w;
  workers_gauge_.Set(static_cast<double>(workers_.size()));
  LogInfo("worker registered", {{"worker_id", id},
                                {"role", v1::WorkerRole_Name(req.role())},
                                {"name", req.name()},
                                {"address", req.address()},
                                {"metrics", req.metrics_address()},
                                {"previous_worker_id", req.previous_worker_id()},
                                {"job_id", req.job_id()},
                                {"peer_component", component}});
  v1::RegisterResponse resp;
  resp.set_worker_id(id);
  resp.set_heartbeat_interval_ms(kHeartbeatIntervalMs);
  resp.set_lease(*lease);
  return resp;
}

absl::StatusOr<bool> Controller::ProvesPreviousLocked(const v1::RegisterRequest& req,
                                                      const std::string& component) const {
  const std::string& id = req.previous_worker_id();
  if (id.empty()) return false;
  const Sha256Digest* digest = nullptr;
  const std::string* bound = nullptr;
  if (auto live = workers_.find(id); live != workers_.end()) {
    digest = &live->second.lease_digest;
    bound = &live->second.component;
  } else if (auto stored = stored_leases_.find(id); stored != stored_leases_.end()) {
    digest = &stored->second.lease_digest;
    bound = &stored->second.component;
  } else {
    return false;
  }
  if (!DigestsEqual(*digest, Sha256(req.previous_lease()))) {
    return absl::PermissionDeniedError(absl::StrCat("lease does not match worker ", id));
  }
  if (!bound->empty() && *bound != component) {
    return absl::PermissionDeniedError(absl::StrCat("worker ", id, " is bound to component '",
                                                    *bound, "', not '", component, "'"));
  }
  return true;
}

absl::Status Controller::CheckSlotFreeLocked(const v1::RegisterRequest& req,
                                             const std::string& self) const {
  const Clock::time_point now = Clock::now();
  for (const auto& [id, w] : workers_) {
    if (id == self || !SameSlot(w.registration, req)) continue;
    const double silent = std::chrono::duration<double>(now - w.last_seen).count();
    if (now - w.last_seen >= kLiveHolderWindow) continue;
    return absl::AlreadyExistsError(absl::StrFormat(
        "%s is held by live worker %s (%s, last heartbeat %.1f s ago); a second one is refused "
        "until the holder has been silent for %d s",
        SlotName(req), id, w.registration.name(), silent,
        std::chrono::seconds(kLiveHolderWindow).count()));
  }
  return absl::OkStatus();
}

std::optional<int> Controller::ReplaceLocked(const v1::RegisterRequest& req,
                                             const std::string& self) {
  std::optional<int> index;
  for (auto it = workers_.begin(); it != workers_.end();) {
    const bool restarted = it->first != self && SameSlot(it->second.registration, req);
    if (it->first != self && !restarted) {
      ++it;
      continue;
    }
    // A restarted worker keeps its predecessor's index, so that actors keep their replay shard.
    index = it->second.index;
    if (restarted) {
      LogInfo("worker re-registered", {{"name", req.name()}, {"old_worker_id", it->first}});
      ForgetLeaseLocked(it->first);
      if (active_ &&
          (req.role() == v1::WORKER_ROLE_LEARNER || req.role() == v1::WORKER_ROLE_REPLAY)) {
        v1::Job& job = jobs_[active_->id];
        if (job.state() == v1::JOB_STATE_RUNNING || job.state() == v1::JOB_STATE_STARTING) {
          SetStateLocked(job, v1::JOB_STATE_RECOVERING,
                         absl::StrCat(req.name(), " restarted; resuming from its saved state"));
          PersistLocked(job);
        }
      }
    }
    it = workers_.erase(it);
  }
  return index;
}

void Controller::ForgetLeaseLocked(const std::string& worker_id) {
  stored_leases_.erase(worker_id);
  if (auto s = store_->DeleteLease(worker_id); !s.ok()) {
    LogError("cannot delete the worker's lease",
             {{"worker_id", worker_id}, {"error", s.ToString()}});
  }
}

std::string Controller::NewWorkerIdLocked() {
  std::string id;
  do {
    id = absl::StrCat("w", next_worker_++);
  } while (workers_.contains(id) || stored_leases_.contains(id));
  return id;
}

std::optional<std::string> Controller::LeaseHolder(std::string_view lease) {
  const Sha256Digest digest = Sha256(lease);
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<std::string> holder;
  for (const auto& [id, w] : workers_) {
    if (DigestsEqual(w.lease_digest, digest)) holder = id;
  }
  return holder;
}

v1::Assignment Controller::AssignmentLocked(const Worker& worker) const {
  v1::Assignment a;
  const v1::Job& job = jobs_.at(active_->id);
  a.set_job_id(job.id());
  a.set_job_state(job.state());
  a.set_spec_yaml(job.spec_yaml());
  a.set_index(worker.index);
  // Replay shards in a stable order (by worker name: replay-0, replay-1, ...), so that an
  // actor's index keeps mapping to the same shard.
  std::vector<std::pair<std::string, std::string>> shards;
  for (const auto& [id, w] : workers_) {
    if (w.registration.role() == v1::WORKER_ROLE_REPLAY) {
      shards.emplace_back(w.registration.name(), w.registration.address());
    }
    if (w.registration.role() == v1::WORKER_ROLE_LEARNER && w.registration.rank() == 0) {
      a.mutable_endpoints()->set_weights(w.registration.address());
    }
  }
  std::sort(shards.begin(), shards.end());
  for (const auto& [name, address] : shards) a.mutable_endpoints()->add_replay(address);
  return a;
}

absl::StatusOr<v1::HeartbeatResponse> Controller::Heartbeat(const v1::HeartbeatRequest& req,
                                                            const std::string& component) {
  const Sha256Digest lease = Sha256(req.lease());
  std::lock_guard<std::mutex> lock(mu_);
  v1::HeartbeatResponse resp;
  auto it = workers_.find(req.worker_id());
  if (it == workers_.end()) {
    resp.set_unknown_worker(true);
    return resp;
  }
  Worker& w = it->second;
  if (!DigestsEqual(w.lease_digest, lease)) {
    return absl::PermissionDeniedError(
        absl::StrCat("lease does not match worker ", req.worker_id()));
  }
  if (!w.component.empty() && w.component != component) {
    return absl::PermissionDeniedError(absl::StrCat("worker ", req.worker_id(),
                                                    " is bound to component '", w.component,
                                                    "', not '", component, "'"));
  }
  w.last_seen = Clock::now();
  std::vector<v1::EvalResult> round(req.report().evals().begin(), req.report().evals().end());
  w.report = req.report();
  w.report.clear_evals();
  auto reported = jobs_.find(req.report().job_id());
  if (reported != jobs_.end() && IsTerminal(reported->second.state())) {
    // A worker's final report for a job that has just ended: keep its last counts and rounds.
    AggregateReportsLocked(reported->second);
    MergeEvalsLocked(reported->second, round);
    PersistLocked(reported->second);
    ++changes_;
    changed_.notify_all();
  } else if (active_ && req.report().job_id() == active_->id) {
    active_->readopted.reset();
    if (!req.report().error().empty()) {
      EndActiveLocked(v1::JOB_STATE_FAILED,
                      absl::StrCat(w.registration.name(), ": ", req.report().error()));
    } else {
      UpdateProgressLocked();
      if (!round.empty()) CheckTargetLocked(round);
      CheckLimitsLocked();
    }
  }
  if (active_) *resp.mutable_assignment() = AssignmentLocked(w);
  return resp;
}

bool Controller::AggregateReportsLocked(v1::Job& job) {
  v1::JobProgress* p = job.mutable_progress();
  int64_t episodes = 0;
  int64_t inserted = 0;
  int64_t vmin = -1;
  int64_t vmax = -1;
  bool replay = false;
  bool learner = false;
  bool actor = false;
  bool evaluator = false;
  for (const auto& [id, w] : workers_) {
    if (w.report.job_id() != job.id()) continue;
    switch (w.registration.role()) {
      case v1::WORKER_ROLE_REPLAY:
        replay = true;
        inserted += w.report.trajectories_inserted();
        break;
      case v1::WORKER_ROLE_LEARNER:
        learner = true;
        if (w.registration.rank() == 0) {
          p->set_learner_steps(std::max(p->learner_steps(), w.report.learner_steps()));
          p->set_policy_version(std::max(p->policy_version(), w.report.policy_version()));
        }
        break;
      case v1::WORKER_ROLE_ACTOR:
        actor = true;
        episodes += w.report.episodes();
        vmin = vmin < 0 ? w.report.policy_version() : std::min(vmin, w.report.policy_version());
        vmax = std::max(vmax, w.report.policy_version());
        break;
      case v1::WORKER_ROLE_EVALUATOR:
        evaluator = true;
        break;
      default:
        break;
    }
  }
  // Counters only grow: a worker that left keeps its share.
  p->set_episodes(std::max(p->episodes(), episodes));
  p->set_trajectories_inserted(std::max(p->trajectories_inserted(), inserted));
  if (vmin >= 0) {
    p->set_actor_policy_version_min(std::max(p->actor_policy_version_min(), vmin));
    p->set_actor_policy_version_max(std::max(p->actor_policy_version_max(), vmax));
  }
  auto config = ParseJobConfig(job.spec_yaml(), job.id());
  bool needs_evaluator = !config.ok() || !config->evaluation.opponents.empty();
  return replay && learner && actor && (evaluator || !needs_evaluator);
}

void Controller::UpdateProgressLocked() {
  if (!active_) return;
  v1::Job& job = jobs_[active_->id];
  v1::JobProgress* p = job.mutable_progress();
  bool all_working = AggregateReportsLocked(job);
  auto now = Clock::now();
  p->set_wall_seconds(std::chrono::duration<double>(now - active_->submitted).count());
  double dt = std::chrono::duration<double>(now - active_->last_rate_at).count();
  if (dt >= 2.0) {
    double rate = (p->episodes() - active_->last_rate_episodes) / dt;
    p->set_episodes_per_second(rate);
    active_->last_rate_at = now;
    active_->last_rate_episodes = p->episodes();
  }
  ++changes_;
  changed_.notify_all();
  learner_steps_gauge_.Set(static_cast<double>(p->learner_steps()));
  episodes_gauge_.Set(static_cast<double>(p->episodes()));
  if ((job.state() == v1::JOB_STATE_STARTING || job.state() == v1::JOB_STATE_RECOVERING) &&
      all_working) {
    SetStateLocked(job, v1::JOB_STATE_RUNNING,
                   job.state() == v1::JOB_STATE_RECOVERING ? "training (recovered)" : "training");
    PersistLocked(job);
  }
  if (now - active_->last_persist > std::chrono::seconds(5)) {
    active_->last_persist = now;
    PersistLocked(job);
  }
}

void Controller::MergeEvalsLocked(v1::Job& job, const std::vector<v1::EvalResult>& round) {
  auto* evals = job.mutable_progress()->mutable_evals();
  for (const v1::EvalResult& r : round) {
    auto same = std::find_if(evals->begin(), evals->end(),
                             [&](const v1::EvalResult& e) { return e.opponent() == r.opponent(); });
    if (same != evals->end()) {
      *same = r;
    } else {
      *evals->Add() = r;
    }
  }
}

void Controller::CheckTargetLocked(const std::vector<v1::EvalResult>& round) {
  v1::Job& job = jobs_[active_->id];
  v1::JobProgress* p = job.mutable_progress();
  MergeEvalsLocked(job, round);
  const auto& target = active_->config.target;
  if (target.empty()) return;
  for (const auto& [opponent, t] : target) {
    auto r = std::find_if(round.begin(), round.end(),
                          [&](const v1::EvalResult& e) { return e.opponent() == opponent; });
    if (r == round.end()) return;
    if (t.max_exploitability && r->exploitability() > *t.max_exploitability) return;
    if ((t.max_losses || t.min_win_rate) && r->games() == 0) return;
    if (t.max_losses && r->losses() > *t.max_losses) return;
    if (t.min_win_rate && static_cast<double>(r->wins()) / r->games() < *t.min_win_rate) return;
  }
  p->set_target_met(true);
  p->set_target_policy_version(round.front().policy_version());
  EndActiveLocked(v1::JOB_STATE_SUCCEEDED,
                  absl::StrCat("target met at policy version ", round.front().policy_version()));
}

void Controller::CheckLimitsLocked() {
  if (!active_) return;
  const v1::Job& job = jobs_[active_->id];
  const StopConfig& stop = active_->config.stop;
  const v1::JobProgress& p = job.progress();
  std::string reason;
  if (stop.max_wall_seconds > 0 && p.wall_seconds() >= stop.max_wall_seconds) {
    reason = absl::StrFormat("reached stop.max_wall_seconds (%.0f s)", stop.max_wall_seconds);
  } else if (stop.max_learner_steps > 0 && p.learner_steps() >= stop.max_learner_steps) {
    reason = absl::StrCat("reached stop.max_learner_steps (", stop.max_learner_steps, ")");
  }
  if (reason.empty()) return;
  if (active_->config.target.empty()) {
    EndActiveLocked(v1::JOB_STATE_SUCCEEDED, reason);
  } else {
    EndActiveLocked(v1::JOB_STATE_FAILED, reason + " before the target was met");
  }
}

void Controller::Tick() {
  std::lock_guard<std::mutex> lock(mu_);
  auto now = Clock::now();
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (now - it->second.last_seen > kWorkerTimeout) {
      LogWarning("worker lost",
                 {{"worker_id", it->first}, {"name", it->second.registration.name()}});
      ForgetLeaseLocked(it->first);
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
  workers_gauge_.Set(static_cast<double>(workers_.size()));
  if (!stored_leases_.empty() && now - recovered_at_ > kReadoptTimeout) {
    // Workers that did not come back after control's restart: a later registration starts anew.
    while (!stored_leases_.empty()) ForgetLeaseLocked(stored_leases_.begin()->first);
  }
  MaybeStartNextLocked();
  jobs_active_gauge_.Set(active_ ? 1 : 0);
  if (active_ && active_->readopted && now - *active_->readopted > kReadoptTimeout) {
    EndActiveLocked(
        v1::JOB_STATE_FAILED,
        absl::StrCat("no worker reported the job within ",
                     std::chrono::seconds(kReadoptTimeout).count(), " s of control's restart"));
  }
  if (active_) {
    UpdateProgressLocked();
    CheckLimitsLocked();
  }
}

}  // namespace rally
