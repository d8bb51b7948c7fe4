// The actor's inference worker: environments submit one observation each; a worker thread takes
// them in dynamic batches (up to B, or whatever arrived within the batch timeout), runs one
// forward pass per policy version present in the batch, and samples each action from the
// policy's probabilities over the legal actions (or takes the most probable one, when asked
// for greedy play).
#pragma once

#include <atomic>
#include <future>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "common/concurrency/dynamic_batcher.h"
#include "common/metrics/metrics.h"
#include "common/models/network_policy.h"

namespace rally {

struct InferenceRequest {
  std::shared_ptr<NetworkPolicy> policy;
  std::vector<float> observation;
  std::vector<int> legal_actions;  // ascending, non-empty
  bool greedy = false;
};

struct InferenceResponse {
  int action = 0;
  float log_prob = 0;  // log pi(action | observation) under the request's policy
};

class InferenceWorker {
 public:
  InferenceWorker(int max_batch, std::chrono::microseconds timeout, uint64_t seed,
                  prometheus::Registry* metrics);
  ~InferenceWorker();

  std::future<absl::StatusOr<InferenceResponse>> Submit(InferenceRequest request);
  void Stop();

 private:
  using Batcher = DynamicBatcher<InferenceRequest, InferenceResponse>;
  void Loop();
  void Serve(std::vector<Batcher::Item>& batch);

  Batcher batcher_;
  std::mt19937_64 rng_;
  std::thread thread_;
  prometheus::Histogram* batch_size_ = nullptr;
  prometheus::Counter* forward_passes_ = nullptr;
};

}  // namespace rally
