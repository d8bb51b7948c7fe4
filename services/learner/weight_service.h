// The weight service of learner rank 0: holds the latest published weight version and streams
// it to subscribers in chunks of at most kChunkBytes. A subscriber gets the latest version at
// once, then every newer one as it is published (intermediate versions are skipped when a
// subscriber is slower than the publisher: actors only ever want the newest).
//
// Thread safety: Publish() from the training thread, the RPCs from gRPC threads.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "common/metrics/metrics.h"
#include "rally/v1/weights.grpc.pb.h"

namespace rally {

class WeightServiceImpl final : public v1::WeightService::Service {
 public:
  static constexpr size_t kChunkBytes = 1 << 20;

  explicit WeightServiceImpl(prometheus::Registry& metrics);

  // Makes `blob` (a safetensors weight set) the latest version.
  void Publish(int64_t version, int64_t learner_step, std::string blob);
  // Forgets the published weights (between jobs) and wakes subscribers, which end their streams.
  void Reset();
  void Close();

  grpc::Status Subscribe(grpc::ServerContext* ctx, const v1::SubscribeRequest* req,
                         grpc::ServerWriter<v1::WeightChunk>* writer) override;
  grpc::Status Get(grpc::ServerContext* ctx, const v1::GetWeightsRequest* req,
                   grpc::ServerWriter<v1::WeightChunk>* writer) override;

 private:
  struct Published {
    int64_t version = 0;
    int64_t learner_step = 0;
    int64_t published_unix_micros = 0;
    std::string blob;
    uint64_t generation = 0;  // Reset() count when published
  };
  static bool WriteChunks(const Published& p, grpc::ServerWriter<v1::WeightChunk>* writer);

  std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const Published> latest_;
  uint64_t generation_ = 0;
  bool closed_ = false;

  prometheus::Gauge& version_gauge_;
  prometheus::Gauge& subscribers_gauge_;
  prometheus::Counter& bytes_sent_;
};

}  // namespace rally
