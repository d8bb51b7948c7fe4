#include "services/actor/weight_subscriber.h"

#include "absl/strings/str_cat.h"
#include "common/net/server.h"
#include "common/util/log.h"
#include "common/util/shutdown.h"
#include "rally/v1/weights.grpc.pb.h"

namespace rally {

WeightSubscriber::WeightSubscriber(std::string address, std::string subscriber,
                                   int observation_size, std::vector<int> hidden, int num_actions,
                                   LatestPolicy& latest, prometheus::Registry& metrics)
    : address_(std::move(address)),
      subscriber_(std::move(subscriber)),
      observation_size_(observation_size),
      hidden_(std::move(hidden)),
      num_actions_(num_actions),
      latest_(latest),
      version_gauge_(AddGauge(metrics, "rally_actor_policy_version",
                              "Weight version the actor currently plays.")),
      latency_(AddHistogram(metrics, "rally_actor_weights_publish_to_applied_seconds",
                            "Time from the learner's publish to the version being applied.",
                            {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5})) {}

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
  auto stub = v1::WeightService::NewStub(MakeChannel(address_));
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
    std::string blob;
    while (stream->Read(&chunk)) {
      if (chunk.offset() == 0) blob.clear();
      if (chunk.offset() != blob.size()) {
        LogWarning("weight chunk out of order", {{"version", chunk.version()}});
        break;
      }
      blob += chunk.data();
      if (blob.size() < chunk.total_bytes()) continue;
      auto policy = NetworkPolicy::FromWeights(observation_size_, hidden_, num_actions_,
                                               chunk.version(), blob);
      if (!policy.ok()) {
        LogError("cannot apply weights",
                 {{"version", chunk.version()}, {"error", policy.status().ToString()}});
        continue;
      }
      latest_.Set(*policy);
      version_ = chunk.version();
      version_gauge_.Set(static_cast<double>(chunk.version()));
      int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
      latency_.Observe((now - chunk.published_unix_micros()) / 1e6);
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
