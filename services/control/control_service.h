// gRPC adapters of rally-control: JobService for clients, WorkerService for workers. Both
// delegate to the Controller; the two streams (WatchJob, GetJobLogs) hold one server thread each
// while open, end when the job ends, the client cancels or the process shuts down.
//
// Credentials (credentials.h): with a TokenTable every JobService call is authorized before it
// runs (UNAUTHENTICATED / PERMISSION_DENIED, logged with the caller's role and token fingerprint,
// never the token); without one the JobService is open. WorkerService calls are checked by the
// Controller against the worker's lease (and, under mutual TLS, its certificate's component).
#pragma once

#include <optional>
#include <string>

#include "rally/v1/control.grpc.pb.h"
#include "services/control/controller.h"
#include "services/control/credentials.h"

namespace rally {

class JobServiceImpl final : public v1::JobService::Service {
 public:
  // `log_dir`: where GetJobLogs reads the processes' logs (see job_logs.h). `tokens`: the
  // bearer tokens every call must carry; nullopt leaves the API open.
  JobServiceImpl(Controller& controller, std::string log_dir,
                 std::optional<TokenTable> tokens = std::nullopt)
      : controller_(controller), log_dir_(std::move(log_dir)), tokens_(std::move(tokens)) {}
  grpc::Status SubmitJob(grpc::ServerContext* ctx, const v1::SubmitJobRequest* req,
                         v1::Job* resp) override;
  grpc::Status GetJob(grpc::ServerContext* ctx, const v1::GetJobRequest* req,
                      v1::Job* resp) override;
  grpc::Status ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest* req,
                        v1::ListJobsResponse* resp) override;
  grpc::Status StopJob(grpc::ServerContext* ctx, const v1::StopJobRequest* req,
                       v1::Job* resp) override;
  grpc::Status ResumeJob(grpc::ServerContext* ctx, const v1::ResumeJobRequest* req,
                         v1::Job* resp) override;
  grpc::Status DeleteJob(grpc::ServerContext* ctx, const v1::DeleteJobRequest* req,
                         v1::DeleteJobResponse* resp) override;
  grpc::Status WatchJob(grpc::ServerContext* ctx, const v1::WatchJobRequest* req,
                        grpc::ServerWriter<v1::JobUpdate>* writer) override;
  grpc::Status GetJobLogs(grpc::ServerContext* ctx, const v1::GetJobLogsRequest* req,
                          grpc::ServerWriter<v1::LogLine>* writer) override;

  // A WatchJob stream sends a progress-only update at most this often.
  static constexpr auto kProgressInterval = std::chrono::seconds(1);
  // How often a following GetJobLogs looks for new lines.
  static constexpr auto kFollowInterval = std::chrono::milliseconds(200);

 private:
  // OK when `call` may run for the caller of `ctx`; the refusal otherwise (logged).
  grpc::Status Admit(const grpc::ServerContext& ctx, std::string_view call);

  Controller& controller_;
  std::string log_dir_;
  std::optional<TokenTable> tokens_;
};

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(Controller& controller) : controller_(controller) {}
  grpc::Status Register(grpc::ServerContext* ctx, const v1::RegisterRequest* req,
                        v1::RegisterResponse* resp) override;
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const v1::HeartbeatRequest* req,
                         v1::HeartbeatResponse* resp) override;

 private:
  Controller& controller_;
};

}  // namespace rally
