// Games by name, as the job spec names them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/games/game.h"

namespace rally {

// The game registered as `name`, or NOT_FOUND listing the known names.
absl::StatusOr<std::shared_ptr<const Game>> LoadGame(const std::string& name);
std::vector<std::string> RegisteredGames();

}  // namespace rally
