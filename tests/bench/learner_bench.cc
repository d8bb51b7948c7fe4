// learner_bench: the learner's training throughput with batches arriving from a live rally-replay
// over gRPC (the trainer's input pipeline: credit-based sample streams, decoding on a background
// thread), divided by the throughput of the bare training step (forward, backward, Adam) on the
// same model and an already decoded batch, measured in the same run. Goal: ratio >= 0.9.
//
//   learner_bench [--steps N] [--rounds R] [--json FILE]
//
// The replay holds random-play TicTacToe episodes in a uniform table (items are sampled with
// replacement, so the table never runs dry). Models: the default config's MLP (128x128) and a
// wider one (512x512); batches of 128 episodes; one LibTorch thread, as the learner runs.
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <thread>

#include "common/games/registry.h"
#include "common/models/threads.h"
#include "common/net/server.h"
#include "common/rl/losses.h"
#include "rally/v1/replay.grpc.pb.h"
#include "services/actor/replay_writer.h"
#include "services/learner/batch_source.h"
#include "tests/bench/bench_util.h"
#include "tests/integration/process.h"

using namespace rally;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kBatchEpisodes = 128;
constexpr int kEpisodes = 4096;

// One uniformly random TicTacToe game, recorded as an actor records self-play.
v1::Trajectory RandomEpisode(const Game& game, uint64_t sequence, std::mt19937_64& rng) {
  v1::Trajectory t;
  t.set_game("tictactoe");
  t.set_opponent_id("latest");
  t.set_actor_id("bench");
  t.set_incarnation(1);
  t.set_sequence(sequence);
  t.add_learning_seats(0);
  t.add_learning_seats(1);
  auto state = game.NewInitialState();
  std::vector<float> obs(game.ObservationSize());
  while (!state->IsTerminal()) {
    const int player = state->CurrentPlayer();
    std::vector<int> legal = state->LegalActions();
    v1::Turn* turn = t.add_turns();
    turn->set_seat(player);
    state->ObservationTensor(player, obs);
    for (float f : obs) turn->add_observation(f);
    for (int a : legal) turn->add_legal_actions(a);
    int action = legal[std::uniform_int_distribution<size_t>(0, legal.size() - 1)(rng)];
    turn->set_action(action);
    turn->add_behaviour_log_probs(static_cast<float>(-std::log(legal.size())));
    state->ApplyAction(action);
  }
  for (double r : state->Returns()) t.add_returns(r);
  return t;
}

using Cluster = bench::ReplayCluster;

Cluster StartFilledReplay(const Game& game) {
  Cluster c = bench::StartReplayCluster(
      "learner",
      "game: tictactoe\nstop: {max_wall_seconds: 3600}\n"
      "replay:\n  fsync: never\n  snapshot_every_seconds: 0\n"
      "  tables: [{name: bench, sampler: uniform, remover: fifo, max_times_sampled: 0,\n"
      "            rate_limiter: min_size, max_size: 100000}]\n",
      /*wal=*/false);
  ReplayWriter writer(c.replay_address, {"bench"}, "bench", 256, nullptr);
  std::mt19937_64 rng(7);
  for (int i = 0; i < kEpisodes; ++i) {
    if (!writer.Push(RandomEpisode(game, i, rng))) std::abort();
  }
  for (int i = 0; i < 1000 && writer.acked() < kEpisodes; ++i) std::this_thread::sleep_for(10ms);
  writer.Stop();
  return c;
}

struct Trainer {
  PolicyNet net;
  torch::optim::Adam optimiser;
  LossOptions options;
  Trainer(const Game& game, std::vector<int> hidden)
      : net(game.ObservationSize(), hidden, game.NumDistinctActions()),
        optimiser(net->parameters(), torch::optim::AdamOptions(1e-4)) {
    options.entropy_coef = 0.01;
  }
  void Step(const TurnBatch& batch) {
    optimiser.zero_grad();
    ComputeLoss(net, batch, options, {}, {}).loss.backward();
    optimiser.step();
  }
};

// Episodes per second of `steps` bare training steps on one decoded batch.
double BareRate(const Game& game, const std::vector<int>& hidden, const TurnBatch& batch,
                int steps) {
  Trainer trainer(game, hidden);
  for (int i = 0; i < 5; ++i) trainer.Step(batch);
  auto t0 = Clock::now();
  for (int i = 0; i < steps; ++i) trainer.Step(batch);
  return steps * batch.episodes / std::chrono::duration<double>(Clock::now() - t0).count();
}

