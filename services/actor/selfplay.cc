#include "services/actor/selfplay.h"

#include <algorithm>
#include <future>
#include <random>
#include <thread>
#include <vector>

#include "common/eval/opponents.h"
#include "common/util/log.h"

namespace rally {
namespace {

struct Env {
  std::unique_ptr<State> state;
  std::shared_ptr<NetworkPolicy> policy;
  const Agent* opponent = nullptr;  // a fixed opponent; nullptr: none
  int learning_seat = -1;           // the policy's seat when there is an opponent
  OpponentPick pick;                // the curriculum's pick; pick.policy: a snapshot opponent
  bool opponent_turn = false;       // the pending decision is the snapshot opponent's
  v1::Trajectory trajectory;
  std::future<absl::StatusOr<InferenceResponse>> pending;
  InferenceRequest* request = nullptr;
};

// Plays chance outcomes and the fixed opponent's moves until the learning policy is to move or
// the episode is over.
void AdvanceToLearner(Env& env, std::mt19937_64& rng) {
  State& s = *env.state;
  while (!s.IsTerminal()) {
    if (s.IsChanceNode()) {
      s.ApplyAction(SampleChanceOutcome(s, rng));
    } else if (env.opponent != nullptr && s.CurrentPlayer() != env.learning_seat) {
      s.ApplyAction(env.opponent->Act(s, rng));
    } else {
      return;
    }
  }
}

}  // namespace

void RunSelfPlay(const JobConfig& config, const Game& game, const std::string& actor_id,
                 LatestPolicy& latest, InferenceWorker& inference, ReplayWriter& writer,
                 const std::function<bool()>& keep_running, SelfPlayStats& stats,
                 OpponentSource* curriculum) {
  const int threads = std::min(config.actors.threads, config.actors.envs_per_actor);
  // Fixed opponents some episodes are played against; the rest is self-play.
  std::vector<std::unique_ptr<Agent>> opponents;
  std::vector<double> shares;
  double self_share = 1.0;
  for (const auto& [name, share] : config.actors.opponents) {
    auto o = MakeOpponent(name, game);
    if (!o.ok()) {
      LogError("cannot create opponent", {{"error", o.status().ToString()}});
      return;
    }
    opponents.push_back(std::move(*o));
    shares.push_back(share);
    self_share -= share;
  }
  shares.push_back(std::max(0.0, self_share));
  std::atomic<uint64_t> thread_seed{static_cast<uint64_t>(config.seed) * 0x9e3779b97f4a7c15ULL};
  std::atomic<bool> stop{false};
  auto worker = [&](int num_envs) {
    const int obs_size = game.ObservationSize();
    // Sends a finished episode to the replay; false once the writer has stopped.
    auto FinishEpisode = [&](Env& env) {
      std::vector<double> returns = env.state->Returns();
      for (double r : returns) env.trajectory.add_returns(static_cast<float>(r));
      env.state.reset();
      if (curriculum != nullptr && env.pick.from_curriculum) {
        curriculum->Report(env.pick, returns[env.pick.learner_seat]);
      }
      ++(env.opponent != nullptr      ? stats.episodes_fixed
         : env.pick.policy != nullptr ? stats.episodes_snapshot
                                      : stats.episodes_latest);
      if (!writer.Push(env.trajectory)) {
        stop = true;
        return false;
      }
      ++stats.episodes;
      return true;
    };
    std::vector<Env> envs(num_envs);
    std::mt19937_64 rng(thread_seed.fetch_add(0x632be59bd9b4e019ULL) ^
                        std::hash<std::string>()(actor_id));
    std::discrete_distribution<int> pick(shares.begin(), shares.end());
    uint64_t episodes_started = 0;
    while (!stop) {
      if (!keep_running()) {
        stop = true;
        break;
      }
      // Start episodes where needed and submit every environment's decision.
      for (Env& env : envs) {
        if (env.state == nullptr) {
          env.policy = latest.WaitForAny(std::chrono::milliseconds(200));
          if (env.policy == nullptr) break;
          env.state = game.NewInitialState();
          env.trajectory.Clear();
          env.trajectory.set_game(game.Name());
          int choice = pick(rng);
          env.opponent =
              choice < static_cast<int>(opponents.size()) ? opponents[choice].get() : nullptr;
          env.pick = OpponentPick{};
          if (env.opponent == nullptr && curriculum != nullptr) {
            env.pick = curriculum->Next();
            env.pick.learner_seat = std::clamp(env.pick.learner_seat, 0, game.NumPlayers() - 1);
          }
          if (env.pick.policy != nullptr) {
            env.learning_seat = env.pick.learner_seat;
            env.trajectory.set_opponent_id(env.pick.opponent_id);
            env.trajectory.add_learning_seats(env.learning_seat);
          } else if (env.opponent == nullptr) {
            env.trajectory.set_opponent_id("latest");
            for (int p = 0; p < game.NumPlayers(); ++p) env.trajectory.add_learning_seats(p);
          } else {
            env.learning_seat = static_cast<int>(episodes_started % game.NumPlayers());
            env.trajectory.set_opponent_id(env.opponent->name());
            env.trajectory.add_learning_seats(env.learning_seat);
          }
          ++episodes_started;
        }
        // Chance and a fixed opponent move at once, without inference.
        AdvanceToLearner(env, rng);
        if (env.state->IsTerminal()) {
          if (!FinishEpisode(env)) break;
          continue;
        }
        // A snapshot opponent's decision goes to the same worker with its policy, unrecorded.
        env.opponent_turn =
            env.pick.policy != nullptr && env.state->CurrentPlayer() != env.learning_seat;
        InferenceRequest req;
        req.policy = env.opponent_turn ? env.pick.policy : env.policy;
        req.observation.resize(obs_size);
        req.observation.shrink_to_fit();
        env.state->ObservationTensor(env.state->CurrentPlayer(), req.observation);
        req.legal_actions = env.state->LegalActions();
        if (!env.opponent_turn) {
          v1::Turn* turn = env.trajectory.add_turns();
          turn->set_seat(env.state->CurrentPlayer());
          turn->mutable_observation()->Add(req.observation.begin(), req.observation.end());
          turn->mutable_legal_actions()->Add(req.legal_actions.begin(), req.legal_actions.end());
          turn->set_policy_version(env.policy->version());
        }
        env.pending = inference.Submit(std::move(req));
      }
      for (Env& env : envs) {
        if (!env.pending.valid()) continue;
        absl::StatusOr<InferenceResponse> resp = env.pending.get();
        if (!resp.ok()) {
          stop = true;
          break;
        }
        if (!env.opponent_turn) {
          v1::Turn* turn = env.trajectory.mutable_turns(env.trajectory.turns_size() - 1);
          turn->set_action(resp->action);
          turn->add_behaviour_log_probs(resp->log_prob);
          ++stats.turns;
        }
        env.state->ApplyAction(resp->action);
        AdvanceToLearner(env, rng);
        if (env.state->IsTerminal() && !FinishEpisode(env)) break;
      }
    }
    // Drain what is still in flight so no promise outlives the batcher's consumer.
    for (Env& env : envs) {
      if (env.pending.valid()) env.pending.wait();
    }
  };
  std::vector<std::thread> pool;
  const int total = config.actors.envs_per_actor;
  for (int t = 0; t < threads; ++t) {
    int n = total / threads + (t < total % threads ? 1 : 0);
    pool.emplace_back(worker, n);
  }
  for (std::thread& t : pool) t.join();
}

}  // namespace rally
