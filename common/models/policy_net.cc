#include "common/models/policy_net.h"

#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"

namespace rally {

PolicyNetImpl::PolicyNetImpl(int observation_size, const std::vector<int>& hidden, int num_actions)
    : observation_size_(observation_size), num_actions_(num_actions) {
  torch::nn::Sequential seq;
  int in = observation_size;
  for (int width : hidden) {
    seq->push_back(torch::nn::Linear(in, width));
    seq->push_back(torch::nn::ReLU());
    in = width;
  }
  seq->push_back(torch::nn::Linear(in, num_actions));
  layers_ = register_module("layers", seq);
  value_ = register_module("value", torch::nn::Linear(in, 1));
}

torch::Tensor PolicyNetImpl::forward(torch::Tensor observations) {
  return layers_->forward(observations);
}

std::pair<torch::Tensor, torch::Tensor> PolicyNetImpl::forward_with_value(
    torch::Tensor observations) {
  torch::Tensor h = observations;
  auto last = layers_->end() - 1;
  for (auto it = layers_->begin(); it != last; ++it) h = it->forward(h);
  return {last->forward(h), value_->forward(h).squeeze(-1)};
}

torch::Tensor MaskedLogSoftmax(const torch::Tensor& logits, const torch::Tensor& legal_mask) {
  auto masked = logits.masked_fill(legal_mask.logical_not(), -1e9);
  return torch::log_softmax(masked, /*dim=*/-1);
}

torch::Tensor MeanEntropy(const torch::Tensor& log_probs, const torch::Tensor& legal_mask) {
  return -(log_probs.exp() * log_probs.masked_fill(legal_mask.logical_not(), 0.0)).sum(1).mean();
}

std::vector<NamedTensor> ExportParameters(PolicyNet& net) {
  std::vector<NamedTensor> out;
  for (const auto& item : net->named_parameters()) {
    torch::Tensor t = item.value().detach().to(torch::kCPU, torch::kFloat32).contiguous();
    NamedTensor nt;
    nt.name = item.key();
    nt.dtype = "F32";
    nt.shape.assign(t.sizes().begin(), t.sizes().end());
    nt.data.assign(static_cast<const char*>(t.data_ptr()), t.numel() * sizeof(float));
    out.push_back(std::move(nt));
  }
  return out;
}

absl::Status ImportParameters(PolicyNet& net, const std::vector<NamedTensor>& tensors) {
  std::map<std::string, const NamedTensor*> by_name;
  for (const NamedTensor& t : tensors) by_name[t.name] = &t;
  torch::NoGradGuard no_grad;
  auto params = net->named_parameters();
  // Weights from before the value head existed lack exactly its two tensors.
  const bool without_value_head = !by_name.count("value.weight") && !by_name.count("value.bias");
  const size_t expected = params.size() - (without_value_head ? 2 : 0);
  if (expected != by_name.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights hold ", by_name.size(), " tensors, the model has ", params.size()));
  }
  for (auto& item : params) {
    auto it = by_name.find(item.key());
    if (it == by_name.end()) {
      if (without_value_head && item.key().rfind("value.", 0) == 0) continue;
      return absl::InvalidArgumentError(absl::StrCat("weights lack tensor '", item.key(), "'"));
    }
    const NamedTensor& src = *it->second;
    torch::Tensor dst = item.value();
    std::vector<int64_t> shape(dst.sizes().begin(), dst.sizes().end());
    if (src.dtype != "F32" || src.shape != shape) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", item.key(), "' has dtype ",
                                                     src.dtype,
                                                     " and a shape that "
                                                     "does not match the model"));
    }
    torch::Tensor cpu = torch::empty(shape, torch::kFloat32);
    std::memcpy(cpu.data_ptr(), src.data.data(), src.data.size());
    dst.copy_(cpu.to(dst.device()));
  }
  return absl::OkStatus();
}

}  // namespace rally
