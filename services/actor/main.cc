// rally-actor: plays the job's game with the latest policy. --mode=selfplay (default) streams
// self-play trajectories to the replay; --mode=eval plays the latest policy against the job's
// fixed opponents and reports the results to control.

#include <cmath>
#include <map>
#include <optional>
#include <random>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/config/job_config.h"
#include "common/eval/network_evaluation.h"
#include "common/games/registry.h"
#include "common/lm/tokenizer.h"
#include "common/lm/transformer.h"
#include "common/metrics/metrics.h"
#include "common/models/threads.h"
#include "common/net/control_client.h"
#include "common/net/server.h"
#include "common/net/worker_flags.h"
#include "common/util/log.h"
#include "common/util/memory.h"
#include "common/util/shutdown.h"
#include "common/util/usage.h"
#include "nlohmann/json.hpp"
#include "rally/v1/weights.grpc.pb.h"
#include "services/actor/generation_worker.h"
#include "services/actor/inference.h"
#include "services/actor/opponent_source.h"
#include "services/actor/selfplay.h"
#include "services/actor/snapshot_cache.h"
#include "services/actor/text_evaluation.h"
#include "services/actor/text_selfplay.h"
#include "services/actor/weight_subscriber.h"

ABSL_FLAG(std::string, mode, "selfplay", "selfplay | eval");
ABSL_FLAG(int, torch_threads, 1, "intra-op threads LibTorch may use");

using namespace rally;

namespace {

struct Report {
  std::mutex mu;
  std::string job_id;
  std::string error;
  std::vector<v1::EvalResult> evals;  // rounds not yet reported
};

absl::Status RunSelfPlayJob(const v1::Assignment& a, const JobConfig& config, const Game& game,
                            const std::string& name, ControlClient& control, LatestPolicy& latest,
                            prometheus::Registry& metrics, SelfPlayStats& stats) {
  if (a.endpoints().replay().empty()) return absl::FailedPreconditionError("no replay endpoint");
  // Spread actors over replay shards by index.
  const std::string& replay = a.endpoints().replay(a.index() % a.endpoints().replay_size());
  std::vector<std::string> tables;
  for (const ReplayTableConfig& t : config.replay.tables) tables.push_back(t.name);
  ReplayWriter writer(replay, tables, absl::StrCat(name, "/", a.job_id()),
                      config.actors.envs_per_actor, &metrics);
  LogInfo("inserting as producer", {{"actor_id", writer.actor_id()},
                                    {"incarnation", absl::StrCat(writer.incarnation())},
                                    {"replay", replay}});
  InferenceWorker inference(config.actors.max_batch,
                            std::chrono::microseconds(config.actors.batch_timeout_us),
                            static_cast<uint64_t>(config.seed) * 1000003 + a.index(), &metrics);
  std::string actor_id = absl::StrCat(name, "/", a.job_id());
  auto keep_running = [&] { return control.IsActive(a.job_id()) && !ShutdownRequested(); };
  // Environments may be blocked in the writer (replay full or gone) or the batcher: stopping
  // both when the job ends releases them.
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done && keep_running()) WaitForShutdown(std::chrono::milliseconds(100));
    writer.Stop();
    inference.Stop();
  });
  // With uniform or pfsp selection the curriculum (served by the first replay) picks opponents.
  std::unique_ptr<OpponentSource> opponents;
  if (config.curriculum.opponent_selection != "latest") {
    OpponentSourceOptions o;
    o.curriculum_address = a.endpoints().replay(0);
    o.weights_address = a.endpoints().weights();
    o.actor_id = actor_id;
    o.game = config.game.name;
    o.observation_size = game.ObservationSize();
    o.hidden = config.policy.hidden;
    o.num_actions = game.NumDistinctActions();
    o.batch = std::max(1, config.actors.envs_per_actor);
    o.cached_versions = config.learner.snapshot_pool_size;
    opponents = std::make_unique<OpponentSource>(std::move(o), &metrics);
    opponents->Start();
  }
  RunSelfPlay(config, game, actor_id, latest, inference, writer, keep_running, stats,
              opponents.get());
  done = true;
  watcher.join();
  if (opponents != nullptr) {
    opponents->Stop();
    OpponentSource::Counts c = opponents->counts();
    LogInfo("curriculum opponents", {{"picks", c.picks},
                                     {"picks_missed", c.empty},
                                     {"distinct_snapshots", c.distinct_snapshots},
                                     {"episodes_latest", stats.episodes_latest.load()},
                                     {"episodes_snapshot", stats.episodes_snapshot.load()},
                                     {"episodes_fixed", stats.episodes_fixed.load()},
                                     {"fetch_failures", c.fetch_failures},
                                     {"outcomes_reported", c.reported},
                                     {"outcomes_refused", c.refused}});
  }
  return absl::OkStatus();
}

