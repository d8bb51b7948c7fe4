#include "common/games/registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/games/tictactoe.h"

namespace rally {

std::vector<std::string> RegisteredGames() { return {"tictactoe"}; }

absl::StatusOr<std::shared_ptr<const Game>> LoadGame(const std::string& name) {
  if (name == "tictactoe") return std::make_shared<TicTacToeGame>();
  return absl::NotFoundError(absl::StrCat("unknown game '", name, "' (known games: ",
                                          absl::StrJoin(RegisteredGames(), ", "), ")"));
}

}  // namespace rally
