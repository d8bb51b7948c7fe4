// Evaluation: the latest policy plays `games` games against a fixed opponent, seats alternated
// (game i: the policy sits in seat i mod 2), sampling its actions from its own probabilities as
// in training, or taking the most probable action when `greedy`. All games run in lockstep so
// that each round of decisions is one batched forward pass.
#pragma once

#include <random>

#include "common/eval/game_tree.h"
#include "common/eval/opponents.h"
#include "common/games/game.h"
#include "rally/v1/control.pb.h"
#include "services/actor/policy.h"

namespace rally {

// The name of the exact evaluation "opponent": a best response to the policy in every seat.
inline constexpr char kBestResponse[] = "best_response";

// Exact exploitability of the policy (NashConv / 2) over `tree`: the network is evaluated at
// every information state of the game (keyed by InformationStateString).
absl::StatusOr<v1::EvalResult> EvaluateExactly(const Game& game, const GameTree& tree,
                                               NetworkPolicy& policy);

// Wins, draws and losses are from the policy's side.
v1::EvalResult Evaluate(const Game& game, NetworkPolicy& policy, const Agent& opponent, int games,
                        bool greedy, std::mt19937_64& rng);

}  // namespace rally
