// Keeps an actor's LatestPolicy current: subscribes to the learner's weight stream, assembles
// each version from its chunks, builds the network and swaps it in. Reconnects (asking for
// versions newer than the one held) when the stream breaks, until Stop().
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "common/config/job_config.h"
#include "common/metrics/metrics.h"
#include "services/actor/policy.h"

namespace rally {

class WeightSubscriber {
 public:
  WeightSubscriber(std::string address, std::string subscriber, int observation_size,
                   std::vector<int> hidden, int num_actions, LatestPolicy& latest,
                   prometheus::Registry& metrics);
  ~WeightSubscriber();

  void Start();
  void Stop();
  int64_t version() const { return version_; }

 private:
  void Loop();

  const std::string address_;
  const std::string subscriber_;
  const int observation_size_;
  const std::vector<int> hidden_;
  const int num_actions_;
  LatestPolicy& latest_;
  std::atomic<int64_t> version_{-1};
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex ctx_mu_;
  grpc::ClientContext* ctx_ = nullptr;  // the open stream's context, for Stop() to cancel

  prometheus::Gauge& version_gauge_;
  prometheus::Histogram& latency_;
};

}  // namespace rally
