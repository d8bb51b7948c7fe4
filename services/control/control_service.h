// gRPC adapters of rally-control: JobService for clients, WorkerService for workers. Both
// delegate to the Controller.
#pragma once

#include "rally/v1/control.grpc.pb.h"
#include "services/control/controller.h"

namespace rally {

class JobServiceImpl final : public v1::JobService::Service {
 public:
  explicit JobServiceImpl(Controller& controller) : controller_(controller) {}
  grpc::Status SubmitJob(grpc::ServerContext*, const v1::SubmitJobRequest* req,
                         v1::Job* resp) override;
  grpc::Status GetJob(grpc::ServerContext*, const v1::GetJobRequest* req, v1::Job* resp) override;
  grpc::Status ListJobs(grpc::ServerContext*, const v1::ListJobsRequest* req,
                        v1::ListJobsResponse* resp) override;
  grpc::Status StopJob(grpc::ServerContext*, const v1::StopJobRequest* req, v1::Job* resp) override;

 private:
  Controller& controller_;
};

class WorkerServiceImpl final : public v1::WorkerService::Service {
 public:
  explicit WorkerServiceImpl(Controller& controller) : controller_(controller) {}
  grpc::Status Register(grpc::ServerContext*, const v1::RegisterRequest* req,
                        v1::RegisterResponse* resp) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* req,
                         v1::HeartbeatResponse* resp) override;

 private:
  Controller& controller_;
};

}  // namespace rally
