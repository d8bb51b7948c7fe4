// Token-level policy-gradient losses of language-model policies (SPIRAL): a turn's prompt tokens
// are context, its generated tokens are the action; every generated token of a turn gets the
// turn's advantage, is weighted by an importance ratio against the behaviour log-probability the
// actor recorded, and counts once in the mean. The advantage is the role-conditioned one (RAE,
// common/rl/rae.h) under reinforce_rae and ppo, and V-trace's under vtrace, with a learned value
// of the turn's state (the learner's value head); a magnet term keeps the answer's distribution
// over the legal moves near uniform (magnetic mirror descent, common/rl/losses.h).
// Includes LibTorch: only the learner includes it.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "common/rl/losses.h"
#include "common/rl/rae.h"
#include "common/rl/reinforce.h"
#include "rally/v1/trajectory.pb.h"

namespace rally {

// The learning seats' token turns of a batch of episodes, one row per turn: the turn's
// observation_tokens then its action_tokens, right-padded with token 0. Rows are in episode order,
// and within an episode in play order.
//
// Position t of a row holds token t; the logits at position t - 1 predict it. action_mask[b, t]
// is 1 when token t of row b is a generated token that is trained on, else 0 (prompt, padding,
// and every token of a turn cut before its end token). Position 0 is never an action position
// (a token turn has a non-empty prompt). The turn's state is its last prompt token, position
// prompt_lengths[b] - 1: the value head reads it, and its logits give the answer's first token.
//
// V-trace runs along each learning seat's turns of an episode (a seat's sequence): sequence_order
// lists the rows sequence after sequence, each in play order; sequence_dones[k] is 1 where row
// sequence_order[k] is its sequence's last turn, which alone is rewarded (the seat's value).
struct TokenBatch {
  torch::Tensor tokens;               // [B, T] int64
  torch::Tensor lengths;              // [B] int64: prompt + action tokens of each row
  torch::Tensor prompt_lengths;       // [B] int64: prompt tokens of each row
  torch::Tensor action_mask;          // [B, T] float, 1 at trained action positions
  torch::Tensor advantages;           // [B] float: the turn's RAE advantage
  torch::Tensor returns;              // [B] float: the seat's value (objective) of the episode, G
  torch::Tensor behaviour_log_probs;  // [B, T] float: log mu of token t at action positions, else 0
  torch::Tensor sequence_order;       // [B] int64: rows grouped by (episode, seat), play order
  torch::Tensor sequence_dones;       // [B] float, in sequence_order
  // [B, vocab] bool: the tokens of the turn's legal answers (Turn.legal_actions of a token turn);
  // a row without them is all false. Undefined unless TokenBatchOptions::legal_answers.
  torch::Tensor legal_answers;
  int64_t episodes = 0;
  double mean_return = 0;     // over the learning seats' returns
  int64_t action_tokens = 0;  // the sum of action_mask: the loss's normaliser
  int64_t cut_turns = 0;      // turns masked out because they were cut before their end token
};

struct TokenBatchOptions {
  Objective objective = Objective::kReturn;
  // Whether a turn's answer ended (the actor stopped at the answer's end, the prompt style's end
  // token or string) rather than being cut at max_new_tokens. A cut turn's tokens are masked out
  // of the loss (SPIRAL). Null: no turn is taken to be cut.
  std::function<bool(const v1::Turn&)> answer_ended;
  int vocab = 0;        // token ids must lie in [0, vocab)
  int max_seq_len = 0;  // a row (prompt + action) must fit in it; 0: no bound
  // Fill TokenBatch::legal_answers from each turn's legal_actions (the magnet needs them; vocab
  // must then be positive).
  bool legal_answers = false;
};

// Tokens a batch spends on `episode`: the prompt and action tokens of its learning seats' turns.
// What learner.batch_tokens counts.
int64_t EpisodeTokens(const v1::Trajectory& episode);

// Packing a batch by tokens (learner.batch_tokens): whole episodes, in order, until the next
// would pass the budget; a batch takes at least one episode, however long.
class TokenBudget {
 public:
  explicit TokenBudget(int64_t budget) : budget_(budget) {}
  // Whether an episode of `tokens` (EpisodeTokens) joins the batch; if it does, it is counted.
  bool Take(int64_t tokens) {
    if (episodes_ > 0 && tokens_ + tokens > budget_) return false;
    tokens_ += tokens;
    ++episodes_;
    return true;
  }
  // No episode fits any more.
  bool full() const { return episodes_ > 0 && tokens_ >= budget_; }
  int64_t tokens() const { return tokens_; }

