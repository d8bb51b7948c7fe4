#include "services/control/control_service.h"

#include "common/net/server.h"

namespace rally {
namespace {

template <typename T>
grpc::Status Reply(const absl::StatusOr<T>& result, T* out) {
  if (!result.ok()) return ToGrpc(result.status());
  *out = *result;
  return grpc::Status::OK;
}

}  // namespace

grpc::Status JobServiceImpl::SubmitJob(grpc::ServerContext*, const v1::SubmitJobRequest* req,
                                       v1::Job* resp) {
  return Reply(controller_.Submit(req->spec_yaml(), req->source_name()), resp);
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext*, const v1::GetJobRequest* req,
                                    v1::Job* resp) {
  return Reply(controller_.Get(req->id()), resp);
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext*, const v1::ListJobsRequest*,
                                      v1::ListJobsResponse* resp) {
  for (v1::Job& job : controller_.List()) *resp->add_jobs() = std::move(job);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::StopJob(grpc::ServerContext*, const v1::StopJobRequest* req,
                                     v1::Job* resp) {
  return Reply(controller_.Stop(req->id(), req->reason()), resp);
}

grpc::Status WorkerServiceImpl::Register(grpc::ServerContext*, const v1::RegisterRequest* req,
                                         v1::RegisterResponse* resp) {
  if (req->role() == v1::WORKER_ROLE_UNSPECIFIED) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "role: must be set");
  }
  *resp = controller_.Register(*req);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* req,
                                          v1::HeartbeatResponse* resp) {
  *resp = controller_.Heartbeat(*req);
  return grpc::Status::OK;
}

}  // namespace rally
