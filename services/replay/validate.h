// Checks that a trajectory fits its game before the replay stores it.
#pragma once

#include <cstddef>

#include "absl/status/status.h"
#include "common/games/game.h"
#include "rally/v1/trajectory.pb.h"

namespace rally {

// Bounds on values that fit the proto but no real episode holds, refused at insert so that one
// extreme item cannot reach a learner (docs/replay.md, "Insert bounds").
//
// A behaviour log-probability is that of an action sampled from the distribution it was drawn
// from: at most 0, and at least -100. An action of probability e^-100 (about 4e-44) is never
// drawn; float32 probabilities, subnormals included, end near e^-103. The bound keeps the
// learner's importance ratio pi/mu from reaching e^100.
inline constexpr float kMinBehaviourLogProb = -100;
// task_id and opponent_id are names (a curriculum task, "snapshot-120", "random") that become
// keys of the learner's baselines and the curriculum's statistics: a few dozen bytes in
// practice.
inline constexpr size_t kMaxIdBytes = 256;
// |reward| and |return|: games score in units (win = 1) or points; a million leaves room for
// any scoring scheme while keeping sums over a batch far from float32's range.
inline constexpr float kMaxAbsReward = 1e6;
// Tokens in one turn, prompt and action together: a million (4 MiB of ids) is far above any
// model's context, and keeps one item from filling a table's memory.
inline constexpr size_t kMaxTokensPerTurn = size_t{1} << 20;

// OK, or INVALID_ARGUMENT naming the first field that does not fit `game` or the bounds above
// (e.g. "turns[3].action: 11 is not among the legal actions [0, 4, 7]").
absl::Status ValidateTrajectory(const Game& game, const v1::Trajectory& trajectory);

}  // namespace rally
