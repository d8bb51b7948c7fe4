// The classic notation of the small games' information states and actions, the one the policy
// export format (`rally export-policy`) writes: {"game": NAME, "policy": {KEY: {ACTION: PROB}}}.
//
//   tictactoe    KEY: the board row-major as 9 characters from x, o, . (x moves first);
//                ACTION: the cell "0".."8".
//   kuhn_poker   KEY: the player's card (J, Q, K) then the betting in p/b, e.g. "Qpb";
//                ACTION: "p" or "b".
//   leduc_poker  KEY: private rank, ':', public rank (empty before it is dealt), ':', the first
//                round in f/c/r, and once the public card is out '/' and the second round,
//                e.g. "K::r", "K:Q:rc/", "K:Q:rc/r"; ACTION: "f", "c" or "r".
//
// A key determines the player to move, so keys of different players never coincide.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/games/game.h"

namespace rally {

struct PolicyNotation {
  // The key of the information state of the player to move at a decision node of the game.
  std::function<std::string(const State& state)> key;
  // The name of a player action.
  std::function<std::string(int action)> action_name;
  // The action a name stands for, or -1 for a name that is none.
  std::function<int(std::string_view name)> action_from_name;
};

// The notation of game `game_name`; INVALID_ARGUMENT for games without one (connect_four,
// negotiation), naming those that have one.
absl::StatusOr<PolicyNotation> GetPolicyNotation(const std::string& game_name);

}  // namespace rally
