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
#include "common/games/game.h"
#include "common/lm/model_config.h"
#include "common/lm/tokenizer.h"
#include "common/net/control_client.h"
#include "prometheus/registry.h"
#include "rally/v1/control.pb.h"

namespace rally {

// The model's shape (policy.transformer, or policy.from's config.json) and tokenizer ("byte",
// "game", policy.tokenizer's file, or policy.from's tokenizer.json: OpenTokenizer). Errors name the file that failed to load.
struct TextPolicySetup {
  TransformerConfig shape;
  std::unique_ptr<Tokenizer> tokenizer;
};
absl::StatusOr<TextPolicySetup> LoadTextPolicySetup(const JobConfig& config);

// Runs the evaluator for a language-model job until the job ends or shutdown: a round whenever a
// new version has arrived and evaluation.every_seconds have passed since the last, and one
// round of the last weights received if the job ended before the first. Each round's result
// goes to `publish` (from this thread).
absl::Status RunTextEvalJob(const v1::Assignment& a, const JobConfig& config,
                            std::shared_ptr<const Game> game, const std::string& name,
                            ControlClient& control, prometheus::Registry& metrics,
                            const std::function<void(const v1::EvalResult&)>& publish);

}  // namespace rally
