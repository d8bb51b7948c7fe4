#include "services/replay/replay_service.h"

#include "absl/strings/str_cat.h"
#include "common/games/registry.h"
#include "common/net/server.h"
#include "common/util/log.h"
#include "common/util/shutdown.h"
#include "services/replay/validate.h"

namespace rally {
namespace {

using Clock = std::chrono::steady_clock;
// Blocked calls wake at least this often to notice cancelled clients and shutdown.
constexpr auto kPollSlice = std::chrono::milliseconds(100);

const prometheus::Histogram::BucketBoundaries kWaitBuckets = {0.0001, 0.0005, 0.001, 0.005, 0.01,
                                                              0.05,   0.1,    0.5,   1,     5};

}  // namespace

ReplayServiceImpl::ReplayServiceImpl(prometheus::Registry& metrics)
    : inserted_(AddCounter(metrics, "rally_replay_items_inserted_total",
                           "Items stored and acknowledged.")),
      rejected_(AddCounter(metrics, "rally_replay_items_rejected_total",
                           "Items refused (invalid for the game, unknown table, no job).")),
      sampled_(AddCounter(metrics, "rally_replay_items_sampled_total", "Items sampled.")),
      size_(AddGauge(metrics, "rally_replay_table_size_items", "Items held in the table.")),
      insert_wait_(AddHistogram(metrics, "rally_replay_insert_wait_seconds",
                                "Time an insert waited for room in a full table.", kWaitBuckets)),
      sample_wait_(AddHistogram(metrics, "rally_replay_sample_wait_seconds",
                                "Time a sample waited for enough items.", kWaitBuckets)) {}

ReplayServiceImpl::~ReplayServiceImpl() { Close(); }

absl::Status ReplayServiceImpl::SetJob(const std::string& job_id, const JobConfig& config) {
  auto game = LoadGame(config.game.name);
  if (!game.ok()) return game.status();
  auto job = std::make_shared<Job>();
  job->id = job_id;
  job->game = *game;
  job->table = std::make_shared<FifoTable>(config.replay.table, config.replay.capacity);
  std::shared_ptr<Job> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = std::move(job_);
    job_ = job;
  }
  if (old) old->table->Close();
  LogInfo("job installed", {{"job_id", job_id},
                            {"table", config.replay.table},
                            {"capacity", config.replay.capacity},
                            {"game", config.game.name}});
  return absl::OkStatus();
}

void ReplayServiceImpl::ClearJob() {
  std::shared_ptr<Job> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    old = std::move(job_);
  }
  if (old) {
    old->table->Close();
    LogInfo("job cleared", {{"job_id", old->id}});
  }
}

void ReplayServiceImpl::Close() {
  closed_ = true;
  ClearJob();
}

absl::StatusOr<std::shared_ptr<ReplayServiceImpl::Job>> ReplayServiceImpl::CurrentJob() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (job_ == nullptr) return absl::FailedPreconditionError("replay has no job assigned yet");
  return job_;
}

absl::StatusOr<std::shared_ptr<FifoTable>> ReplayServiceImpl::FindTable(
    const Job& job, const std::string& name) const {
  if (name != job.table->name()) {
    return absl::NotFoundError(
        absl::StrCat("unknown table '", name, "' (this job has '", job.table->name(), "')"));
  }
  return job.table;
}

int64_t ReplayServiceImpl::inserted_total() const {
  auto job = CurrentJob();
  return job.ok() ? (*job)->table->inserted_total() : 0;
}

