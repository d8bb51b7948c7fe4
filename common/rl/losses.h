// The self-play loss family the job spec selects with learner.algorithm: REINFORCE with RAE
// advantages (SPIRAL), PPO's clipped surrogate on the same advantages (Schulman et al. 2017), and
// V-trace actor-critic (IMPALA, Espeholt et al. 2018), each with an entropy bonus, an optional KL
// penalty to a reference policy and a magnet term (magnetic mirror descent, Sokota et al. 2023).
// Includes LibTorch: only the learner includes it.
#pragma once

#include <torch/torch.h>

#include <string_view>

#include "absl/status/statusor.h"
#include "common/models/policy_net.h"
#include "common/rl/reinforce.h"

namespace rally {

enum class Algorithm { kReinforce, kPpo, kVtrace };

// "reinforce_rae" | "ppo" | "vtrace", the names learner.algorithm takes.
absl::StatusOr<Algorithm> ParseAlgorithm(std::string_view name);

struct LossOptions {
  Algorithm algorithm = Algorithm::kReinforce;
  double entropy_coef = 0;
  // Truncation of pi/mu: REINFORCE's importance weight and V-trace's rho_bar. <= 0 turns the
  // correction off (weight 1, as if the data were on-policy).
  double rho_bar = 1;
  double c_bar = 1;  // V-trace trace truncation; <= 0: c = lambda
  double vtrace_lambda = 1;
  double discount = 1;
  double value_coef = 0.5;
  double clip_epsilon = 0.2;
  double kl_coef = 0;
  double magnet_coef = 0;
};

// loss = policy term of `algorithm`
//        - entropy_coef * mean H(pi)
//        + value_coef * value_loss                       (V-trace)
//        + kl_coef * mean KL(pi || pi_ref)               (if reference_log_probs is defined)
//        + magnet_coef * mean KL(pi || magnet)
// REINFORCE: ReinforceLoss. PPO: -mean(min(r A, clip(r, 1 - eps, 1 + eps) A)) with
// r = pi(a|s) / mu(a|s) and A the RAE advantages (every pi/mu of every loss is exp of the
// log-ratio clamped to +-kMaxLogImportanceRatio, so that one extreme behaviour log-probability
// cannot make the loss or its gradient inf or NaN). V-trace: -mean(rho_s (r_s + gamma v_{s+1} -
// V(x_s)) log pi(a_s|x_s)) and value_loss = 0.5 * mean((v_s - V(x_s))^2), targets without
// gradient. KLs sum over legal actions only. `reference_log_probs` and `magnet_log_probs` are
// [T, num_actions] log-probabilities (PolicyLogProbs); an undefined magnet is uniform over the
// legal actions. Throws c10::Error on shape mismatches, like any LibTorch call.
LossTerms ComputeLoss(PolicyNet& net, const TurnBatch& batch, const LossOptions& options,
                      const torch::Tensor& reference_log_probs,
                      const torch::Tensor& magnet_log_probs);

// The same from the network's outputs: `logits` [T, num_actions] and `values` [T] (needed by
// V-trace only; may be undefined otherwise).
LossTerms ComputeLossFromLogits(const torch::Tensor& logits, const torch::Tensor& values,
                                const TurnBatch& batch, const LossOptions& options,
                                const torch::Tensor& reference_log_probs,
                                const torch::Tensor& magnet_log_probs);

// V-trace targets over a batch of sequences that end at `dones` (the value after a done is 0; a
// last row that is not done is treated as done). Inputs are [T]: log pi/mu of the chosen
// actions, V(x_t), rewards, dones. Computed backwards, without gradient:
//   rho_t = min(rho_bar, pi/mu), c_t = lambda min(c_bar, pi/mu), log(pi/mu) clamped to
//   +-kMaxLogImportanceRatio,
//   v_s - V(x_s) = rho_s (r_s + gamma V(x_{s+1}) - V(x_s)) + gamma c_s (v_{s+1} - V(x_{s+1})).
struct VtraceReturns {
  torch::Tensor vs;             // [T] value targets v_s
  torch::Tensor pg_advantages;  // [T] rho_s (r_s + gamma v_{s+1} - V(x_s))
  torch::Tensor rhos;           // [T] truncated importance weights rho_s
};
VtraceReturns ComputeVtrace(const torch::Tensor& log_rhos, const torch::Tensor& values,
                            const torch::Tensor& rewards, const torch::Tensor& dones,
                            const LossOptions& options);

// Mean over rows of KL(p || q) = sum over legal actions of p (log p - log q). Rows of log-probs
// [N, A]; illegal actions add nothing whatever log q holds there (even -inf).
torch::Tensor MeanKl(const torch::Tensor& log_p, const torch::Tensor& log_q,
                     const torch::Tensor& legal_mask);

// Masked log pi(.|s_t) [T, num_actions] of `net` on the batch, without gradient: the reference
// and magnet policies' inputs to ComputeLoss.
torch::Tensor PolicyLogProbs(PolicyNet& net, const TurnBatch& batch);

// target <- decay * target + (1 - decay) * source, parameter by parameter, without gradient (an
// exponential moving average magnet). The nets must have the same architecture.
void UpdateEma(PolicyNet& target, PolicyNet& source, double decay);

}  // namespace rally
