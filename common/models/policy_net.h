// The policy network of board and card games: an MLP from the observation to one logit per
// distinct action, with illegal actions masked out before the softmax. Includes LibTorch: only
// the learner's and actor's model code include this header.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "absl/status/status.h"
#include "common/models/safetensors.h"

namespace rally {

class PolicyNetImpl : public torch::nn::Module {
 public:
  PolicyNetImpl(int observation_size, const std::vector<int>& hidden, int num_actions);
  // [N, observation_size] -> [N, num_actions] logits.
  torch::Tensor forward(torch::Tensor observations);

  int observation_size() const { return observation_size_; }
  int num_actions() const { return num_actions_; }

 private:
  int observation_size_;
  int num_actions_;
  torch::nn::Sequential layers_{nullptr};
};
TORCH_MODULE(PolicyNet);

// log-softmax over the legal actions; `legal_mask` is [N, A] bool (true = legal). Illegal actions
// get log-probability -inf-like (-1e9 logits) so their probability is exactly 0 in float.
torch::Tensor MaskedLogSoftmax(const torch::Tensor& logits, const torch::Tensor& legal_mask);

// Parameters as named F32 tensors (CPU copies) and back. Import checks names and shapes.
std::vector<NamedTensor> ExportParameters(PolicyNet& net);
absl::Status ImportParameters(PolicyNet& net, const std::vector<NamedTensor>& tensors);

}  // namespace rally