grpc::Status ReplayServiceImpl::Insert(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<v1::InsertResponse, v1::InsertRequest>* stream) {
  v1::InsertRequest req;
  while (stream->Read(&req)) {
    v1::InsertResponse ack;
    ack.set_sequence(req.trajectory().sequence());
    absl::Status status;
    auto job = CurrentJob();
    if (!job.ok()) {
      status = job.status();
    } else {
      auto table = FindTable(**job, req.table());
      status = table.status();
      if (status.ok()) status = ValidateTrajectory(*(*job)->game, req.trajectory());
      if (status.ok()) {
        auto item = std::make_shared<v1::Trajectory>(std::move(*req.mutable_trajectory()));
        auto start = Clock::now();
        while (true) {
          auto key = (*table)->Insert(item, Clock::now() + kPollSlice);
          if (key.ok() || !absl::IsDeadlineExceeded(key.status())) {
            status = key.status();
            break;
          }
          if (ctx->IsCancelled() || closed_) return grpc::Status::CANCELLED;
        }
        insert_wait_.Observe(std::chrono::duration<double>(Clock::now() - start).count());
        size_.Set(static_cast<double>((*table)->size()));
      }
    }
    if (status.ok()) {
      inserted_.Increment();
    } else {
      rejected_.Increment();
      if (job.ok()) ++(*job)->rejected;
      ack.set_code(static_cast<int>(status.code()));
      ack.set_error(std::string(status.message()));
      LogWarning("insert rejected", {{"actor_id", req.trajectory().actor_id()},
                                     {"sequence", req.trajectory().sequence()},
                                     {"error", std::string(status.message())}});
    }
    if (!stream->Write(ack)) break;
  }
  return grpc::Status::OK;
}

grpc::Status ReplayServiceImpl::Sample(
    grpc::ServerContext* ctx,
    grpc::ServerReaderWriter<v1::SampleResponse, v1::SampleRequest>* stream) {
  v1::SampleRequest first;
  if (!stream->Read(&first)) return grpc::Status::OK;
  auto job = CurrentJob();
  if (!job.ok()) return ToGrpc(job.status());
  auto table = FindTable(**job, first.table());
  if (!table.ok()) return ToGrpc(table.status());
  if (first.batch_size() < 1 || first.batch_size() > (*table)->capacity()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("batch_size ", first.batch_size(), " must lie in [1, ",
                                     (*table)->capacity(), "] (the table's capacity)"));
  }
  int64_t credits = std::max(0, first.credits());
  while (true) {
    if (credits == 0) {
      v1::SampleRequest more;
      if (!stream->Read(&more)) return grpc::Status::OK;  // the client is done
      credits += std::max(0, more.credits());
      continue;
    }
    auto start = Clock::now();
    absl::StatusOr<std::vector<TableItem>> batch;
    while (true) {
      batch = (*table)->SampleBatch(first.batch_size(), Clock::now() + kPollSlice);
      if (batch.ok() || !absl::IsDeadlineExceeded(batch.status())) break;
      if (ctx->IsCancelled() || closed_) return grpc::Status::CANCELLED;
    }
    if (!batch.ok()) return ToGrpc(batch.status());
    sample_wait_.Observe(std::chrono::duration<double>(Clock::now() - start).count());
    v1::SampleResponse resp;
    for (TableItem& item : *batch) {
      v1::SampledItem* out = resp.add_items();
      out->set_key(item.key);
      out->set_times_sampled(item.times_sampled);
      *out->mutable_trajectory() = *item.trajectory;
    }
    sampled_.Increment(static_cast<double>(batch->size()));
    size_.Set(static_cast<double>((*table)->size()));
    if (!stream->Write(resp)) return grpc::Status::CANCELLED;
    --credits;
  }
}

grpc::Status ReplayServiceImpl::Info(grpc::ServerContext*, const v1::InfoRequest*,
                                     v1::InfoResponse* resp) {
  auto job = CurrentJob();
  if (!job.ok()) return grpc::Status::OK;
  resp->set_job_id((*job)->id);
  v1::TableInfo* info = resp->add_tables();
  const FifoTable& t = *(*job)->table;
  info->set_name(t.name());
  info->set_sampler("fifo");
  info->set_size(t.size());
  info->set_capacity(t.capacity());
  info->set_inserted_total(t.inserted_total());
  info->set_sampled_total(t.sampled_total());
  info->set_rejected_total((*job)->rejected.load());
  return grpc::Status::OK;
}

}  // namespace rally
