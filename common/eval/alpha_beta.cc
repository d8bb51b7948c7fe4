#include "common/eval/alpha_beta.h"

#include <algorithm>
#include <limits>

namespace rally {
namespace {

constexpr int kRows = ConnectFourState::kRows;
constexpr int kColumns = ConnectFourState::kColumns;
constexpr int kSearchOrder[kColumns] = {3, 2, 4, 1, 5, 0, 6};
constexpr int kWindowScore[4] = {0, 1, 4, 16};
constexpr int kCentreBonus = 3;
constexpr int kInfinity = std::numeric_limits<int>::max() / 2;

// True when `player` dropping a piece in `column` of `s` makes four.
bool MakesFour(const ConnectFourState& s, int column, int player) {
  if (s.height(column) >= kRows) return false;
  ConnectFourState child = s;
  child.ApplyAction(column);
  return child.winner() == player;
}

int Negamax(const ConnectFourState& s, int depth, int alpha, int beta) {
  if (s.IsTerminal()) return s.winner() >= 0 ? -(ConnectFourAlphaBeta::kWin + depth) : 0;
  if (depth == 0) return ConnectFourAlphaBeta::Evaluate(s);
  int best = -kInfinity;
  for (int c : kSearchOrder) {
    if (s.height(c) >= kRows) continue;
    ConnectFourState child = s;
    child.ApplyAction(c);
    int v = -Negamax(child, depth - 1, -beta, -alpha);
    best = std::max(best, v);
    alpha = std::max(alpha, v);
    if (alpha >= beta) break;
  }
  return best;
}

}  // namespace

int ConnectFourAlphaBeta::Evaluate(const ConnectFourState& s) {
  int me = s.CurrentPlayer();
  for (int c = 0; c < kColumns; ++c) {
    if (MakesFour(s, c, me)) return kThreat;
  }
  static constexpr int kDirections[4][2] = {{0, 1}, {1, 0}, {1, 1}, {1, -1}};
  int score = 0;
  for (int r = 0; r < kRows; ++r) {
    for (int c = 0; c < kColumns; ++c) {
      for (const auto& d : kDirections) {
        int end_r = r + 3 * d[0];
        int end_c = c + 3 * d[1];
        if (end_r >= kRows || end_c < 0 || end_c >= kColumns) continue;
        int mine = 0;
        int theirs = 0;
        for (int k = 0; k < 4; ++k) {
          int v = s.cell(r + k * d[0], c + k * d[1]);
          if (v == me) ++mine;
          if (v == 1 - me) ++theirs;
        }
        if (theirs == 0) score += kWindowScore[mine];
        if (mine == 0) score -= kWindowScore[theirs];
      }
    }
    int centre = s.cell(r, kColumns / 2);
    if (centre == me) score += kCentreBonus;
    if (centre == 1 - me) score -= kCentreBonus;
  }
  return score;
}

std::vector<std::pair<int, int>> ConnectFourAlphaBeta::ScoreActions(
    const ConnectFourState& state) const {
  std::vector<std::pair<int, int>> scores;
  int best = -kInfinity;
  for (int c : kSearchOrder) {
    if (state.height(c) >= kRows || state.IsTerminal()) continue;
    ConnectFourState child = state;
    child.ApplyAction(c);
    // A window just below the best so far keeps every score >= best exact; lower ones are only
    // known to be lower, which is all Act needs.
    int v = -Negamax(child, depth_ - 1, -kInfinity, -(best - 1));
    best = std::max(best, v);
    scores.emplace_back(c, v);
  }
  std::sort(scores.begin(), scores.end());
  return scores;
}

int ConnectFourAlphaBeta::Act(const State& state, std::mt19937_64& rng) const {
  std::vector<std::pair<int, int>> scores =
      ScoreActions(static_cast<const ConnectFourState&>(state));
  int best = -kInfinity;
  for (const auto& [action, score] : scores) best = std::max(best, score);
  std::vector<int> best_actions;
  for (const auto& [action, score] : scores) {
    if (score == best) best_actions.push_back(action);
  }
  return best_actions[std::uniform_int_distribution<size_t>(0, best_actions.size() - 1)(rng)];
}

}  // namespace rally
