#include "services/control/control_service.h"

#include <google/protobuf/util/message_differencer.h>

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/net/control_client.h"
#include "common/net/server.h"
#include "common/net/tls.h"
#include "common/util/log.h"
#include "common/util/shutdown.h"
#include "services/control/job_logs.h"

namespace rally {
namespace {

using google::protobuf::util::MessageDifferencer;

template <typename T>
grpc::Status Reply(const absl::StatusOr<T>& result, T* out) {
  if (!result.ok()) return ToGrpc(result.status());
  *out = *result;
  return grpc::Status::OK;
}

// What a WatchJob stream has sent so far, and the updates that bring a client up to date.
class JobWatch {
 public:
  explicit JobWatch(grpc::ServerWriter<v1::JobUpdate>* writer) : writer_(writer) {}

  // Sends the job as it is now, without a transition.
  bool SendFirst(const v1::Job& job) {
    v1::JobUpdate update;
    *update.mutable_job() = job;
    return Send(update);
  }

  // Sends one update per transition since the previous call, one with the evaluation rounds
  // that are new, and otherwise a progress update when `progress_due`. False when the client is
  // gone.
  bool SendChanges(const v1::Job& job, bool progress_due, bool* progress_sent) {
    *progress_sent = false;
    for (int i = sent_transitions_; i < job.history_size(); ++i) {
      v1::JobUpdate update;
      *update.mutable_job() = job;
      *update.mutable_transition() = job.history(i);
      if (!Send(update)) return false;
    }
    v1::JobUpdate update;
    for (const v1::EvalResult& e : job.progress().evals()) {
      if (!Seen(e)) *update.add_evals() = e;
    }
    const bool progressed = !MessageDifferencer::Equals(job.progress(), last_.progress());
    if (update.evals_size() > 0 || (progressed && progress_due)) {
      *update.mutable_job() = job;
      *progress_sent = true;
      return Send(update);
    }
    return true;
  }

 private:
  bool Seen(const v1::EvalResult& e) const {
    for (const v1::EvalResult& old : last_.progress().evals()) {
      if (MessageDifferencer::Equals(old, e)) return true;
    }
    return false;
  }
  bool Send(const v1::JobUpdate& update) {
    last_ = update.job();
    sent_transitions_ = last_.history_size();
    return writer_->Write(update);
  }

