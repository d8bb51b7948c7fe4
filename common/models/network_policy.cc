#include "common/models/network_policy.h"

#include <torch/torch.h>

#include <cstring>

#include "common/models/policy_net.h"
#include "common/models/safetensors.h"

namespace rally {

class PolicyModel {
 public:
  PolicyModel(int obs, const std::vector<int>& hidden, int actions) : net(obs, hidden, actions) {
    net->eval();
  }
  PolicyNet net;
};

NetworkPolicy::~NetworkPolicy() = default;

absl::StatusOr<std::shared_ptr<NetworkPolicy>> NetworkPolicy::FromWeights(
    int observation_size, const std::vector<int>& hidden, int num_actions, int64_t version,
    const std::string& blob) {
  auto set = DecodeSafetensors(blob);
  if (!set.ok()) return set.status();
  std::shared_ptr<NetworkPolicy> p(new NetworkPolicy());
  p->version_ = version;
  p->observation_size_ = observation_size;
  p->num_actions_ = num_actions;
  p->model_ = std::make_unique<PolicyModel>(observation_size, hidden, num_actions);
  if (auto s = ImportParameters(p->model_->net, set->tensors); !s.ok()) return s;
  return p;
}

void NetworkPolicy::Probabilities(int n, const float* observations, const uint8_t* legal,
                                  float* out) {
  std::lock_guard<std::mutex> lock(mu_);
  torch::NoGradGuard no_grad;
  auto obs =
      torch::from_blob(const_cast<float*>(observations), {n, observation_size_}, torch::kFloat32);
  auto mask = torch::from_blob(const_cast<uint8_t*>(legal), {n, num_actions_}, torch::kUInt8)
                  .to(torch::kBool);
  auto probs = MaskedLogSoftmax(model_->net->forward(obs), mask).exp().contiguous();
  std::memcpy(out, probs.data_ptr<float>(), sizeof(float) * n * num_actions_);
}

void LatestPolicy::Set(std::shared_ptr<NetworkPolicy> policy) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    policy_ = std::move(policy);
  }
  cv_.notify_all();
}

std::shared_ptr<NetworkPolicy> LatestPolicy::Get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return policy_;
}

std::shared_ptr<NetworkPolicy> LatestPolicy::WaitForAny(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return policy_ != nullptr; });
  return policy_;
}

void LatestPolicy::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  policy_.reset();
}

}  // namespace rally
