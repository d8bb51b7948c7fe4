#include "common/games/policy_notation.h"

#include "absl/strings/str_cat.h"
#include "common/games/kuhn_poker.h"
#include "common/games/leduc_poker.h"
#include "common/games/tictactoe.h"

namespace rally {
namespace {

// The inverse of `name_of` over actions [0, num_actions).
std::function<int(std::string_view)> Inverse(const std::function<std::string(int)>& name_of,
                                             int num_actions) {
  return [name_of, num_actions](std::string_view name) {
    for (int a = 0; a < num_actions; ++a) {
      if (name_of(a) == name) return a;
    }
    return -1;
  };
}

}  // namespace

absl::StatusOr<PolicyNotation> GetPolicyNotation(const std::string& game_name) {
  if (game_name == "tictactoe") {
    return PolicyNotation{TicTacToePolicyKey, TicTacToeActionName, Inverse(TicTacToeActionName, 9)};
  }
  if (game_name == "kuhn_poker") {
    return PolicyNotation{KuhnPolicyKey, KuhnActionName, Inverse(KuhnActionName, 2)};
  }
  if (game_name == "leduc_poker") {
    return PolicyNotation{LeducPolicyKey, LeducActionName, Inverse(LeducActionName, 3)};
  }
  return absl::InvalidArgumentError(
      absl::StrCat("game '", game_name,
                   "' has no policy notation (games with one: tictactoe, kuhn_poker, "
                   "leduc_poker)"));
}

}  // namespace rally
