// Games by name and parameters, as the job spec names them.
//
// Registered games and their parameters (defaults in brackets):
//   tictactoe     (none)
//   connect_four  (none)
//   kuhn_poker    (none)
//   leduc_poker   (none)
//   negotiation   max_turns [10]: player turns in all, 1-100;
//                 max_units [5]: most units on either side of an offer, 1-10.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/games/game.h"

namespace rally {

// The game registered as `name` with its default parameters, or NOT_FOUND listing the known names.
absl::StatusOr<std::shared_ptr<const Game>> LoadGame(const std::string& name);
// The game `name` with `params` over its defaults. NOT_FOUND for an unknown game;
// INVALID_ARGUMENT naming the parameter for an unknown parameter or a bad value.
absl::StatusOr<std::shared_ptr<const Game>> LoadGame(const std::string& name,
                                                     const GameParameters& params);
std::vector<std::string> RegisteredGames();
// The parameters `name` accepts, with their defaults; NOT_FOUND for an unknown game.
absl::StatusOr<GameParameters> DefaultParameters(const std::string& name);

}  // namespace rally
