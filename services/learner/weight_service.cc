#include "services/learner/weight_service.h"

#include <chrono>

#include "absl/strings/str_cat.h"

namespace rally {
namespace {

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

WeightServiceImpl::WeightServiceImpl(prometheus::Registry& metrics)
    : version_gauge_(AddGauge(metrics, "rally_learner_published_policy_version",
                              "Latest weight version published to actors.")),
      subscribers_gauge_(AddGauge(metrics, "rally_learner_weight_subscribers",
                                  "Open weight subscription streams.")),
      bytes_sent_(AddCounter(metrics, "rally_learner_weight_bytes_sent_total",
                             "Weight bytes streamed to subscribers.")) {}

void WeightServiceImpl::Publish(int64_t version, int64_t learner_step, std::string blob) {
  auto p = std::make_shared<Published>();
  p->version = version;
  p->learner_step = learner_step;
  p->published_unix_micros = NowMicros();
  p->blob = std::move(blob);
  {
    std::lock_guard<std::mutex> lock(mu_);
    p->generation = generation_;
    latest_ = std::move(p);
  }
  version_gauge_.Set(static_cast<double>(version));
  cv_.notify_all();
}

void WeightServiceImpl::Reset() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    latest_.reset();
    ++generation_;
  }
  cv_.notify_all();
}

void WeightServiceImpl::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

bool WeightServiceImpl::WriteChunks(const Published& p,
                                    grpc::ServerWriter<v1::WeightChunk>* writer) {
  size_t offset = 0;
  do {
    size_t n = std::min(kChunkBytes, p.blob.size() - offset);
    v1::WeightChunk chunk;
    chunk.set_version(p.version);
    chunk.set_learner_step(p.learner_step);
    chunk.set_offset(offset);
    chunk.set_total_bytes(p.blob.size());
    chunk.set_published_unix_micros(p.published_unix_micros);
    chunk.set_data(p.blob.data() + offset, n);
    if (!writer->Write(chunk)) return false;
    offset += n;
  } while (offset < p.blob.size());
  return true;
}

grpc::Status WeightServiceImpl::Subscribe(grpc::ServerContext* ctx, const v1::SubscribeRequest* req,
                                          grpc::ServerWriter<v1::WeightChunk>* writer) {
  int64_t have = req->have_version();
  uint64_t generation;
  {
    std::lock_guard<std::mutex> lock(mu_);
    generation = generation_;
  }
  subscribers_gauge_.Increment();
  grpc::Status result = grpc::Status::OK;
  while (!ctx->IsCancelled()) {
    std::shared_ptr<const Published> next;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(200), [&] {
        return closed_ || generation_ != generation || (latest_ && latest_->version > have);
      });
      if (closed_) break;
      if (generation_ != generation) {
        result = grpc::Status(grpc::StatusCode::ABORTED, "the learner started a new job");
        break;
      }
      if (latest_ && latest_->version > have) next = latest_;
    }
    if (!next) continue;
    if (!WriteChunks(*next, writer)) break;
    bytes_sent_.Increment(static_cast<double>(next->blob.size()));
    have = next->version;
  }
  subscribers_gauge_.Decrement();
  return result;
}

grpc::Status WeightServiceImpl::Get(grpc::ServerContext*, const v1::GetWeightsRequest* req,
                                    grpc::ServerWriter<v1::WeightChunk>* writer) {
  std::shared_ptr<const Published> p;
  {
    std::lock_guard<std::mutex> lock(mu_);
    p = latest_;
  }
  if (!p) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "no weights published yet");
  if (req->version() != 0 && req->version() != p->version) {
    return grpc::Status(
        grpc::StatusCode::NOT_FOUND,
        absl::StrCat("version ", req->version(), " is not kept (latest is ", p->version, ")"));
  }
  WriteChunks(*p, writer);
  return grpc::Status::OK;
}

}  // namespace rally
