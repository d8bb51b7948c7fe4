#include "services/actor/text_evaluation.h"

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <thread>

#include "common/eval/game_tree.h"
#include "common/eval/opponents.h"
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

// Games a played round runs at once (threads sharing the generation worker).
constexpr int kParallelGames = 16;

}  // namespace

absl::StatusOr<v1::EvalResult> PlayTextEvalRound(std::shared_ptr<const Game> game,
                                                 const Tokenizer& tokenizer,
                                                 GenerationWorker& worker, const Agent& opponent,
                                                 const TextEpisodeOptions& options, int games,
                                                 uint64_t seed) {
  std::mutex mu;
  v1::EvalResult r;
  r.set_opponent(opponent.name());
  r.set_greedy(options.sampling.temperature == 0);
  r.set_policy_version(worker.version());
  int64_t answers = 0;
  int64_t forfeits = 0;
  absl::Status error = absl::OkStatus();
  std::atomic<int> next{0};
  auto play = [&](int thread) {
    std::mt19937_64 rng(seed + static_cast<uint64_t>(thread) * 0x9e3779b97f4a7c15ULL);
    for (int g = next++; g < games; g = next++) {
      TextEpisodeOptions game_options = options;
      game_options.opponent = &opponent;
      game_options.opponent_seat = (g + 1) % 2;  // the model plays seat 0 in even games
      const int seat = g % 2;
      int forfeited_by = -1;
      absl::StatusOr<v1::Trajectory> t =
          PlayTextEpisode(game, tokenizer, worker, game_options, rng, &forfeited_by);
      std::lock_guard<std::mutex> lock(mu);
      if (!t.ok()) {
        if (error.ok()) error = t.status();
        return;
      }
      const float ret = t->returns(seat);
      r.set_games(r.games() + 1);
      if (ret > 0) r.set_wins(r.wins() + 1);
      if (ret == 0) r.set_draws(r.draws() + 1);
      if (ret < 0) r.set_losses(r.losses() + 1);
      answers += t->turns_size();
      if (forfeited_by == seat) ++forfeits;
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < std::min(games, kParallelGames); ++i) threads.emplace_back(play, i);
  for (std::thread& t : threads) t.join();
  if (!error.ok()) return error;
  r.set_invalid_answer_rate(answers > 0 ? static_cast<double>(forfeits) / answers : 0.0);
  return r;
}

absl::StatusOr<std::unique_ptr<TextEvaluator>> TextEvaluator::Create(
    const JobConfig& config, std::shared_ptr<const Game> game, prometheus::Registry& metrics) {
  auto e = std::unique_ptr<TextEvaluator>(new TextEvaluator());
  e->config_ = config;
  e->game_ = game;
  absl::StatusOr<TextPolicySetup> setup = LoadTextPolicySetup(config);
  if (!setup.ok()) return setup.status();
  e->tokenizer_ = std::move(setup->tokenizer);
  absl::StatusOr<PromptStyle> style = ParsePromptStyle(config.policy.prompt);
  if (!style.ok()) return style.status();
  absl::StatusOr<const TextRendering*> rendering = FindTextRendering(game->Name());
  if (!rendering.ok()) return rendering.status();
  const SamplingOptions sampling{config.evaluation.greedy ? 0.0 : config.policy.temperature,
                                 config.policy.top_k, config.policy.top_p};
  for (const std::string& name : config.evaluation.opponents) {
    if (name == "best_response") {
      absl::StatusOr<GameTree> tree = GameTree::Build(*game);
      if (!tree.ok()) return tree.status();
      e->tree_ = std::make_unique<GameTree>(*std::move(tree));
      absl::StatusOr<Transformer> model = Transformer::Create(setup->shape, 1);
      if (!model.ok()) return model.status();
      e->exact_model_ = std::make_unique<Transformer>(*std::move(model));
      absl::StatusOr<LmMoveScorer> scorer = LmMoveScorer::Create(
          e->exact_model_.get(), e->tokenizer_.get(), game.get(), *rendering, *style, sampling);
      if (!scorer.ok()) return scorer.status();
      e->scorer_ = std::make_unique<LmMoveScorer>(*std::move(scorer));
      continue;
    }
    absl::StatusOr<std::unique_ptr<Agent>> opponent = MakeOpponent(name, *game);
    if (!opponent.ok()) return opponent.status();
    e->opponents_.push_back(*std::move(opponent));
  }
  if (!e->opponents_.empty()) {
    absl::StatusOr<Transformer> model = Transformer::Create(setup->shape, 1);
    if (!model.ok()) return model.status();
    GenerationWorkerOptions options;
    options.max_batch = kParallelGames * 2;
    options.kv_cache_tokens = int64_t{kParallelGames} * 2 * setup->shape.max_seq_len;
    options.initial_version = -1;
    options.tokenizer = e->tokenizer_.get();
    absl::StatusOr<std::unique_ptr<GenerationWorker>> worker =
        GenerationWorker::Create(*std::move(model), options);
    if (!worker.ok()) return worker.status();
    e->worker_ = *std::move(worker);
  }
  e->episode_.style = *style;
  e->episode_.sampling = sampling;
  e->episode_.max_new_tokens = config.policy.max_new_tokens;
  e->episode_.max_turns = config.policy.max_turns;
  e->exploitability_ = &prometheus::BuildGauge()
                            .Name("rally_evaluator_exploitability")
                            .Help(
                                "Exact exploitability (NashConv / 2) of the latest evaluated "
                                "policy.")
                            .Register(metrics)
                            .Add({});
  e->invalid_ = &prometheus::BuildGauge()
                     .Name("rally_evaluator_invalid_answer_ratio")
                     .Help(
                         "Language-model policies: the share of answers that were invalid (a "
                         "forfeit) at the latest evaluated version, by opponent: reach-weighted "
                         "in self-play for best_response, counted in the games played otherwise.")
                     .Register(metrics);
  e->win_rate_ = &prometheus::BuildGauge()
                      .Name("rally_evaluator_win_rate")
                      .Help(
                          "Share of the last round's games the evaluated policy won, by "
                          "opponent.")
                      .Register(metrics);
  return e;
}

TextEvaluator::~TextEvaluator() = default;

std::vector<v1::EvalResult> TextEvaluator::Round(int64_t version,
                                                 std::shared_ptr<const TensorSet> weights) {
  std::vector<v1::EvalResult> results;
  if (tree_ != nullptr) {
    absl::StatusOr<v1::EvalResult> r =
        ExactRound(*exact_model_, *weights, version, *scorer_, *tree_);
    if (r.ok()) {
      exploitability_->Set(r->exploitability());
      results.push_back(*std::move(r));
    } else {
      LogError("exact evaluation failed", {{"error", r.status().ToString()}});
    }
  }
  if (worker_ != nullptr) {
    worker_->PublishWeights(weights, version);
    if (!worker_->WaitForVersion(version, absl::Seconds(60))) {
      LogError("evaluation weights not applied",
               {{"policy_version", version}, {"error", worker_->last_weights_error().ToString()}});
      return results;
    }
    for (const std::unique_ptr<Agent>& opponent : opponents_) {
      absl::StatusOr<v1::EvalResult> r = PlayTextEvalRound(
          game_, *tokenizer_, *worker_, *opponent, episode_, config_.evaluation.games,
          static_cast<uint64_t>(config_.seed) + version);
      if (!r.ok()) {
        LogError("played evaluation failed",
                 {{"opponent", opponent->name()}, {"error", r.status().ToString()}});
        continue;
      }
      win_rate_->Add({{"opponent", r->opponent()}})
          .Set(r->games() > 0 ? static_cast<double>(r->wins()) / r->games() : 0.0);
      results.push_back(*std::move(r));
    }
  }
  for (const v1::EvalResult& r : results) {
    invalid_->Add({{"opponent", r.opponent()}}).Set(r.invalid_answer_rate());
  }
  return results;
}

absl::Status RunTextEvalJob(const v1::Assignment& a, const JobConfig& config,
                            std::shared_ptr<const Game> game, const std::string& name,
                            ControlClient& control, prometheus::Registry& metrics,
                            const std::function<void(const v1::EvalResult&)>& publish) {
  absl::StatusOr<std::unique_ptr<TextEvaluator>> evaluator =
      TextEvaluator::Create(config, game, metrics);
  if (!evaluator.ok()) return evaluator.status();
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
  auto play_round = [&](int64_t version, std::shared_ptr<const TensorSet> set) {
    last_round = std::chrono::steady_clock::now();
    last_version = version;
    for (v1::EvalResult& r : (*evaluator)->Round(version, std::move(set))) {
      r.set_wall_seconds(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      LogInfo("evaluation", {{"opponent", r.opponent()},
                             {"policy_version", version},
                             {"exploitability", r.exploitability()},
                             {"games", r.games()},
                             {"wins", r.wins()},
                             {"draws", r.draws()},
                             {"losses", r.losses()},
                             {"invalid_answer_rate", r.invalid_answer_rate()}});
      publish(r);
    }
  };
  const std::chrono::duration<double> every(config.evaluation.every_seconds);
  while (control.IsActive(a.job_id()) && !ShutdownRequested()) {
    auto [version, set] = latest.Get();
    if (set == nullptr || version == last_version ||
        std::chrono::steady_clock::now() - last_round < every) {
      WaitForShutdown(std::chrono::milliseconds(100));
      continue;
    }
    play_round(version, set);
  }
  if (last_version < 0) {
    auto [version, set] = latest.Get();
    if (set != nullptr) play_round(version, set);
  }
  return absl::OkStatus();
}

}  // namespace rally
