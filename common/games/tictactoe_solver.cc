#include "common/games/tictactoe_solver.h"

#include <algorithm>

namespace rally {
namespace {
constexpr int8_t kUnknown = 2;
constexpr int kNumCodes = 19683;  // 3^9
}  // namespace

const TicTacToeSolver& TicTacToeSolver::Get() {
  static const TicTacToeSolver* solver = new TicTacToeSolver();
  return *solver;
}

TicTacToeSolver::TicTacToeSolver() : value_(kNumCodes, kUnknown) { Solve(TicTacToeState()); }

int TicTacToeSolver::Solve(const TicTacToeState& state) {
  int8_t& v = value_[state.Encode()];
  if (v != kUnknown) return v;
  if (state.IsTerminal()) {
    // The player to move has lost if the previous player completed a line.
    v = state.winner() >= 0 ? -1 : 0;
    return v;
  }
  int best = -2;
  for (int a : state.LegalActions()) {
    TicTacToeState child = state;
    child.ApplyAction(a);
    best = std::max(best, -Solve(child));
  }
  v = static_cast<int8_t>(best);
  return v;
}

int TicTacToeSolver::Value(const TicTacToeState& state) const { return value_[state.Encode()]; }

std::vector<int> TicTacToeSolver::OptimalActions(const TicTacToeState& state) const {
  std::vector<int> best;
  int best_value = -2;
  for (int a : state.LegalActions()) {
    TicTacToeState child = state;
    child.ApplyAction(a);
    int v = -Value(child);
    if (v > best_value) {
      best_value = v;
      best.clear();
    }
    if (v == best_value) best.push_back(a);
  }
  return best;
}

}  // namespace rally
