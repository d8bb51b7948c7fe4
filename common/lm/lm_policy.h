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
// Evaluation with the forfeit (two-player games). An LmPolicyTable holds, per GameTree information
// state, the probability of each legal action and the invalid mass q as its forfeit mass; an
// invalid answer ends the game, the offender getting kForfeitOffenderReturn (-1.5) and the opponent
// kForfeitOpponentReturn (+0.5). Every exact figure (expected returns, best responses, NashConv,
// exploitability, worst-case returns) is common/eval/exploitability.h's for that table with those
// forfeit returns: the best responder plays legal moves only, the policy's invalid mass pays it
// +0.5, and with q = 0 everywhere each figure equals that of the policy without forfeit.
//
// Invalid-answer rate: exploitability.h's ForfeitRate of the table, over self-play of the policy
// against itself, reach-weighted: per_decision (the probability that a decision the policy meets
// is answered invalidly), per_game (the probability that a game ends by forfeit), max (the largest
// q over all information states).
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
#include "common/lm/lm_checkpoint.h"
#include "common/lm/sampling.h"
#include "common/lm/tokenizer.h"
#include "common/lm/transformer.h"
#include "nlohmann/json.hpp"

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

// Per GameTree information state: the probability of each legal action and, as `forfeit`, the
// invalid mass.
using LmPolicyTable = TreePolicyTable;

// Scores every information state of `tree` (one member state each). Errors: Score's.
absl::StatusOr<LmPolicyTable> ScoreTree(const GameTree& tree, const LmMoveScorer& scorer);

// Every information state of the scorer's game under `key` (CollectInformationStates: the first
// member state of each key) scored, as a TabularPolicy keyed by `key`: each legal move's
// probability and the invalid mass as the entry's forfeit. What `rally export-policy` writes.
// Errors: CollectInformationStates's and Score's, naming the key.
absl::StatusOr<TabularPolicy> ScoreInformationStates(const Game& game, const LmMoveScorer& scorer,
                                                     const TabularPolicy::KeyFunction& key);

// The sampling the job of a transformer checkpoint used, as its manifest records it: "temperature",
// "top_p" and "top_k" (the job spec's policy keys) where present, else the job spec's defaults
// (temperature 1, top_p 1, top_k 0). The learner's manifest records none of them today, so the
// defaults apply. DATA_LOSS naming the manifest and the key for a value of the wrong type or one
// ValidateSamplingOptions rejects.
absl::StatusOr<SamplingOptions> CheckpointSampling(const LmCheckpoint& checkpoint);

// `rally export-policy` of a transformer checkpoint whose game is `game` (the manifest's, built
// with its game_params): ScoreInformationStates under the game's classic notation
// (games/policy_notation.h), the manifest's "prompt" style (compact if absent) and
// CheckpointSampling, written by PolicyToJson (common/eval/policy_json.h) with each state's invalid
// mass and the invalid-answer rate. INVALID_ARGUMENT for a game without a notation or a text
// rendering; DATA_LOSS naming the weights file when they do not load; INTERNAL for a model error.
absl::StatusOr<nlohmann::json> ExportLmPolicy(const LmCheckpoint& checkpoint, const Game& game);

// ValidateTreePolicyTable's errors, and INVALID_ARGUMENT unless the game has two players.
absl::Status ValidateLmPolicyTable(const GameTree& tree, const LmPolicyTable& table);

// exploitability.h's Exploitability of the table with the forfeit returns of the header, what the
// evaluator's best_response round reports. Errors: ValidateLmPolicyTable's and Exploitability's.
absl::StatusOr<double> ForfeitExploitability(const GameTree& tree, const LmPolicyTable& table);

using InvalidAnswerRate = ForfeitRate;
// The invalid-answer rate of the header. Errors: ValidateLmPolicyTable's.
absl::StatusOr<InvalidAnswerRate> ComputeInvalidAnswerRate(const GameTree& tree,
                                                           const LmPolicyTable& table);

}  // namespace rally
