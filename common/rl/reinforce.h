// REINFORCE with role-conditioned advantages (SPIRAL) and an entropy bonus, over a batch of
// turns flattened from whole episodes. Includes LibTorch: only the learner includes it.
#pragma once

#include <torch/torch.h>

#include <vector>

#include "absl/status/statusor.h"
#include "common/models/policy_net.h"
#include "common/rl/rae.h"
#include "rally/v1/trajectory.pb.h"

namespace rally {

// The learning seats' turns of a batch of episodes, one row per turn. Rows are grouped into
// sequences, one per (episode, seat): episodes in batch order, seats ascending within an
// episode, each seat's turns contiguous and in play order, the last row of each marked `dones`.
struct TurnBatch {
  torch::Tensor observations;         // [T, observation_size] float
  torch::Tensor legal_mask;           // [T, num_actions] bool
  torch::Tensor actions;              // [T] int64
  torch::Tensor advantages;           // [T] float
  torch::Tensor behaviour_log_probs;  // [T] float: log mu(a_t|s_t) recorded by the actor
  // [T] float: the seat's Turn.reward, plus at its last turn the rest of its return,
  // returns[seat] - (sum of its Turn.reward), so that a seat's rewards sum to its return.
  // Actors leave Turn.reward 0, so today the whole return lands on the seat's last turn.
  torch::Tensor rewards;
  // [T] bool: the seat's last turn in the episode; the value after it is 0. A truncated episode
  // is treated as terminal too (its returns are final: a game cut at its turn limit is scored).
  torch::Tensor dones;
  int64_t episodes = 0;
  double mean_return = 0;  // over the learning seats' returns
};

// The baseline role of `seat` in `episode`: the seat number when the latest policy played every
// seat ("0", "1"), and the
// seat with the opponent against a fixed opponent ("1/random"), so that easy games against a
// weak opponent do not inflate the self-play baseline (SPIRAL keys baselines by (game, role);
// rally adds the opponent to the role when seats are not all played by the learning policy).
// All snapshots of the pool share the role "<seat>/snapshot".
std::string BaselineRole(const v1::Trajectory& episode, int seat);

// What a seat's episode is worth to the learner (learner.objective).
enum class Objective {
  kReturn,  // the game's return
  kWin,     // 1 for a positive return, else 0: the win rate, a draw worth no more than a loss
};

// Flattens `episodes` into turns, ordered as TurnBatch says, and assigns every turn of role p the
// episode's RAE advantage for p (baselines are read, then updated, episode by episode in batch
// order). Advantages and rewards are of `objective`'s value of each seat's return; mean_return
// stays the game's.
absl::StatusOr<TurnBatch> BuildTurnBatch(const std::vector<const v1::Trajectory*>& episodes,
                                         int observation_size, int num_actions,
                                         RoleBaselines& baselines,
                                         Objective objective = Objective::kReturn);

// Bound on |log pi(a|s) - log mu(a|s)| before it is exponentiated into an importance ratio, in
// every loss (REINFORCE's weight, PPO's ratio, V-trace's rho and c). One turn whose recorded
// behaviour log-probability is extreme (-1e30 overflows exp to inf, and inf * 0 is NaN in the
// backward pass) would otherwise turn the whole batch's loss or gradient into inf or NaN. e^20
// (about 5e8) is far beyond any ratio that truncation or clipping keeps, so ordinary data is
// unaffected; the ratio's gradient is 0 outside the bound.
inline constexpr double kMaxLogImportanceRatio = 20;

// log pi - log mu clamped to [-kMaxLogImportanceRatio, kMaxLogImportanceRatio].
torch::Tensor ClampedLogRatio(const torch::Tensor& log_pi, const torch::Tensor& log_mu);

// The loss of one step and its terms, for metrics. Terms a loss does not use stay 0.
struct LossTerms {
  torch::Tensor loss;  // scalar, differentiable
  double policy_loss = 0;
  double entropy = 0;  // mean entropy of the policy over the batch's turns
  double mean_importance_weight = 0;
  double value_loss = 0;     // 0.5 * mean squared error of the value head (before value_coef)
  double kl = 0;             // mean KL(pi || pi_ref), when there is a reference policy
  double magnet_kl = 0;      // mean KL(pi || magnet)
  double clip_fraction = 0;  // PPO: share of turns with |r - 1| > clip_epsilon
};

// loss = -mean_t(w_t * A_t * log pi(a_t|s_t)) - entropy_coef * mean_t(H(pi(.|s_t))), with
// w_t = min(rho_bar, pi(a_t|s_t) / mu(a_t|s_t)) (no gradient through w_t; the log-ratio clamped
// to +-kMaxLogImportanceRatio): the truncated importance weight that corrects for actors acting
// with a policy a few versions older than the learner's (as V-trace truncates rho). Without it,
// REINFORCE on data a handful of versions stale collapses to a deterministic policy. rho_bar <= 0
// turns the correction off (w_t = 1).
LossTerms ReinforceLoss(PolicyNet& net, const TurnBatch& batch, double entropy_coef,
                        double rho_bar = 1.0);
// The same from the policy's masked log-probabilities [T, num_actions] (MaskedLogSoftmax).
LossTerms ReinforceLossFromLogProbs(const torch::Tensor& log_probs, const TurnBatch& batch,
                                    double entropy_coef, double rho_bar = 1.0);

}  // namespace rally
