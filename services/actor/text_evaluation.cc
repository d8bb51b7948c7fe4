#include "services/actor/text_evaluation.h"

#include <chrono>
#include <mutex>
#include <optional>

#include "common/eval/game_tree.h"
#include "common/games/registry.h"
#include "common/games/text_game.h"
#include "common/lm/game_tokenizer.h"
#include "common/lm/hf_checkpoint.h"
#include "common/lm/lm_policy.h"
#include "common/lm/transformer.h"
#include "common/net/server.h"
#include "common/util/log.h"
#include "common/util/shutdown.h"
#include "prometheus/gauge.h"
#include "services/actor/weight_subscriber.h"

namespace rally {

absl::StatusOr<TextPolicySetup> LoadTextPolicySetup(const JobConfig& config) {
  TextPolicySetup setup;
  setup.shape = config.policy.transformer;
  std::string tokenizer_path = config.policy.tokenizer;
  if (!config.policy.from.empty()) {
    absl::StatusOr<HfModel> hf = LoadHfDirectory(config.policy.from);
    if (!hf.ok()) return hf.status();
    setup.shape = hf->config;
    if (tokenizer_path.empty()) tokenizer_path = hf->tokenizer_path;
  }
  absl::StatusOr<PromptStyle> style = ParsePromptStyle(config.policy.prompt);
  if (!style.ok()) return style.status();
  absl::StatusOr<std::shared_ptr<const Game>> game = LoadGame(config.game.name, config.game.params);
  if (!game.ok()) return game.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      OpenTokenizer(tokenizer_path, **game, *style);
  if (!tokenizer.ok()) return tokenizer.status();
  setup.tokenizer = *std::move(tokenizer);
  return setup;
}

namespace {

// The newest weights the weight service sent, handed from its stream to the evaluator's thread.
class LatestWeights {
 public:
  void Set(int64_t version, TensorSet weights) {
    std::lock_guard<std::mutex> lock(mu_);
    version_ = version;
    weights_ = std::make_shared<TensorSet>(std::move(weights));
  }
  std::pair<int64_t, std::shared_ptr<const TensorSet>> Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return {version_, weights_};
  }

 private:
  mutable std::mutex mu_;
  int64_t version_ = -1;
  std::shared_ptr<const TensorSet> weights_;
};

// One exact round: the model with `weights` scores every information state of `tree`.
absl::StatusOr<v1::EvalResult> ExactRound(Transformer& model, const TensorSet& weights,
                                          int64_t version, const LmMoveScorer& scorer,
                                          const GameTree& tree) {
  if (absl::Status s = model.LoadWeights(weights); !s.ok()) return s;
  absl::StatusOr<LmPolicyTable> table = ScoreTree(tree, scorer);
  if (!table.ok()) return table.status();
  absl::StatusOr<double> exploitability = ForfeitExploitability(tree, *table);
  if (!exploitability.ok()) return exploitability.status();
  absl::StatusOr<InvalidAnswerRate> invalid = ComputeInvalidAnswerRate(tree, *table);
  if (!invalid.ok()) return invalid.status();
  v1::EvalResult r;
  r.set_opponent("best_response");
  r.set_policy_version(version);
  r.set_exploitability(*exploitability);
  r.set_invalid_answer_rate(invalid->per_decision);
  return r;
}

}  // namespace

absl::Status RunTextEvalJob(const v1::Assignment& a, const JobConfig& config,
                            std::shared_ptr<const Game> game, const std::string& name,
                            ControlClient& control, prometheus::Registry& metrics,
                            const std::function<void(const v1::EvalResult&)>& publish) {
  absl::StatusOr<TextPolicySetup> setup = LoadTextPolicySetup(config);
  if (!setup.ok()) return setup.status();
  absl::StatusOr<PromptStyle> style = ParsePromptStyle(config.policy.prompt);
  if (!style.ok()) return style.status();
  absl::StatusOr<const TextRendering*> rendering = FindTextRendering(game->Name());
  if (!rendering.ok()) return rendering.status();
  absl::StatusOr<GameTree> tree = GameTree::Build(*game);
  if (!tree.ok()) return tree.status();
  absl::StatusOr<Transformer> model = Transformer::Create(setup->shape, 1);
  if (!model.ok()) return model.status();
  const SamplingOptions sampling{config.policy.temperature, config.policy.top_k,
                                 config.policy.top_p};
  absl::StatusOr<LmMoveScorer> scorer = LmMoveScorer::Create(
      &*model, setup->tokenizer.get(), game.get(), *rendering, *style, sampling);
  if (!scorer.ok()) return scorer.status();

  auto& exploitability_gauge =
      prometheus::BuildGauge()
          .Name("rally_evaluator_exploitability")
          .Help("Exact exploitability (NashConv / 2) of the latest evaluated policy.")
          .Register(metrics)
          .Add({});
  auto& invalid_gauge =
      prometheus::BuildGauge()
          .Name("rally_evaluator_invalid_answer_ratio")
          .Help(
              "Language-model policies: reach-weighted probability that an answer in "
              "self-play is invalid (a forfeit), at the latest evaluated version.")
          .Register(metrics)
          .Add({});
  LatestWeights latest;
  WeightSubscriber weights(
      MakeChannel(a.endpoints().weights()), name,
      [&](int64_t v, std::string blob) -> absl::Status {
        absl::StatusOr<TensorSet> set = DecodeSafetensors(blob);
        if (!set.ok()) return set.status();
        latest.Set(v, *std::move(set));
        return absl::OkStatus();
      },
      metrics);
  weights.Start();

  const auto started = std::chrono::steady_clock::now();
  auto last_round = started - std::chrono::hours(1);
  int64_t last_version = -1;
  auto play_round = [&](int64_t version, const TensorSet& set) {
    last_round = std::chrono::steady_clock::now();
    last_version = version;
    absl::StatusOr<v1::EvalResult> r = ExactRound(*model, set, version, *scorer, *tree);
    if (!r.ok()) {
      LogError("exact evaluation failed", {{"error", r.status().ToString()}});
      return;
    }
    r->set_wall_seconds(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    LogInfo("evaluation", {{"opponent", r->opponent()},
                           {"policy_version", version},
                           {"exploitability", r->exploitability()},
                           {"invalid_answer_rate", r->invalid_answer_rate()}});
    exploitability_gauge.Set(r->exploitability());
    invalid_gauge.Set(r->invalid_answer_rate());
    publish(*r);
  };
  const std::chrono::duration<double> every(config.evaluation.every_seconds);
  while (control.IsActive(a.job_id()) && !ShutdownRequested()) {
    auto [version, set] = latest.Get();
    if (set == nullptr || version == last_version ||
        std::chrono::steady_clock::now() - last_round < every) {
      WaitForShutdown(std::chrono::milliseconds(100));
      continue;
    }
    play_round(version, *set);
  }
  if (last_version < 0) {
    auto [version, set] = latest.Get();
    if (set != nullptr) play_round(version, *set);
  }
  return absl::OkStatus();
}

}  // namespace rally
