// Checks that a trajectory fits its game before the replay stores it.
#pragma once

#include "absl/status/status.h"
#include "common/games/game.h"
#include "rally/v1/trajectory.pb.h"

namespace rally {

// OK, or INVALID_ARGUMENT naming the first field that does not fit `game` (e.g.
// "turns[3].action: 11 is not among the legal actions [0, 4, 7]").
absl::Status ValidateTrajectory(const Game& game, const v1::Trajectory& trajectory);

}  // namespace rally