 private:
  int64_t budget_;
  int64_t tokens_ = 0;
  int64_t episodes_ = 0;
};

// Builds the rows of `episodes` (TokenBatch's order) and assigns every action token of a turn of
// role p the episode's RAE advantage for p, read and updated episode by episode in batch order,
// of `options.objective`'s value of the seat's return (as BuildTurnBatch does); that value is the
// row's `returns`. INVALID_ARGUMENT naming the episode and turn for a turn without prompt or
// action tokens, a behaviour_log_probs count other than the action tokens', a token (or legal
// answer token) out of the vocabulary, a row longer than max_seq_len, or a seat without a return.
absl::StatusOr<TokenBatch> BuildTokenBatch(const std::vector<const v1::Trajectory*>& episodes,
                                           RoleBaselines& baselines,
                                           const TokenBatchOptions& options);

// log pi(tokens[b, t] | tokens[b, < t]) [B, T] from `logits` [B, T, V]: column t is the
// log-softmax of logits[:, t - 1] at tokens[:, t]; column 0 is 0. Differentiable.
torch::Tensor TokenLogProbs(const torch::Tensor& logits, const torch::Tensor& tokens);

// The token-level loss of `batch` from the model's `logits` [B, T, V] (one forward of
// batch.tokens), N = batch.action_tokens (at least 1), m the action mask, A_b the row's advantage,
// lp = TokenLogProbs, r = exp(lp - log mu) with the log-ratio clamped to +-kMaxLogImportanceRatio:
//   REINFORCE: policy = -(1/N) sum m * w * A_b * lp, w = min(rho_bar, r) detached (rho_bar <= 0:
//              w = 1);
//   PPO:       policy = -(1/N) sum m * min(r A_b, clip(r, 1 - eps, 1 + eps) A_b);
//   V-trace:   a turn is one step of its seat's sequence, its action the whole answer, so its
//              log-ratio is the sum of its trained tokens' log-ratios; ComputeVtrace
//              (common/rl/losses.h) over each sequence, rewards 0 but the seat's value G at its
//              last turn, with `values` [B] V(x_b) (the value head at the row's state) gives rho_b,
//              v_b and A_b = rho_b (r_b + gamma v_{b+1} - V(x_b)); then
//              policy = -(1/N) sum m * A_b * lp and value_loss = 0.5 * mean_b (v_b - V(x_b))^2
//              (targets without gradient), added as value_coef * value_loss. On-policy with
//              lambda = gamma = 1 (the default), v_b = G and A_b = G - V(x_b);
//   loss = policy - entropy_coef * (1/N) sum m * H(pi(.|prefix))
//               + kl_coef * (1/N) sum m * KL(pi(.|prefix) || pi_ref(.|prefix))
//               + magnet_coef * mean over magnet rows of KL(pi_L || uniform_L),
// the entropy and the KL exact over the vocabulary at each action position, the KL only when
// `reference_logits` ([B, T, V], the frozen reference's logits, no gradient) is defined.
// The magnet (only when batch.legal_answers is defined): at the answer's first token of each row
// whose first action position is trained and that has legal answers L, pi_L is the model's
// distribution renormalised over L's tokens, and KL(pi_L || uniform_L) = sum_L pi_L log pi_L +
// log |L|: the MLP's magnet (losses.h: KL to uniform over the legal actions of the masked
// policy) applied to the policy the answer token induces over the legal moves. It leaves the
// invalid mass to the forfeit's return, which the value baseline turns into a negative advantage
// as long as the state's value is above the forfeit's; a KL over the whole vocabulary to a magnet
// that is 0 outside L would be infinite. Logits at positions that predict no trained token (the
// prompt, padding, cut turns) contribute nothing to the policy, entropy, KL and magnet terms or
// their gradients, whatever (finite or not) they hold. Throws c10::Error for V-trace without
// `values` and for shape mismatches.
LossTerms TokenLoss(const torch::Tensor& logits, const TokenBatch& batch,
                    const LossOptions& options, const torch::Tensor& reference_logits,
                    const torch::Tensor& values = torch::Tensor());

}  // namespace rally
