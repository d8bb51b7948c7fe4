// Evaluation: the latest policy plays `games` games against a fixed opponent, seats alternated
// (game i: the policy sits in seat i mod 2), sampling its actions from its own probabilities as
// in training, or taking the most probable action when `greedy`. All games run in lockstep so
// that each round of decisions is one batched forward pass.
#pragma once

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/eval/elo.h"
#include "common/eval/game_tree.h"
#include "common/eval/opponents.h"
#include "common/games/game.h"
#include "common/models/network_policy.h"
#include "rally/v1/control.pb.h"

namespace rally {

// The name of the exact evaluation "opponent": a best response to the policy in every seat.
inline constexpr char kBestResponse[] = "best_response";

// Exact exploitability of the policy (NashConv / 2) over `tree`: the network is evaluated at
// every information state of the game (keyed by InformationStateString).
absl::StatusOr<v1::EvalResult> EvaluateExactly(const Game& game, const GameTree& tree,
                                               NetworkPolicy& policy);

// A network policy as a player (one forward pass per decision, sampling from its
// probabilities): a snapshot of the job's policy as an opponent.
class NetworkAgent final : public Agent {
 public:
  NetworkAgent(std::string name, std::shared_ptr<NetworkPolicy> policy)
      : name_(std::move(name)), policy_(std::move(policy)) {}
  std::string name() const override { return name_; }
  int Act(const State& state, std::mt19937_64& rng) const override;

 private:
  std::string name_;
  std::shared_ptr<NetworkPolicy> policy_;
};

// The job's league: the results of every evaluation game between the job's policy versions (as
// "v<version>"), its snapshots (also "v<version>": a snapshot is a version) and the fixed
// opponents, and their Elo ratings fitted over all of them at once (common/eval/elo.h).
class League {
 public:
  static std::string Player(int64_t version);
  // Games of `player` against `result.opponent()`, from the player's side.
  void Add(const std::string& player, const v1::EvalResult& result);
  // Ratings with "random" rated 0 when it has played, else centred on 0.
  absl::StatusOr<std::map<std::string, double>> Ratings() const;
  size_t matches() const { return results_.size(); }

 private:
  std::vector<MatchResult> results_;
};

// Wins, draws and losses are from the policy's side.
v1::EvalResult Evaluate(const Game& game, NetworkPolicy& policy, const Agent& opponent, int games,
                        bool greedy, std::mt19937_64& rng);

}  // namespace rally
