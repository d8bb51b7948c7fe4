// Connect Four by depth-limited alpha-beta (negamax) search: the depth-d opponent of evaluation.
//
// Search: depth d counts plies, the agent's own move included (depth 1 looks at each move and
// scores the position after it). Scores are from the side to move:
// - a finished game: a loss for the side to move (its opponent just made four) scores
//   -(kWin + remaining depth), so nearer wins score higher; a draw scores 0;
// - at the depth limit, if the side to move can make four with one of its next moves: +kThreat;
// - otherwise the heuristic: over the 69 windows of four cells in a line, a window holding n > 0
//   pieces of one player and none of the other scores 4^(n-1) (1, 4, 16) for that player; plus 3
//   per piece in the centre column; the side to move's total minus the opponent's.
// So depth 1 takes an immediate win and blocks an opponent's immediate win (unless it has two).
// Act picks uniformly among the moves of the best score; children are searched centre first.
#pragma once

#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/eval/agent.h"
#include "common/games/connect_four.h"

namespace rally {

class ConnectFourAlphaBeta final : public Agent {
 public:
  static constexpr int kWin = 1'000'000;
  static constexpr int kThreat = 100'000;

  // `depth` >= 1.
  explicit ConnectFourAlphaBeta(int depth) : depth_(depth) {}
  // The name the job spec uses for this opponent (evaluation.opponents, targets).
  std::string name() const override { return "alpha_beta_" + std::to_string(depth_); }
  // `state` must be a ConnectFourState.
  int Act(const State& state, std::mt19937_64& rng) const override;

  // The depth-limited score of each legal action (ascending) for the player to move: exact for the
  // actions of the best score; a lower score is an upper bound that stays below the best.
  std::vector<std::pair<int, int>> ScoreActions(const ConnectFourState& state) const;
  // The leaf score of a non-terminal position for the side to move (see the header).
  static int Evaluate(const ConnectFourState& state);

 private:
  int depth_;
};

}  // namespace rally
