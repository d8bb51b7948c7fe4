// The language-model policy of a job (policy.kind transformer), as the actor and the evaluator
// build it, and the evaluator's rounds for it.
//
// Evaluation of a language-model policy is exact (common/lm/lm_policy.h): each round the latest
// weights score every legal move's canonical answer at every information state of the game, the
// rest of the probability being an invalid answer, which forfeits; the round reports the
// exploitability with that forfeit counted (opponent "best_response") and the invalid-answer
// rate. Played games against fixed opponents are not served for language-model policies; the job
// spec allows only best_response for them.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/config/job_config.h"
#include "common/eval/agent.h"
#include "common/eval/game_tree.h"
#include "common/games/game.h"
#include "common/lm/lm_policy.h"
#include "common/lm/model_config.h"
#include "common/lm/tokenizer.h"
#include "common/net/control_client.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "rally/v1/control.pb.h"
#include "services/actor/generation_worker.h"
#include "services/actor/text_selfplay.h"

namespace rally {

// The model's shape (policy.transformer, or policy.from's config.json) and tokenizer ("byte",
// "game", policy.tokenizer's file, or policy.from's tokenizer.json: OpenTokenizer). Errors name the
// file that failed to load.
struct TextPolicySetup {
  TransformerConfig shape;
  std::unique_ptr<Tokenizer> tokenizer;
};
absl::StatusOr<TextPolicySetup> LoadTextPolicySetup(const JobConfig& config);

// One played round: `games` games of the weights `worker` holds (its version is the result's
// policy_version) against `opponent`, the model's seat alternating (seat 0 in even games), played
// as actors play them (PlayTextEpisode with `options`, 16 games at a time). Won, drawn or lost by
// the sign of the model's return; an invalid answer is the forfeit it is (a loss), and
// invalid_answer_rate is the model's forfeits over its answers. The first game error is returned.
absl::StatusOr<v1::EvalResult> PlayTextEvalRound(std::shared_ptr<const Game> game,
                                                 const Tokenizer& tokenizer,
                                                 GenerationWorker& worker, const Agent& opponent,
                                                 const TextEpisodeOptions& options, int games,
                                                 uint64_t seed);

// The evaluator of a language-model job: for each of evaluation.opponents, "best_response" is
// the exact round (LmMoveScorer over the whole game tree: exploitability with invalid answers as
// forfeits, and the reach-weighted invalid-answer rate); every other name is a fixed opponent
// (MakeOpponent: random, perfect, alpha_beta_D, trader) played evaluation.games games per round
// through a generation worker of its own (PlayTextEvalRound; greedy when evaluation.greedy).
// Sets the metrics rally_evaluator_exploitability, rally_evaluator_invalid_answer_ratio and
// rally_evaluator_win_rate (by opponent). Not thread-safe.
class TextEvaluator {
 public:
  // Errors: the policy's model or tokenizer cannot be set up, an unknown opponent, a game tree
  // too large for best_response.
  static absl::StatusOr<std::unique_ptr<TextEvaluator>> Create(const JobConfig& config,
                                                               std::shared_ptr<const Game> game,
                                                               prometheus::Registry& metrics);
  ~TextEvaluator();
  // One round of `weights` (the model's tensor names, F32) at `version`: a result per opponent
  // whose round succeeded (a failed one is logged and left out).
  std::vector<v1::EvalResult> Round(int64_t version, std::shared_ptr<const TensorSet> weights);

 private:
  TextEvaluator() = default;
  JobConfig config_;
  std::shared_ptr<const Game> game_;
  std::unique_ptr<Tokenizer> tokenizer_;
  // best_response: the tree, the model the scorer reads and the scorer.
  std::unique_ptr<GameTree> tree_;
  std::unique_ptr<Transformer> exact_model_;
  std::unique_ptr<LmMoveScorer> scorer_;
  // Fixed opponents, played through `worker_`.
  std::vector<std::unique_ptr<Agent>> opponents_;
  std::unique_ptr<GenerationWorker> worker_;
  TextEpisodeOptions episode_;
  prometheus::Gauge* exploitability_ = nullptr;
  prometheus::Family<prometheus::Gauge>* invalid_ = nullptr;
  prometheus::Family<prometheus::Gauge>* win_rate_ = nullptr;
};

// Runs the evaluator for a language-model job until the job ends or shutdown: a round whenever a
// new version has arrived and evaluation.every_seconds have passed since the last, and one
// round of the last weights received if the job ended before the first. Each round's result
// goes to `publish` (from this thread).
absl::Status RunTextEvalJob(const v1::Assignment& a, const JobConfig& config,
                            std::shared_ptr<const Game> game, const std::string& name,
                            ControlClient& control, prometheus::Registry& metrics,
                            const std::function<void(const v1::EvalResult&)>& publish);

}  // namespace rally
