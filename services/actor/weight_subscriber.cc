#include "services/actor/weight_subscriber.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/net/server.h"
#include "common/util/log.h"
#include "common/util/shutdown.h"
#include "rally/v1/weights.grpc.pb.h"

namespace rally {

absl::StatusOr<bool> WeightAssembler::Add(v1::WeightChunk& chunk) {
  if (chunk.offset() == 0) {
    blob_.clear();
    version_ = chunk.version();
    total_bytes_ = chunk.total_bytes();
    published_unix_micros_ = chunk.published_unix_micros();
    if (chunk.data().size() == total_bytes_) {
      blob_.swap(*chunk.mutable_data());  // a version in one chunk: no copy
      return true;
    }
    blob_.reserve(total_bytes_);
  } else if (chunk.version() != version_ || chunk.offset() != blob_.size() ||
             chunk.total_bytes() != total_bytes_) {
    return absl::DataLossError(
        absl::StrCat("weight chunk of version ", chunk.version(), " at offset ", chunk.offset(),
                     " does not continue version ", version_, " at offset ", blob_.size()));
  }
  if (blob_.size() + chunk.data().size() > total_bytes_) {
    return absl::DataLossError(absl::StrCat("weight chunks of version ", version_,
                                            " overrun its total of ", total_bytes_, " bytes"));
  }
  blob_.append(chunk.data());
  return blob_.size() == total_bytes_;
}

std::string WeightAssembler::TakeBlob() {
  std::string blob = std::move(blob_);
  blob_.clear();
  return blob;
}

WeightSubscriber::WeightSubscriber(std::shared_ptr<grpc::Channel> channel, std::string subscriber,
                                   ApplyFn apply, prometheus::Registry& metrics)
    : channel_(std::move(channel)),
      subscriber_(std::move(subscriber)),
      apply_(std::move(apply)),
      version_gauge_(AddGauge(metrics, "rally_actor_policy_version",
                              "Weight version the actor currently plays.")),
      latency_(AddHistogram(metrics, "rally_actor_weights_publish_to_applied_seconds",
                            "Time from the learner's publish to the version being applied.",
                            {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5})) {}

WeightSubscriber::WeightSubscriber(const std::string& address, std::string subscriber,
                                   int observation_size, std::vector<int> hidden, int num_actions,
                                   LatestPolicy& latest, prometheus::Registry& metrics)
    : WeightSubscriber(
          MakeChannel(address), std::move(subscriber),
          [observation_size, hidden = std::move(hidden), num_actions, &latest](
              int64_t version, std::string blob) -> absl::Status {
            auto policy =
                NetworkPolicy::FromWeights(observation_size, hidden, num_actions, version, blob);
            if (!policy.ok()) return policy.status();
            latest.Set(*std::move(policy));
            return absl::OkStatus();
          },
          metrics) {}

WeightSubscriber::~WeightSubscriber() { Stop(); }

void WeightSubscriber::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void WeightSubscriber::Stop() {
  stop_ = true;
  {
    std::lock_guard<std::mutex> lock(ctx_mu_);
    if (ctx_) ctx_->TryCancel();
  }
  if (thread_.joinable()) thread_.join();
}

void WeightSubscriber::Loop() {
  auto stub = v1::WeightService::NewStub(channel_);
  while (!stop_ && !ShutdownRequested()) {
    grpc::ClientContext ctx;
    {
      std::lock_guard<std::mutex> lock(ctx_mu_);
      if (stop_) break;
      ctx_ = &ctx;
    }
    v1::SubscribeRequest req;
    req.set_subscriber(subscriber_);
    req.set_have_version(version_);
    auto stream = stub->Subscribe(&ctx, req);
    v1::WeightChunk chunk;
    WeightAssembler assembler;
    while (stream->Read(&chunk)) {
      absl::StatusOr<bool> complete = assembler.Add(chunk);
      if (!complete.ok()) {
        LogWarning("bad weight stream", {{"error", complete.status().ToString()}});
        ctx.TryCancel();
        break;
      }
      if (!*complete) continue;
      const int64_t version = assembler.version();
      absl::Status applied = apply_(version, assembler.TakeBlob());
      if (!applied.ok()) {
        LogError("cannot apply weights", {{"version", version}, {"error", applied.ToString()}});
        continue;
      }
      version_ = version;
      version_gauge_.Set(static_cast<double>(version));
      int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
      latency_.Observe((now - assembler.published_unix_micros()) / 1e6);
    }
    grpc::Status s = stream->Finish();
    {
      std::lock_guard<std::mutex> lock(ctx_mu_);
      ctx_ = nullptr;
    }
    if (stop_) break;
    if (s.error_code() == grpc::StatusCode::ABORTED) break;  // the learner moved to a new job
    WaitForShutdown(std::chrono::milliseconds(200));
  }
}

}  // namespace rally
