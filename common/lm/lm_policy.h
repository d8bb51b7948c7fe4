// Exact evaluation of language-model policies on the small text games (common/games/text_game.h).
//
// Scoring. At a decision node of `player`, the model's probability of a legal move is the
// probability that generation produces exactly the move's canonical answer followed by the answer
// end: the prompt's tokens are Encode(prompt) (CompactPrompt or SpiralPrompt) and the answer's are
// Encode(CanonicalAnswer + AnswerEnd), tokenised SEPARATELY and concatenated, because generation
// appends its tokens after the prompt's tokens and never re-tokenises across the boundary (a BPE
// merge of the prompt's last bytes with the answer's first ones would describe a sequence that
// generation cannot produce). The move's log-probability is the teacher-forced sum, over the
// answer's tokens, of each token's log-probability under the distribution the sampler draws from
// after the tokens before it (sampling.h: temperature, top-k, top-p applied per step). Because the
// sampler transforms each step's distribution on its own, this is the sampled policy's probability
// for every SamplingOptions: without top-k/top-p, a log-softmax of logits / temperature in double
// (exact); with top-k alone, renormalised over the k highest logits (exact); with top-p, over the
// tokens SamplingDistribution keeps (exact but for tokens whose float probability underflows to 0
// there, which count as never drawn);
// greedy (temperature 0): probability 1 along the argmax path, 0 elsewhere.
//
// Invalid mass: 1 - sum of the legal moves' probabilities, clamped at >= 0. It counts every answer
// that is not a canonical one as invalid, so it is an upper bound on the probability of an answer
// ParseAnswer rejects: free text around a move, another spelling ("[bet]") or another tokenisation
// of the same bytes would parse, but is counted here as the forfeit. A model trained on canonical
// answers puts almost no mass there; the bound is what the exact figures below assume.
//
// Evaluation with the forfeit (two-player games; game_tree.h, exploitability.h). LmPolicyTable
// holds, per GameTree information state, the probability of each legal action and the invalid
// mass q. An invalid answer ends the game: the offender gets kForfeitOffenderReturn (-1.5), the
// opponent kForfeitOpponentReturn (+0.5). So at a decision node h of player o under the policy,
//   V_p(h) = sum_a pi(a) V_p(child a) + q * (p == o ? -1.5 : +0.5).
// The best responder plays legal moves only (it never forfeits); at the policy's nodes the
// forfeit mass pays it +0.5. Best responses are computed as in exploitability.h (deepest
// information state first, ties to the lowest action); the reach of a history is the product of
// chance and policy probabilities of the moves on the way, so forfeit mass leaves the tree.
//   NashConv = sum_i (BR_i - V_i(pi)),  exploitability = NashConv / 2,
// exactly rally's MLP definition with the forfeit added; with q = 0 everywhere both equal
// exploitability.h's. Forfeit makes the game non-zero-sum (the returns sum to -1). A NashConv term
// BR_i - V_i(pi) is >= 0 wherever the responder can always secure more than -1.5 by moves, as in
// Kuhn poker (folding loses at most 1) and TicTacToe (returns in [-1, 1]); in a game where some
// position is worth less than -1.5 to the player to move, the policy's forfeit there beats every
// move and a term can be negative.
//
// Invalid-answer rate: over self-play of the policy against itself, reach-weighted. per_decision
// = sum_h reach(h) q(h) / sum_h reach(h) over decision nodes h (the probability that a decision
// the policy meets is answered invalidly); per_game = sum_h reach(h) q(h) (the probability that a
// game ends by forfeit); max = the largest q over all information states.
//
// Thread safety: LmMoveScorer is immutable; Score may run from several threads (each call uses
// its own KV cache; Transformer::Extend allows that).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/eval/exploitability.h"
#include "common/eval/game_tree.h"
#include "common/eval/policy.h"
#include "common/games/text_game.h"
#include "common/lm/sampling.h"
#include "common/lm/tokenizer.h"
#include "common/lm/transformer.h"

namespace rally {

// One decision node's scores.
struct MoveScores {
  std::vector<int> actions;       // legal, ascending
  std::vector<double> log_probs;  // per action: log-probability of its answer (may be -inf)
  std::vector<double> probs;      // exp(log_probs)
  double invalid = 0;             // 1 - sum(probs), clamped at >= 0
  int prompt_tokens = 0;          // length of the prompt's encoding
};

class LmMoveScorer {
 public:
  // The pieces are borrowed and must outlive the scorer. `sampling` is the policy as it samples;
  // INVALID_ARGUMENT when ValidateSamplingOptions rejects it or the tokenizer's vocabulary is
  // larger than the model's.
  static absl::StatusOr<LmMoveScorer> Create(const Transformer* model, const Tokenizer* tokenizer,
                                             const Game* game, const TextRendering* rendering,
                                             PromptStyle style, SamplingOptions sampling = {});

