// Fixed opponents that evaluation (and training, where a job asks for it) plays against, by the
// names job specs use. They are common/eval Agents.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/eval/agent.h"
#include "common/games/game.h"

namespace rally {

// "random": uniform over the legal actions (every game). "perfect": exact minimax, uniform among
// the optimal actions (tictactoe). "alpha_beta_D": alpha-beta search to depth D in 1..9
// (connect_four). "trader": the heuristic trader (negotiation). Anything else, or a name the
// game does not support, is INVALID_ARGUMENT.
absl::StatusOr<std::unique_ptr<Agent>> MakeOpponent(const std::string& name, const Game& game);

}  // namespace rally