// Episodes per second of `steps` training steps on batches from the live replay.
double LiveRate(const Game& game, const std::vector<int>& hidden, const Cluster& c, int steps) {
  Trainer trainer(game, hidden);
  std::atomic<int64_t> version{0};
  BatchSourceOptions o;
  o.replay_addresses = {c.replay_address};
  o.table = "bench";
  o.batch_episodes = kBatchEpisodes;
  o.observation_size = game.ObservationSize();
  o.num_actions = game.NumDistinctActions();
  BatchSource source(o, RoleBaselines(0.95), version, nullptr);
  auto next = [&] {
    auto b = source.Next();
    if (!b.ok() || !b->has_value()) std::abort();
    return std::move(**b);
  };
  for (int i = 0; i < 5; ++i) trainer.Step(next());
  int64_t episodes = 0;
  auto t0 = Clock::now();
  for (int i = 0; i < steps; ++i) {
    TurnBatch b = next();
    episodes += b.episodes;
    trainer.Step(b);
  }
  double rate = episodes / std::chrono::duration<double>(Clock::now() - t0).count();
  source.Cancel();
  source.Finish();
  return rate;
}

int FlagInt(int argc, char** argv, const std::string& name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = FlagInt(argc, argv, "steps", 200);
  const int rounds = FlagInt(argc, argv, "rounds", 5);
  SetComputeThreads(1);
  torch::manual_seed(1);
  auto game = LoadGame("tictactoe");
  if (!game.ok()) return 1;
  Cluster cluster = StartFilledReplay(**game);

  // One decoded batch for the bare step, built from the same kind of episodes.
  std::mt19937_64 rng(11);
  std::vector<v1::Trajectory> episodes;
  for (int i = 0; i < kBatchEpisodes; ++i) episodes.push_back(RandomEpisode(**game, i, rng));
  std::vector<const v1::Trajectory*> pointers;
  for (const auto& e : episodes) pointers.push_back(&e);
  RoleBaselines baselines(0.95);
  auto batch = BuildTurnBatch(pointers, (*game)->ObservationSize(), (*game)->NumDistinctActions(),
                              baselines);
  if (!batch.ok()) return 1;

  std::printf(
      "learner_bench: batches of %d TicTacToe episodes (~%lld turns), %d steps x %d "
      "rounds, 1 LibTorch thread, BLAS %s\n",
      kBatchEpisodes, static_cast<long long>(batch->actions.size(0)), steps, rounds,
      BlasLibrary().c_str());
  std::printf("%-10s %18s %18s %8s %6s\n", "model", "bare episodes/s", "live episodes/s", "ratio",
              "goal");
  nlohmann::json runs = nlohmann::json::array();
  for (const std::vector<int>& hidden : {std::vector<int>{128, 128}, std::vector<int>{512, 512}}) {
    std::vector<double> bare, live;
    // Interleaved rounds, so that load on the machine hits both measures alike.
    for (int r = 0; r < rounds; ++r) {
      bare.push_back(BareRate(**game, hidden, *batch, steps));
      live.push_back(LiveRate(**game, hidden, cluster, steps));
    }
    double b = bench::Median(bare), l = bench::Median(live);
    std::string name = std::to_string(hidden[0]) + "x" + std::to_string(hidden[1]);
    std::printf("%-10s %18.0f %18.0f %8.3f %6s\n", name.c_str(), b, l, l / b, ">=0.9");
    runs.push_back({{"model", name},
                    {"batch_episodes", kBatchEpisodes},
                    {"bare_samples_s", b},
                    {"live_samples_s", l},
                    {"ratio", l / b}});
  }
  // The headline figures are the default model's.
  nlohmann::json out = {{"bare_samples_s", runs[0]["bare_samples_s"]},
                        {"live_samples_s", runs[0]["live_samples_s"]},
                        {"ratio", runs[0]["ratio"]},
                        {"samples", "episodes"},
                        {"goal_ratio", 0.9},
                        {"blas", BlasLibrary()},
                        {"runs", runs}};
  if (std::string path = bench::JsonPath(argc, argv); !path.empty()) bench::WriteJson(path, out);
  return 0;
}
