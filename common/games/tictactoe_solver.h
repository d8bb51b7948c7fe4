// Exact minimax over every TicTacToe position, computed once (3^9 table) and shared read-only.
#pragma once

#include <vector>

#include "common/games/tictactoe.h"

namespace rally {

class TicTacToeSolver {
 public:
  // The process-wide solved table (built on first use, thread safe).
  static const TicTacToeSolver& Get();

  // Game value of `state` for the player to move (+1 win, 0 draw, -1 loss) under perfect play;
  // at a terminal state, the result for the player who would move next.
  int Value(const TicTacToeState& state) const;
  // Actions whose resulting value is best for the player to move, ascending.
  std::vector<int> OptimalActions(const TicTacToeState& state) const;

 private:
  TicTacToeSolver();
  int Solve(const TicTacToeState& state);
  std::vector<int8_t> value_;  // by Encode(); kUnknown until solved
};

}  // namespace rally
