// A policy version held by an actor, the evaluator or the CLI: the network with the weights of
// one published version.
// Shared read-only between environments (each episode keeps the version it started with) and
// used for forward passes by the inference thread only.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rally {

class PolicyModel;  // LibTorch network; defined in policy.cc

class NetworkPolicy {
 public:
  // Builds the network for the job and loads `blob` (a safetensors weight set) into it.
  static absl::StatusOr<std::shared_ptr<NetworkPolicy>> FromWeights(int observation_size,
                                                                    const std::vector<int>& hidden,
                                                                    int num_actions,
                                                                    int64_t version,
                                                                    const std::string& blob);
  ~NetworkPolicy();

  int64_t version() const { return version_; }
  int observation_size() const { return observation_size_; }
  int num_actions() const { return num_actions_; }

  // Action probabilities for `n` rows: `observations` is n x observation_size, `legal` n x
  // num_actions (1 = legal). Writes n x num_actions probabilities (0 for illegal actions).
  void Probabilities(int n, const float* observations, const uint8_t* legal, float* out);

 private:
  NetworkPolicy() = default;
  int64_t version_ = 0;
  int observation_size_ = 0;
  int num_actions_ = 0;
  std::unique_ptr<PolicyModel> model_;
  std::mutex mu_;  // forward passes of one module are serialised
};

// The latest policy an actor holds; set by the weight subscriber, read by environments.
class LatestPolicy {
 public:
  void Set(std::shared_ptr<NetworkPolicy> policy);
  std::shared_ptr<NetworkPolicy> Get() const;
  // Blocks until a policy is held or `timeout` passes (nullptr then).
  std::shared_ptr<NetworkPolicy> WaitForAny(std::chrono::milliseconds timeout) const;
  void Clear();

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::shared_ptr<NetworkPolicy> policy_;
};

}  // namespace rally
