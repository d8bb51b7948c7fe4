#include "common/rl/losses.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"

namespace rally {
namespace {

// pi/mu truncated at `bar`; 1 when `bar` <= 0 (no correction).
double Truncate(double ratio, double bar) { return bar > 0 ? std::min(bar, ratio) : 1.0; }

std::vector<double> ToVector(const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

torch::Tensor FromVector(const std::vector<double>& v, const torch::Device& device) {
  return torch::tensor(v, torch::kFloat64).to(device, torch::kFloat32);
}

}  // namespace

absl::StatusOr<Algorithm> ParseAlgorithm(std::string_view name) {
  if (name == "reinforce_rae") return Algorithm::kReinforce;
  if (name == "ppo") return Algorithm::kPpo;
  if (name == "vtrace") return Algorithm::kVtrace;
  return absl::InvalidArgumentError(absl::StrCat("unknown algorithm '", std::string(name),
                                                 "' (known: reinforce_rae, ppo, vtrace)"));
}

VtraceReturns ComputeVtrace(const torch::Tensor& log_rhos, const torch::Tensor& values,
                            const torch::Tensor& rewards, const torch::Tensor& dones,
                            const LossOptions& o) {
  const std::vector<double> log_rho = ToVector(log_rhos);
  const std::vector<double> v = ToVector(values);
  const std::vector<double> r = ToVector(rewards);
  const std::vector<double> done = ToVector(dones);
  const size_t n = log_rho.size();
  TORCH_CHECK(v.size() == n && r.size() == n && done.size() == n,
              "V-trace inputs must have one entry per turn");
  std::vector<double> vs(n), pg(n), rhos(n);
  double next_v = 0;    // V(x_{t+1}), 0 after a done
  double next_vs = 0;   // v_{t+1}
  double next_acc = 0;  // v_{t+1} - V(x_{t+1})
  for (size_t i = n; i-- > 0;) {
    if (done[i] != 0 || i + 1 == n) next_v = next_vs = next_acc = 0;
    const double ratio =
        std::exp(std::clamp(log_rho[i], -kMaxLogImportanceRatio, kMaxLogImportanceRatio));
    const double rho = Truncate(ratio, o.rho_bar);
    const double c = o.vtrace_lambda * Truncate(ratio, o.c_bar);
    const double delta = rho * (r[i] + o.discount * next_v - v[i]);
    const double acc = delta + o.discount * c * next_acc;
    vs[i] = v[i] + acc;
    pg[i] = rho * (r[i] + o.discount * next_vs - v[i]);
    rhos[i] = rho;
    next_v = v[i];
    next_vs = vs[i];
    next_acc = acc;
  }
  const torch::Device device = values.device();
  return {FromVector(vs, device), FromVector(pg, device), FromVector(rhos, device)};
}

torch::Tensor MeanKl(const torch::Tensor& log_p, const torch::Tensor& log_q,
                     const torch::Tensor& legal_mask) {
  // Zero both log-probs at illegal actions before subtracting: p is exactly 0 there, and
  // 0 * (finite) keeps the value and its gradient finite where log q may be -inf.
  const torch::Tensor illegal = legal_mask.logical_not();
  return (log_p.exp() * (log_p.masked_fill(illegal, 0.0) - log_q.masked_fill(illegal, 0.0)))
      .sum(1)
      .mean();
}

LossTerms ComputeLossFromLogits(const torch::Tensor& logits, const torch::Tensor& values,
                                const TurnBatch& batch, const LossOptions& o,
                                const torch::Tensor& reference_log_probs,
                                const torch::Tensor& magnet_log_probs) {
  const torch::Tensor logp = MaskedLogSoftmax(logits, batch.legal_mask);
  LossTerms out;
  torch::Tensor loss;
  switch (o.algorithm) {
    case Algorithm::kReinforce: {
      out = ReinforceLossFromLogProbs(logp, batch, o.entropy_coef, o.rho_bar);
      loss = out.loss;
      break;
    }
    case Algorithm::kPpo: {
      const torch::Tensor chosen = logp.gather(1, batch.actions.unsqueeze(1)).squeeze(1);
      const torch::Tensor ratio = ClampedLogRatio(chosen, batch.behaviour_log_probs).exp();
      const torch::Tensor& adv = batch.advantages;
      const torch::Tensor clipped = ratio.clamp(1 - o.clip_epsilon, 1 + o.clip_epsilon);
      const torch::Tensor policy_loss = -torch::min(ratio * adv, clipped * adv).mean();
      const torch::Tensor entropy = MeanEntropy(logp, batch.legal_mask);
      loss = policy_loss - o.entropy_coef * entropy;
      out.policy_loss = policy_loss.item<double>();
      out.entropy = entropy.item<double>();
      out.mean_importance_weight = ratio.mean().item<double>();
      out.clip_fraction =
          ((ratio.detach() - 1).abs() > o.clip_epsilon).to(torch::kFloat64).mean().item<double>();
      break;
    }
    case Algorithm::kVtrace: {
      TORCH_CHECK(values.defined(), "V-trace needs the value head's outputs");
      const torch::Tensor chosen = logp.gather(1, batch.actions.unsqueeze(1)).squeeze(1);
      const VtraceReturns targets = ComputeVtrace(chosen.detach() - batch.behaviour_log_probs,
                                                  values.detach(), batch.rewards, batch.dones, o);
      const torch::Tensor policy_loss = -(targets.pg_advantages * chosen).mean();
      const torch::Tensor value_loss = 0.5 * (targets.vs - values).pow(2).mean();
      const torch::Tensor entropy = MeanEntropy(logp, batch.legal_mask);
      loss = policy_loss + o.value_coef * value_loss - o.entropy_coef * entropy;
      out.policy_loss = policy_loss.item<double>();
      out.value_loss = value_loss.item<double>();
      out.entropy = entropy.item<double>();
      out.mean_importance_weight = targets.rhos.mean().item<double>();
      break;
    }
  }
  if (reference_log_probs.defined()) {
    const torch::Tensor kl = MeanKl(logp, reference_log_probs.detach(), batch.legal_mask);
    if (o.kl_coef != 0) loss = loss + o.kl_coef * kl;
    out.kl = kl.item<double>();
  }
  // The uniform magnet over the legal actions: log rho = -log(number of legal actions).
  const torch::Tensor magnet =
      magnet_log_probs.defined()
          ? magnet_log_probs.detach()
          : -batch.legal_mask.sum(1, /*keepdim=*/true).to(logp.scalar_type()).log().expand_as(logp);
  const torch::Tensor magnet_kl = MeanKl(logp, magnet, batch.legal_mask);
  if (o.magnet_coef != 0) loss = loss + o.magnet_coef * magnet_kl;
  out.magnet_kl = magnet_kl.item<double>();
  out.loss = loss;
  return out;
}

LossTerms ComputeLoss(PolicyNet& net, const TurnBatch& batch, const LossOptions& options,
                      const torch::Tensor& reference_log_probs,
                      const torch::Tensor& magnet_log_probs) {
  if (options.algorithm == Algorithm::kVtrace) {
    auto [logits, values] = net->forward_with_value(batch.observations);
    return ComputeLossFromLogits(logits, values, batch, options, reference_log_probs,
                                 magnet_log_probs);
  }
  return ComputeLossFromLogits(net->forward(batch.observations), torch::Tensor(), batch, options,
                               reference_log_probs, magnet_log_probs);
}

torch::Tensor PolicyLogProbs(PolicyNet& net, const TurnBatch& batch) {
  torch::NoGradGuard no_grad;
  return MaskedLogSoftmax(net->forward(batch.observations), batch.legal_mask);
}

void UpdateEma(PolicyNet& target, PolicyNet& source, double decay) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> t = target->parameters();
  std::vector<torch::Tensor> s = source->parameters();
  TORCH_CHECK(t.size() == s.size(), "UpdateEma: the nets have different architectures");
  for (size_t i = 0; i < t.size(); ++i) {
    t[i].mul_(decay).add_(s[i].to(t[i].device()), 1.0 - decay);
  }
}

}  // namespace rally
