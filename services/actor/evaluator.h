// Evaluation: the latest policy plays `games` games against a fixed opponent, seats alternated
// (game i: the policy sits in seat i mod 2), sampling its actions from its own probabilities as
// in training, or taking the most probable action when `greedy`. All games run in lockstep so
// that each round of decisions is one batched forward pass.
#pragma once

#include <random>

#include "common/eval/opponents.h"
#include "common/games/game.h"
#include "rally/v1/control.pb.h"
#include "services/actor/policy.h"

namespace rally {

// Wins, draws and losses are from the policy's side.
v1::EvalResult Evaluate(const Game& game, NetworkPolicy& policy, const Agent& opponent, int games,
                        bool greedy, std::mt19937_64& rng);

}  // namespace rally