// policy.kind transformer: the game is played as text by a language model on a generation worker.
// The model's shape comes from policy.transformer or from policy.from's config.json; its weights
// come from the weight service (safetensors of Transformer::ExportWeights), and no game starts
// before the first version has arrived.
absl::Status RunTextSelfPlayJob(const v1::Assignment& a, const JobConfig& config,
                                std::shared_ptr<const Game> game, const std::string& name,
                                ControlClient& control, prometheus::Registry& metrics,
                                SelfPlayStats& stats, std::atomic<int64_t>& version) {
  if (a.endpoints().replay().empty()) return absl::FailedPreconditionError("no replay endpoint");
  absl::StatusOr<TextPolicySetup> setup = LoadTextPolicySetup(config);
  if (!setup.ok()) return setup.status();
  const TransformerConfig& shape = setup->shape;
  std::unique_ptr<Tokenizer>& tokenizer = setup->tokenizer;
  absl::StatusOr<Transformer> model =
      Transformer::Create(shape, static_cast<uint64_t>(config.seed) + a.index());
  if (!model.ok()) return model.status();
  GenerationWorkerOptions options;
  options.max_batch = config.actors.max_batch;
  options.kv_cache_tokens =
      config.actors.kv_cache_tokens > 0
          ? config.actors.kv_cache_tokens
          : int64_t{std::max(1, config.actors.envs_per_actor)} * shape.max_seq_len;
  options.initial_version = -1;
  options.tokenizer = tokenizer.get();
  absl::StatusOr<std::unique_ptr<GenerationWorker>> worker =
      GenerationWorker::Create(*std::move(model), options);
  if (!worker.ok()) return worker.status();
  LogInfo("generation worker", {{"sequences", (*worker)->slots()},
                                {"sequence_capacity", (*worker)->sequence_capacity()}});

  WeightSubscriber weights(
      MakeChannel(a.endpoints().weights()), name,
      [&](int64_t v, std::string blob) -> absl::Status {
        absl::StatusOr<TensorSet> set = DecodeSafetensors(blob);
        if (!set.ok()) return set.status();
        (*worker)->PublishWeights(std::make_shared<TensorSet>(*std::move(set)), v);
        version = v;
        return absl::OkStatus();
      },
      metrics);
  weights.Start();
  auto keep_running = [&] { return control.IsActive(a.job_id()) && !ShutdownRequested(); };
  while (keep_running() && (*worker)->version() < 0) {
    WaitForShutdown(std::chrono::milliseconds(100));
  }
  const std::string& replay = a.endpoints().replay(a.index() % a.endpoints().replay_size());
  std::vector<std::string> tables;
  for (const ReplayTableConfig& t : config.replay.tables) tables.push_back(t.name);
  ReplayWriter writer(replay, tables, absl::StrCat(name, "/", a.job_id()),
                      config.actors.envs_per_actor, &metrics);
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done && keep_running()) WaitForShutdown(std::chrono::milliseconds(100));
    writer.Stop();
    (*worker)->Stop();
  });
  TextSelfPlayStats text_stats;
  std::atomic<bool> counting{true};
  std::thread counter([&] {  // the job's report counts episodes
    while (counting) {
      stats.episodes = text_stats.episodes.load();
      stats.episodes_latest = text_stats.episodes.load();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  RunTextSelfPlay(config, game, *tokenizer, **worker, writer, keep_running, text_stats);
  done = true;
  watcher.join();
  counting = false;
  counter.join();
  weights.Stop();
  LogInfo("text self-play", {{"episodes", text_stats.episodes.load()},
                             {"turns", text_stats.turns.load()},
                             {"forfeits", text_stats.forfeits.load()},
                             {"errors", text_stats.errors.load()}});
  return absl::OkStatus();
}

// Evaluation results as metrics: per opponent, the latest round's outcome shares and the
// cumulative game count by result.
void ExportRound(prometheus::Registry& registry, const v1::EvalResult& r) {
  auto& rate = prometheus::BuildGauge()
                   .Name("rally_evaluator_outcome_ratio")
                   .Help("Share of the latest round's games the policy won, drew or lost.")
                   .Register(registry);
  auto& games = prometheus::BuildCounter()
                    .Name("rally_evaluator_games_total")
                    .Help("Evaluation games played, by opponent and result.")
                    .Register(registry);
  auto& version = prometheus::BuildGauge()
                      .Name("rally_evaluator_policy_version")
                      .Help("Weight version of the latest evaluation round.")
                      .Register(registry);
  const double n = static_cast<double>(r.games());
  const std::pair<const char*, int64_t> outcomes[] = {
      {"win", r.wins()}, {"draw", r.draws()}, {"loss", r.losses()}};
  for (const auto& [result, count] : outcomes) {
    rate.Add({{"opponent", r.opponent()}, {"result", result}}).Set(count / n);
    games.Add({{"opponent", r.opponent()}, {"result", result}})
        .Increment(static_cast<double>(count));
  }
  version.Add({{"opponent", r.opponent()}}).Set(static_cast<double>(r.policy_version()));
}

absl::Status RunEvalJob(const v1::Assignment& a, const JobConfig& config, const Game& game,
                        ControlClient& control, LatestPolicy& latest, Report& report,
                        prometheus::Registry& registry) {
  std::vector<std::unique_ptr<Agent>> opponents;
  std::optional<GameTree> tree;
  for (const std::string& name : config.evaluation.opponents) {
    if (name == kBestResponse) {
      auto built = GameTree::Build(game);
      if (!built.ok()) return built.status();
      tree = std::move(*built);
      continue;
    }
    auto o = MakeOpponent(name, game);
    if (!o.ok()) return o.status();
    opponents.push_back(std::move(*o));
  }
  std::mt19937_64 rng(static_cast<uint64_t>(config.seed) * 7919 + 17);
  int64_t last_version = -1;
  auto last_round = std::chrono::steady_clock::now() - std::chrono::hours(1);
  auto started = std::chrono::steady_clock::now();
  // The league (evaluation.league_games > 0): the latest version against every snapshot in the
  // learner's pool, plus the fixed opponents' rounds; Elo over everything played so far.
  League league;
  SnapshotCache snapshots(a.endpoints().weights(), 64);
  auto weights_stub = v1::WeightService::NewStub(MakeChannel(a.endpoints().weights()));
  std::map<int64_t, std::shared_ptr<NetworkPolicy>> snapshot_policies;
  auto& elo_gauge = prometheus::BuildGauge()
                        .Name("rally_evaluator_elo")
                        .Help("Elo rating in the job's league (random = 0 when it plays).")
                        .Register(registry);
  auto PlayLeagueRound =
      [&](NetworkPolicy& policy,
          const std::vector<v1::EvalResult>& fixed) -> absl::StatusOr<v1::EvalResult> {
    const std::string me = League::Player(policy.version());
    for (const v1::EvalResult& r : fixed) league.Add(me, r);
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(std::chrono::seconds(10)));
    v1::ListSnapshotsResponse pool;
    grpc::Status listed = weights_stub->ListSnapshots(&ctx, v1::ListSnapshotsRequest(), &pool);
    if (!listed.ok()) return absl::UnavailableError("ListSnapshots: " + listed.error_message());
    v1::EvalResult out;
    out.set_opponent("league");
    out.set_policy_version(policy.version());
    out.set_greedy(config.evaluation.greedy);
    std::map<int64_t, std::shared_ptr<NetworkPolicy>> kept;
    for (const v1::SnapshotInfo& info : pool.snapshots()) {
      if (info.version() == policy.version()) continue;
      auto& built = snapshot_policies[info.version()];
      if (!built) {
        auto blob = snapshots.Get(info.version());
        if (!blob.ok()) continue;  // evicted since it was listed
        auto np = NetworkPolicy::FromWeights(game.ObservationSize(), config.policy.hidden,
                                             game.NumDistinctActions(), info.version(), **blob);
        if (!np.ok()) return np.status();
        built = *np;
      }
      kept[info.version()] = built;
      NetworkAgent agent(League::Player(info.version()), built);
      v1::EvalResult r = Evaluate(game, policy, agent, config.evaluation.league_games,
                                  config.evaluation.greedy, rng);
      league.Add(me, r);
      out.set_games(out.games() + r.games());
      out.set_wins(out.wins() + r.wins());
      out.set_draws(out.draws() + r.draws());
      out.set_losses(out.losses() + r.losses());
    }
    snapshot_policies = std::move(kept);
    if (league.matches() == 0) return absl::FailedPreconditionError("no league games yet");
    auto ratings = league.Ratings();
    if (!ratings.ok()) return ratings.status();
    out.set_elo((*ratings)[me]);
    nlohmann::json table = nlohmann::json::object();
    for (const auto& [player, rating] : *ratings) table[player] = std::round(rating);
    LogInfo("league", {{"policy_version", policy.version()},
                       {"elo", out.elo()},
                       {"snapshots", static_cast<int64_t>(snapshot_policies.size())},
                       {"ratings", table.dump()}});
    elo_gauge.Add({{"player", "latest"}}).Set(out.elo());
    for (const auto& [player, rating] : *ratings) {
      if (player.rfind("v", 0) != 0) elo_gauge.Add({{"player", player}}).Set(rating);
    }
    return out;
  };
  auto play_round = [&](NetworkPolicy& policy) {
    last_round = std::chrono::steady_clock::now();
    last_version = policy.version();
    std::vector<v1::EvalResult> round;
    for (const auto& opponent : opponents) {
      v1::EvalResult r =
          Evaluate(game, policy, *opponent, config.evaluation.games, config.evaluation.greedy, rng);
      r.set_wall_seconds(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      LogInfo("evaluation", {{"opponent", r.opponent()},
                             {"policy_version", r.policy_version()},
                             {"games", r.games()},
                             {"wins", r.wins()},
                             {"draws", r.draws()},
                             {"losses", r.losses()},
                             {"greedy", r.greedy()}});
      ExportRound(registry, r);
      round.push_back(r);
    }
    if (config.evaluation.league_games > 0) {
      if (auto r = PlayLeagueRound(policy, round); r.ok()) {
        r->set_wall_seconds(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        round.push_back(*r);
      } else {
        LogWarning("league round failed", {{"error", r.status().ToString()}});
      }
    }
    if (tree) {
      auto exact = EvaluateExactly(game, *tree, policy);
      if (exact.ok()) {
        exact->set_wall_seconds(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        LogInfo("evaluation", {{"opponent", kBestResponse},
                               {"policy_version", exact->policy_version()},
                               {"exploitability", exact->exploitability()}});
        prometheus::BuildGauge()
            .Name("rally_evaluator_exploitability")
            .Help("Exact exploitability (NashConv / 2) of the latest evaluated policy.")
            .Register(registry)
            .Add({})
            .Set(exact->exploitability());
        round.push_back(*exact);
      } else {
        LogError("exact evaluation failed", {{"error", exact.status().ToString()}});
      }
    }
    {
      std::lock_guard<std::mutex> lock(report.mu);
      report.evals.insert(report.evals.end(), round.begin(), round.end());
    }
    control.HeartbeatNow();
  };
  while (control.IsActive(a.job_id()) && !ShutdownRequested()) {
    auto policy = latest.Get();
    auto since = std::chrono::steady_clock::now() - last_round;
    if (policy == nullptr || policy->version() == last_version ||
        since < std::chrono::duration<double>(config.evaluation.every_seconds)) {
      WaitForShutdown(std::chrono::milliseconds(100));
      continue;
    }
    play_round(*policy);
  }
  // A job that ended before its first round still gets one, of the last weights received.
  if (last_version < 0) {
    if (auto policy = latest.Get()) play_round(*policy);
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  ListRallyFlagsInHelp();
  ParseWorkerFlags(argc, argv, "rally-actor: self-play or evaluation worker of a rally cluster");
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "selfplay" && mode != "eval") {
    std::fprintf(stderr, "--mode: must be selfplay or eval, not '%s'\n", mode.c_str());
    return 2;
  }
  const bool eval = mode == "eval";
  SetLogComponent(eval ? "evaluator" : "actor");
  RetainFreedMemory();
  InstallShutdownHandlers();
  SetComputeThreads(absl::GetFlag(FLAGS_torch_threads));

  auto metrics = MetricsServer::Start(absl::GetFlag(FLAGS_host), absl::GetFlag(FLAGS_metrics_port));
  if (!metrics.ok()) {
    LogError("cannot start metrics", {{"error", metrics.status().ToString()}});
    return 1;
  }
  auto& registry = (*metrics)->registry();
  auto& episodes_total = AddCounter(registry, "rally_actor_episodes_total", "Episodes finished.");
  auto& by_opponent = prometheus::BuildCounter()
                          .Name("rally_actor_episodes_by_opponent_total")
                          .Help(
                              "Episodes finished, by opponent kind: latest (every seat "
                              "learning), snapshot (a past policy), fixed (actors.opponents).")
                          .Register(registry);
  std::pair<prometheus::Counter*, int64_t> kind_counters[] = {
      {&by_opponent.Add({{"opponent_kind", "latest"}}), 0},
      {&by_opponent.Add({{"opponent_kind", "snapshot"}}), 0},
      {&by_opponent.Add({{"opponent_kind", "fixed"}}), 0}};
  std::string name = absl::GetFlag(FLAGS_name);
  if (name.empty()) name = eval ? "evaluator-0" : "actor-0";
  LogInfo("started", {{"name", name},
                      {"mode", mode},
                      {"metrics", (*metrics)->address()},
                      {"blas", BlasLibrary()}});

  v1::RegisterRequest reg;
  reg.set_role(eval ? v1::WORKER_ROLE_EVALUATOR : v1::WORKER_ROLE_ACTOR);
  reg.set_name(name);
  reg.set_metrics_address(AdvertisedAddress((*metrics)->port()));
  ControlClient control(absl::GetFlag(FLAGS_control), reg);
  Report report;
  SelfPlayStats stats;
  LatestPolicy latest;
  std::atomic<int64_t> version{-1};
  int64_t episodes_reported = 0;
  control.Start([&](v1::WorkerReport* r) {
    std::lock_guard<std::mutex> lock(report.mu);
    r->set_job_id(report.job_id);
    r->set_episodes(stats.episodes);
    r->set_policy_version(version);
    r->set_error(report.error);
    for (auto& e : report.evals) *r->add_evals() = e;
    report.evals.clear();
    episodes_total.Increment(static_cast<double>(stats.episodes - episodes_reported));
    episodes_reported = stats.episodes;
    const int64_t by_kind[] = {stats.episodes_latest, stats.episodes_snapshot,
                               stats.episodes_fixed};
    for (int k = 0; k < 3; ++k) {
      kind_counters[k].first->Increment(
          static_cast<double>(std::max<int64_t>(0, by_kind[k] - kind_counters[k].second)));
      kind_counters[k].second = by_kind[k];
    }
  });

  while (!ShutdownRequested()) {
    auto a = control.WaitForActiveAssignment(std::chrono::seconds(1));
    if (!a) continue;
    if (a->endpoints().weights().empty()) {
      WaitForShutdown(std::chrono::milliseconds(200));  // the learner has not registered yet
      continue;
    }
    auto config = ParseJobConfig(a->spec_yaml(), "job " + a->job_id());
    absl::Status s = config.status();
    std::shared_ptr<const Game> game;
    if (s.ok()) {
      auto g = LoadGame(config->game.name, config->game.params);
      s = g.status();
      if (g.ok()) game = *g;
    }
    {
      std::lock_guard<std::mutex> lock(report.mu);
      report.job_id = a->job_id();
    }
    {
      std::lock_guard<std::mutex> lock(report.mu);  // the report callback reads these
      stats.episodes = 0;
      stats.episodes_latest = 0;
      stats.episodes_snapshot = 0;
      stats.episodes_fixed = 0;
      episodes_reported = 0;
      for (auto& k : kind_counters) k.second = 0;
    }
    if (s.ok() && config->policy.is_transformer() && eval) {
      s = RunTextEvalJob(*a, *config, game, name, control, registry, [&](const v1::EvalResult& r) {
        {
          std::lock_guard<std::mutex> lock(report.mu);
          report.evals.push_back(r);
        }
        control.HeartbeatNow();
      });
    } else if (s.ok() && config->policy.is_transformer()) {
      s = RunTextSelfPlayJob(*a, *config, game, name, control, registry, stats, version);
    } else if (s.ok()) {
      latest.Clear();
      WeightSubscriber weights(a->endpoints().weights(), name, game->ObservationSize(),
                               config->policy.hidden, game->NumDistinctActions(), latest, registry);
      weights.Start();
      std::atomic<bool> tracking{true};
      std::thread version_tracker([&] {
        while (tracking) {
          version = weights.version();
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
      });
      s = eval ? RunEvalJob(*a, *config, *game, control, latest, report, registry)
               : RunSelfPlayJob(*a, *config, *game, name, control, latest, registry, stats);
      tracking = false;
      version_tracker.join();
      weights.Stop();
    }
    if (!s.ok()) {
      LogError("job failed", {{"job_id", a->job_id()}, {"error", s.ToString()}});
      std::lock_guard<std::mutex> lock(report.mu);
      report.error = s.ToString();
    }
    control.FlushReport();
    while (control.IsActive(a->job_id()) && !WaitForShutdown(std::chrono::milliseconds(200))) {
    }
    std::lock_guard<std::mutex> lock(report.mu);
    report.job_id.clear();
    report.error.clear();
  }
  control.Stop();
  LogInfo("stopped");
  return 0;
}