  // The prompt `player` (the player to move) is given at decision node `state`: CompactPrompt
  // (kCompact) or SpiralPrompt (kSpiral).
  absl::StatusOr<std::string> Prompt(const State& state) const;
  // Token ids of the prompt, and of each legal action's answer (canonical answer + answer end),
  // encoded separately as the header explains; answers aligned with LegalActions().
  absl::StatusOr<std::vector<int32_t>> PromptTokens(const State& state) const;
  std::vector<std::vector<int32_t>> AnswerTokens(const State& state) const;

  // Scores every legal action at decision node `state`: the prompt runs once into a KV cache and
  // each answer is scored from it, the cache truncated back to the prompt between answers (a
  // KvCache cannot share one prompt among slots, so a batch of answers would re-run the prompt
  // once per answer). INVALID_ARGUMENT for a state that is not a decision node or a context
  // longer than the model's max_seq_len; INTERNAL for a model error.
  absl::StatusOr<MoveScores> Score(const State& state) const;

 private:
  LmMoveScorer() = default;
  // log p(answer[i] | prefix) summed over i, from the logits rows that precede each token.
  double AnswerLogProb(const torch::Tensor& first_row, const torch::Tensor& rest_rows,
                       const std::vector<int32_t>& answer) const;
  double TokenLogProb(const torch::Tensor& row, int32_t token) const;

  const Transformer* model_ = nullptr;
  const Tokenizer* tokenizer_ = nullptr;
  const Game* game_ = nullptr;
  const TextRendering* rendering_ = nullptr;
  PromptStyle style_ = PromptStyle::kCompact;
  SamplingOptions sampling_;
};

// Per GameTree information state (aligned with tree.information_states()): the probability of
// each legal action (aligned with its `actions`) and the invalid mass.
struct LmPolicyTable {
  std::vector<std::vector<double>> probs;
  std::vector<double> invalid;
};

// Scores every information state of `tree` (one member state each). Errors: Score's.
absl::StatusOr<LmPolicyTable> ScoreTree(const GameTree& tree, const LmMoveScorer& scorer);

// The table of a Policy (no invalid mass); GameTree::PolicyTable's errors.
absl::StatusOr<LmPolicyTable> TableFromPolicy(const GameTree& tree, const Policy& policy);

// INVALID_ARGUMENT unless `table` matches `tree` (sizes, probabilities in [0, 1], each
// information state's probabilities plus invalid mass summing to 1 within 1e-6) and the game has
// two players.
absl::Status ValidateLmPolicyTable(const GameTree& tree, const LmPolicyTable& table);

// The figures of the header, with the forfeit counted. Errors: ValidateLmPolicyTable's, and
// exploitability.h's best-response errors.
absl::StatusOr<std::vector<double>> ForfeitExpectedReturns(const GameTree& tree,
                                                           const LmPolicyTable& table);
absl::StatusOr<BestResponse> ForfeitBestResponse(const GameTree& tree, const LmPolicyTable& table,
                                                 int responder);
absl::StatusOr<double> ForfeitNashConv(const GameTree& tree, const LmPolicyTable& table);
absl::StatusOr<double> ForfeitExploitability(const GameTree& tree, const LmPolicyTable& table);

struct InvalidAnswerRate {
  double per_decision = 0;  // reach-weighted mean of q over the decision nodes self-play meets
  double per_game = 0;      // probability that a self-play game ends by forfeit
  double max = 0;           // largest q over all information states
  std::string max_key;      // the information state where it is
};
absl::StatusOr<InvalidAnswerRate> ComputeInvalidAnswerRate(const GameTree& tree,
                                                           const LmPolicyTable& table);

// The table as a Policy over legal moves, conditioned on a valid answer (each information state's
// probabilities divided by their sum; uniform where the sum is 0), for the tools that need a
// Policy (export-policy, play). The exact figures must use the Forfeit* functions, which count the
// invalid mass; this view drops it. Keys: InformationStateString.
class LmTablePolicy final : public Policy {
 public:
  LmTablePolicy(const GameTree& tree, const LmPolicyTable& table);
  ActionsAndProbs ActionProbabilities(const State& state) const override;

 private:
  TabularPolicy tabular_;
};

}  // namespace rally
