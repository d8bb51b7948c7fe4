// rally-replay's gRPC service: the job's tables, trajectory validation, and metrics.
//
// A job is installed by SetJob() when control assigns one; until then every call fails with
// FAILED_PRECONDITION. Insert streams acknowledge each item in order once it is stored; an item
// that does not fit the job's game gets an INVALID_ARGUMENT ack and the stream stays open. A full
// table holds the insert (and so, through gRPC flow control, the actor) back.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "common/config/job_config.h"
#include "common/games/game.h"
#include "common/metrics/metrics.h"
#include "rally/v1/replay.grpc.pb.h"
#include "services/replay/fifo_table.h"

namespace rally {

class ReplayServiceImpl final : public v1::ReplayService::Service {
 public:
  explicit ReplayServiceImpl(prometheus::Registry& metrics);
  ~ReplayServiceImpl() override;

  // Replaces the current job's tables with empty ones for `job_id`.
  absl::Status SetJob(const std::string& job_id, const JobConfig& config);
  // Drops the job's tables (waking blocked calls with CANCELLED).
  void ClearJob();
  // Wakes every blocked call; used at shutdown.
  void Close();

  grpc::Status Insert(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::InsertResponse, v1::InsertRequest>* stream) override;
  grpc::Status Sample(
      grpc::ServerContext* ctx,
      grpc::ServerReaderWriter<v1::SampleResponse, v1::SampleRequest>* stream) override;
  grpc::Status Info(grpc::ServerContext* ctx, const v1::InfoRequest* req,
                    v1::InfoResponse* resp) override;

  int64_t inserted_total() const;

 private:
  struct Job {
    std::string id;
    std::shared_ptr<const Game> game;
    std::shared_ptr<FifoTable> table;
    std::atomic<int64_t> rejected{0};
  };
  // The current job, or FAILED_PRECONDITION.
  absl::StatusOr<std::shared_ptr<Job>> CurrentJob() const;
  absl::StatusOr<std::shared_ptr<FifoTable>> FindTable(const Job& job,
                                                       const std::string& name) const;

  mutable std::mutex mu_;
  std::shared_ptr<Job> job_;
  std::atomic<bool> closed_{false};

  prometheus::Counter& inserted_;
  prometheus::Counter& rejected_;
  prometheus::Counter& sampled_;
  prometheus::Gauge& size_;
  prometheus::Histogram& insert_wait_;
  prometheus::Histogram& sample_wait_;
};

}  // namespace rally