  grpc::ServerWriter<v1::JobUpdate>* writer_;
  v1::Job last_;
  int sent_transitions_ = 0;
};

bool ValidProcessName(const std::string& name) {
  return !absl::StrContains(name, "/") && name != "." && name != "..";
}

std::optional<std::string> Metadata(const grpc::ServerContext& ctx, std::string_view key) {
  const auto& metadata = ctx.client_metadata();
  auto it = metadata.find(grpc::string_ref(key.data(), key.size()));
  if (it == metadata.end()) return std::nullopt;
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

grpc::Status JobServiceImpl::Admit(const grpc::ServerContext& ctx, std::string_view call) {
  if (!tokens_) return grpc::Status::OK;
  const CallCredentials credentials{Metadata(ctx, kAuthorizationMetadata),
                                    Metadata(ctx, kLeaseMetadata)};
  auto caller = Authorize(*tokens_, call, credentials, [this](std::string_view lease) {
    return controller_.LeaseHolder(lease);
  });
  if (!caller.ok()) {
    LogWarning("call refused", {{"call", call},
                                {"peer", ctx.peer()},
                                {"code", absl::StatusCodeToString(caller.status().code())},
                                {"error", std::string(caller.status().message())}});
    return ToGrpc(caller.status());
  }
  if (RequiredRole(call) == Role::kAdmin) {
    LogInfo("admin call", {{"call", call}, {"caller", *caller}, {"peer", ctx.peer()}});
  }
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::SubmitJob(grpc::ServerContext* ctx, const v1::SubmitJobRequest* req,
                                       v1::Job* resp) {
  if (grpc::Status s = Admit(*ctx, "SubmitJob"); !s.ok()) return s;
  return Reply(controller_.Submit(req->spec_yaml(), req->source_name(), req->request_id()), resp);
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req,
                                    v1::Job* resp) {
  if (grpc::Status s = Admit(*ctx, "GetJob"); !s.ok()) return s;
  return Reply(controller_.Get(req->id()), resp);
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* req,
                                      v1::ListJobsResponse* resp) {
  if (grpc::Status s = Admit(*ctx, "ListJobs"); !s.ok()) return s;
  return Reply(controller_.List(req->state(), req->page_size(), req->page_token()), resp);
}

grpc::Status JobServiceImpl::StopJob(grpc::ServerContext* ctx, const v1::StopJobRequest* req,
                                     v1::Job* resp) {
  if (grpc::Status s = Admit(*ctx, "StopJob"); !s.ok()) return s;
  return Reply(controller_.Stop(req->id(), req->reason()), resp);
}

grpc::Status JobServiceImpl::ResumeJob(grpc::ServerContext* ctx, const v1::ResumeJobRequest* req,
                                       v1::Job* resp) {
  if (grpc::Status s = Admit(*ctx, "ResumeJob"); !s.ok()) return s;
  return Reply(controller_.Resume(req->id(), req->reason()), resp);
}

grpc::Status JobServiceImpl::DeleteJob(grpc::ServerContext* ctx, const v1::DeleteJobRequest* req,
                                       v1::DeleteJobResponse* resp) {
  if (grpc::Status s = Admit(*ctx, "DeleteJob"); !s.ok()) return s;
  auto removed = controller_.Delete(req->id());
  if (!removed.ok()) return ToGrpc(removed.status());
  resp->set_id(req->id());
  for (const std::string& path : *removed) resp->add_removed(path);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                                      grpc::ServerWriter<v1::JobUpdate>* writer) {
  if (grpc::Status s = Admit(*ctx, "WatchJob"); !s.ok()) return s;
  uint64_t seen = controller_.changes();
  auto job = controller_.Get(req->id());
  if (!job.ok()) return ToGrpc(job.status());
  JobWatch watch(writer);
  if (!watch.SendFirst(*job)) return grpc::Status::OK;
  auto last_progress = std::chrono::steady_clock::now();
  while (!IsTerminal(job->state())) {
    if (ctx->IsCancelled() || ShutdownRequested()) return grpc::Status::CANCELLED;
    seen = controller_.WaitForChange(seen, std::chrono::milliseconds(250));
    job = controller_.Get(req->id());
    if (!job.ok()) return ToGrpc(job.status());  // deleted meanwhile
    const auto now = std::chrono::steady_clock::now();
    bool progress_sent = false;
    if (!watch.SendChanges(*job, now - last_progress >= kProgressInterval, &progress_sent)) {
      return grpc::Status::OK;
    }
    if (progress_sent) last_progress = now;
  }
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::GetJobLogs(grpc::ServerContext* ctx, const v1::GetJobLogsRequest* req,
                                        grpc::ServerWriter<v1::LogLine>* writer) {
  if (grpc::Status s = Admit(*ctx, "GetJobLogs"); !s.ok()) return s;
  if (req->tail_lines() < 0 || req->tail_lines() > LogTail::kMaxLines) {
    return ToGrpc(absl::InvalidArgumentError(absl::StrCat(
        "tail_lines: ", req->tail_lines(), ", outside [0, ", LogTail::kMaxLines, "]")));
  }
  if (!ValidProcessName(req->process())) {
    return ToGrpc(absl::InvalidArgumentError(
        absl::StrCat("process: '", req->process(), "' is not the name of a log")));
  }
  auto job = controller_.Get(req->id());
  if (!job.ok()) return ToGrpc(job.status());
  if (log_dir_.empty()) {
    return ToGrpc(absl::FailedPreconditionError("control was started without a log directory"));
  }
  LogTail tail(log_dir_, req->id(), req->process());
  auto lines = tail.Tail(req->tail_lines() == 0 ? LogTail::kDefaultLines : req->tail_lines());
  if (!lines.ok()) return ToGrpc(lines.status());
  for (const v1::LogLine& line : *lines) {
    if (!writer->Write(line)) return grpc::Status::OK;
  }
  bool ended = IsTerminal(job->state());
  while (req->follow() && !ended) {
    if (ctx->IsCancelled() || ShutdownRequested()) return grpc::Status::CANCELLED;
    std::this_thread::sleep_for(kFollowInterval);
    job = controller_.Get(req->id());
    ended = !job.ok() || IsTerminal(job->state());
    // Read once more after the job ended: the processes' last lines about it.
    for (const v1::LogLine& line : tail.Follow()) {
      if (!writer->Write(line)) return grpc::Status::OK;
    }
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Register(grpc::ServerContext* ctx, const v1::RegisterRequest* req,
                                         v1::RegisterResponse* resp) {
  if (req->role() == v1::WORKER_ROLE_UNSPECIFIED) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "role: must be set");
  }
  auto registered = controller_.Register(*req, PeerComponent(*ctx));
  if (!registered.ok()) {
    LogWarning("registration refused", {{"name", req->name()},
                                        {"role", v1::WorkerRole_Name(req->role())},
                                        {"peer", ctx->peer()},
                                        {"error", std::string(registered.status().message())}});
  }
  return Reply(registered, resp);
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                                          v1::HeartbeatResponse* resp) {
  auto answered = controller_.Heartbeat(*req, PeerComponent(*ctx));
  if (!answered.ok()) {
    LogWarning("heartbeat refused", {{"worker_id", req->worker_id()},
                                     {"peer", ctx->peer()},
                                     {"error", std::string(answered.status().message())}});
  }
  return Reply(answered, resp);
}

}  // namespace rally
