// The policy network of board and card games: an MLP from the observation to one logit per
// distinct action, with illegal actions masked out before the softmax, and a value head (one
// scalar from the last hidden layer) that only value-based losses train. The value head is always
// there so that actors and learners agree on parameter names. Includes LibTorch: only the
// learner's and actor's model code include this header.
#pragma once

#include <torch/torch.h>

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/models/safetensors.h"

namespace rally {

class PolicyNetImpl : public torch::nn::Module {
 public:
  PolicyNetImpl(int observation_size, const std::vector<int>& hidden, int num_actions);
  // [N, observation_size] -> [N, num_actions] logits.
  torch::Tensor forward(torch::Tensor observations);
  // [N, observation_size] -> ([N, num_actions] logits, [N] values).
  std::pair<torch::Tensor, torch::Tensor> forward_with_value(torch::Tensor observations);

  int observation_size() const { return observation_size_; }
  int num_actions() const { return num_actions_; }

 private:
  int observation_size_;
  int num_actions_;
  torch::nn::Sequential layers_{nullptr};  // hidden layers, then the policy output
  torch::nn::Linear value_{nullptr};       // last hidden layer -> 1
};
TORCH_MODULE(PolicyNet);

// log-softmax over the legal actions; `legal_mask` is [N, A] bool (true = legal). Illegal actions
// get log-probability -inf-like (-1e9 logits) so their probability is exactly 0 in float.
torch::Tensor MaskedLogSoftmax(const torch::Tensor& logits, const torch::Tensor& legal_mask);

// Mean over rows of the entropy of a masked policy: `log_probs` [N, A] from MaskedLogSoftmax,
// summed over legal actions only (illegal ones have probability 0 and add nothing).
torch::Tensor MeanEntropy(const torch::Tensor& log_probs, const torch::Tensor& legal_mask);

// Parameters as named F32 tensors (CPU copies) and back. Import checks names and shapes; weights
// saved before the value head existed import with the value head left as initialised.
std::vector<NamedTensor> ExportParameters(PolicyNet& net);
absl::Status ImportParameters(PolicyNet& net, const std::vector<NamedTensor>& tensors);

}  // namespace rally
