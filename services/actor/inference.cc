#include "services/actor/inference.h"

#include <cmath>
#include <map>

#include "common/eval/policy.h"

namespace rally {

InferenceWorker::InferenceWorker(int max_batch, std::chrono::microseconds timeout, uint64_t seed,
                                 prometheus::Registry* metrics)
    : batcher_(max_batch, timeout), rng_(seed) {
  if (metrics != nullptr) {
    std::vector<double> buckets;
    for (int b = 1; b <= max_batch; b *= 2) buckets.push_back(b);
    batch_size_ = &AddHistogram(*metrics, "rally_actor_inference_batch_size",
                                "Requests per inference batch.", buckets);
    forward_passes_ = &AddCounter(*metrics, "rally_actor_forward_passes_total",
                                  "Forward passes run by the inference worker.");
  }
  thread_ = std::thread([this] { Loop(); });
}

InferenceWorker::~InferenceWorker() { Stop(); }

std::future<absl::StatusOr<InferenceResponse>> InferenceWorker::Submit(InferenceRequest request) {
  return batcher_.Submit(std::move(request));
}

void InferenceWorker::Stop() {
  batcher_.Close();
  if (thread_.joinable()) thread_.join();
}

void InferenceWorker::Loop() {
  while (true) {
    std::vector<Batcher::Item> batch = batcher_.NextBatch();
    if (batch.empty()) return;
    if (batch_size_) batch_size_->Observe(static_cast<double>(batch.size()));
    Serve(batch);
  }
}

void InferenceWorker::Serve(std::vector<Batcher::Item>& batch) {
  // One forward pass per policy version in the batch (usually one, two around a weight update).
  std::map<NetworkPolicy*, std::vector<Batcher::Item*>> groups;
  for (Batcher::Item& item : batch) groups[item.request.policy.get()].push_back(&item);
  for (auto& [policy, items] : groups) {
    const int n = static_cast<int>(items.size());
    const int obs = policy->observation_size();
    const int actions = policy->num_actions();
    std::vector<float> observations(static_cast<size_t>(n) * obs);
    std::vector<uint8_t> legal(static_cast<size_t>(n) * actions, 0);
    for (int i = 0; i < n; ++i) {
      const InferenceRequest& r = items[i]->request;
      if (static_cast<int>(r.observation.size()) != obs) {
        items[i]->promise.set_value(absl::InvalidArgumentError("observation size mismatch"));
        continue;
      }
      std::copy(r.observation.begin(), r.observation.end(), observations.begin() + i * obs);
      for (int a : r.legal_actions) legal[i * actions + a] = 1;
    }
    std::vector<float> probs(static_cast<size_t>(n) * actions);
    policy->Probabilities(n, observations.data(), legal.data(), probs.data());
    if (forward_passes_) forward_passes_->Increment();
    for (int i = 0; i < n; ++i) {
      const InferenceRequest& r = items[i]->request;
      if (static_cast<int>(r.observation.size()) != obs) continue;
      auto [action, p] = SampleAction(probs.data() + i * actions, r.legal_actions, r.greedy, rng_);
      items[i]->promise.set_value(InferenceResponse{action, std::log(std::max(p, 1e-30f))});
    }
  }
}

}  // namespace rally
