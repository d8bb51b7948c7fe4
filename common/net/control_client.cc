#include "common/net/control_client.h"

#include "absl/strings/str_cat.h"
#include "common/net/server.h"
#include "common/util/log.h"
#include "common/util/shutdown.h"

namespace rally {

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED ||
         state == v1::JOB_STATE_CANCELLED;
}

ControlClient::ControlClient(const std::string& control_address, v1::RegisterRequest registration)
    : registration_(std::move(registration)) {
  auto channel = MakeChannel(control_address);
  stub_ = v1::WorkerService::NewStub(channel);
  jobs_ = v1::JobService::NewStub(channel);
}

ControlClient::~ControlClient() { Stop(); }

void ControlClient::Start(ReportFn report) {
  report_ = std::move(report);
  thread_ = std::thread([this] { Loop(); });
}

void ControlClient::Stop() {
  stop_ = true;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ControlClient::HeartbeatNow() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    beat_now_ = true;
  }
  cv_.notify_all();
}

void ControlClient::FlushReport(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  // The heartbeat in flight now may carry an older report: wait for the one after it.
  uint64_t target = beats_done_ + 2;
  beat_now_ = true;
  cv_.notify_all();
  cv_.wait_for(lock, timeout, [&] { return beats_done_ >= target || stop_; });
}

bool ControlClient::Register() {
  v1::RegisterRequest req = registration_;
  {
    // Registering again (control restarted, or lost this worker): say who it was and which job
    // it still works, so that control re-adopts the job instead of starting over.
    std::lock_guard<std::mutex> lock(mu_);
    req.set_previous_worker_id(previous_worker_id_);
    req.set_previous_lease(lease_);
    if (!IsTerminal(assignment_.job_state())) req.set_job_id(assignment_.job_id());
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(std::chrono::seconds(2)));
  v1::RegisterResponse resp;
  grpc::Status s = stub_->Register(&ctx, req, &resp);
  std::lock_guard<std::mutex> lock(mu_);
  if (!s.ok()) {
    NoteRefusalLocked(s);
    NoteUnreachableLocked(s);
    return false;
  }
  last_refusal_ = grpc::StatusCode::OK;
  failed_registrations_ = 0;
  worker_id_ = resp.worker_id();
  previous_worker_id_ = worker_id_;
  lease_ = resp.lease();
  interval_ms_ = resp.heartbeat_interval_ms() > 0 ? resp.heartbeat_interval_ms() : 500;
  LogInfo("registered with control", {{"worker_id", worker_id_}});
  return true;
}

void ControlClient::Beat() {
  v1::HeartbeatRequest req;
  {
    std::lock_guard<std::mutex> lock(mu_);
    req.set_worker_id(worker_id_);
    req.set_lease(lease_);
  }
  if (report_) report_(req.mutable_report());
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(std::chrono::seconds(2)));
  v1::HeartbeatResponse resp;
  grpc::Status s = stub_->Heartbeat(&ctx, req, &resp);
  std::lock_guard<std::mutex> lock(mu_);
  if (s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    NoteRefusalLocked(s);
    worker_id_.clear();
    return;
  }
  // Control unreachable (e.g. restarting): keep the assignment and keep working it; the loop
  // retries every heartbeat interval.
  if (!s.ok()) return;
  ++beats_done_;
  if (resp.unknown_worker()) {
    worker_id_.clear();
    return;
  }
  if (resp.has_assignment()) {
    assignment_ = resp.assignment();
  } else {
    assignment_.Clear();
  }
  cv_.notify_all();
}

void ControlClient::NoteUnreachableLocked(const grpc::Status& s) {
  if (s.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
      s.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
    return;  // NoteRefusalLocked's
  }
  // Control down, unreachable, or refusing the connection itself (a TLS handshake without a
  // certificate it trusts fails as UNAVAILABLE): said once after kQuietRegistrations attempts,
  // then every kQuietRegistrations more, so that an operator can tell which.
  ++failed_registrations_;
  if (failed_registrations_ % kQuietRegistrations != 0) return;
  LogWarning("cannot register with control",
             {{"attempts", failed_registrations_},
              {"code", static_cast<int>(s.error_code())},
              {"error", s.error_message()},
              {"hint",
               "control down or unreachable, or its TLS handshake refused this process's "
               "certificate (--tls_cert, --tls_ca)"}});
}

void ControlClient::NoteRefusalLocked(const grpc::Status& s) {
  if (s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    // The lease no longer proves the previous registration: register as a new worker.
    previous_worker_id_.clear();
    lease_.clear();
  }
  if (s.error_code() != grpc::StatusCode::PERMISSION_DENIED &&
      s.error_code() != grpc::StatusCode::ALREADY_EXISTS) {
    return;
  }
  // Logged once per code: registration is retried every 200 ms.
  if (s.error_code() == last_refusal_) return;
  last_refusal_ = s.error_code();
  LogWarning("control refused this worker",
             {{"code", static_cast<int>(s.error_code())}, {"error", s.error_message()}});
}

void ControlClient::Loop() {
  // Runs until Stop(), not until shutdown: a stopping worker still flushes its final report.
  while (!stop_) {
    bool registered;
    {
      std::lock_guard<std::mutex> lock(mu_);
      registered = !worker_id_.empty();
    }
    if (!registered && !Register()) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stop_.load(); });
      continue;
    }
    Beat();
    std::unique_lock<std::mutex> lock(mu_);
    if (!beat_now_) {
      cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_),
                   [&] { return stop_.load() || beat_now_; });
    }
    beat_now_ = false;
  }
}

std::optional<v1::Assignment> ControlClient::WaitForActiveAssignment(
    std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  std::unique_lock<std::mutex> lock(mu_);
  while (std::chrono::steady_clock::now() < end && !ShutdownRequested()) {
    if (!assignment_.job_id().empty() && !IsTerminal(assignment_.job_state())) return assignment_;
    cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
  return std::nullopt;
}

bool ControlClient::IsActive(const std::string& job_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return assignment_.job_id() == job_id && !IsTerminal(assignment_.job_state());
}

v1::Assignment ControlClient::assignment() const {
  std::lock_guard<std::mutex> lock(mu_);
  return assignment_;
}

absl::StatusOr<v1::Job> ControlClient::GetJob(const std::string& job_id,
                                              std::chrono::milliseconds timeout) const {
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(timeout));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!lease_.empty()) ctx.AddMetadata("x-rally-lease", lease_);
  }
  v1::GetJobRequest req;
  req.set_id(job_id);
  v1::Job job;
  if (grpc::Status s = jobs_->GetJob(&ctx, req, &job); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("GetJob ", job_id, ": ", s.error_message()));
  }
  return job;
}

}  // namespace rally
