#include "common/games/tictactoe.h"

#include <gtest/gtest.h>

#include <set>

#include "common/games/registry.h"
#include "common/games/tictactoe_solver.h"

namespace rally {
namespace {

void Collect(const TicTacToeState& s, std::set<int>* all, std::set<int>* non_terminal) {
  if (!all->insert(s.Encode()).second) return;
  if (s.IsTerminal()) return;
  non_terminal->insert(s.Encode());
  for (int a : s.LegalActions()) {
    TicTacToeState child = s;
    child.ApplyAction(a);
    Collect(child, all, non_terminal);
  }
}

TEST(TicTacToe, Has5478ReachableStatesOf4520NonTerminal) {
  std::set<int> all, non_terminal;
  Collect(TicTacToeState(), &all, &non_terminal);
  EXPECT_EQ(all.size(), 5478u);
  EXPECT_EQ(non_terminal.size(), 4520u);
}

TEST(TicTacToe, StartIsADrawUnderPerfectPlay) {
  const auto& solver = TicTacToeSolver::Get();
  EXPECT_EQ(solver.Value(TicTacToeState()), 0);
  // Every opening move keeps the draw.
  EXPECT_EQ(solver.OptimalActions(TicTacToeState()), (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(TicTacToe, SolverFindsTheWinAndTheBlock) {
  // x x .
  // o o .
  // . . .   x to move: 2 wins at once.
  TicTacToeState s;
  for (int a : {0, 3, 1, 4}) s.ApplyAction(a);
  EXPECT_EQ(TicTacToeSolver::Get().Value(s), 1);
  EXPECT_EQ(TicTacToeSolver::Get().OptimalActions(s), (std::vector<int>{2}));
  // x x .
  // o o .
  // . . x   o to move wins with 5; anything but 2 or 5 lets x win with 2.
  TicTacToeState t;
  for (int a : {0, 3, 1, 4, 8}) t.ApplyAction(a);
  EXPECT_EQ(TicTacToeSolver::Get().Value(t), 1);
  std::vector<int> best = TicTacToeSolver::Get().OptimalActions(t);
  EXPECT_NE(std::find(best.begin(), best.end(), 5), best.end());
  for (int a : {6, 7}) EXPECT_EQ(std::find(best.begin(), best.end(), a), best.end());
}

TEST(TicTacToe, RulesWinnerReturnsAndLegalActions) {
  TicTacToeState s;
  EXPECT_EQ(s.CurrentPlayer(), 0);
  EXPECT_EQ(s.LegalActions().size(), 9u);
  for (int a : {4, 0, 2, 6, 3, 5, 1}) s.ApplyAction(a);  // x: 4 2 3 1; o: 0 6 5
  EXPECT_FALSE(s.IsTerminal());
  EXPECT_EQ(s.CurrentPlayer(), 1);
  EXPECT_EQ(s.LegalActions(), (std::vector<int>{7, 8}));
  s.ApplyAction(8);
  s.ApplyAction(7);  // x completes the middle column 1-4-7
  EXPECT_TRUE(s.IsTerminal());
  EXPECT_EQ(s.winner(), 0);
  EXPECT_EQ(s.Returns(), (std::vector<double>{1.0, -1.0}));
  EXPECT_TRUE(s.LegalActions().empty());
  EXPECT_EQ(s.BoardString(), "oxxxxooxo");
}

TEST(TicTacToe, FullBoardWithoutLineIsADraw) {
  TicTacToeState s;
  for (int a : {0, 1, 2, 4, 3, 5, 7, 6, 8}) s.ApplyAction(a);
  EXPECT_TRUE(s.IsTerminal());
  EXPECT_EQ(s.winner(), -1);
  EXPECT_EQ(s.Returns(), (std::vector<double>{0.0, 0.0}));
}

TEST(TicTacToe, ObservationIsFromTheGivenPlayersPerspective) {
  TicTacToeState s;
  s.ApplyAction(4);  // x in the centre
  std::vector<float> o0(27), o1(27);
  s.ObservationTensor(0, o0);
  s.ObservationTensor(1, o1);
  EXPECT_EQ(o0[4], 1.f);       // x's own plane
  EXPECT_EQ(o1[9 + 4], 1.f);   // o sees it in the opponent plane
  EXPECT_EQ(o1[18 + 4], 0.f);  // not empty
  float empties = 0;
  for (int i = 18; i < 27; ++i) empties += o1[i];
  EXPECT_EQ(empties, 8.f);
}

TEST(GameRegistry, KnowsTicTacToeAndNamesTheKnownGamesOtherwise) {
  auto g = LoadGame("tictactoe");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ((*g)->ObservationSize(), 27);
  EXPECT_EQ((*g)->NumDistinctActions(), 9);
  auto bad = LoadGame("chess");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(bad.status().message().find("tictactoe"), std::string::npos);
}

}  // namespace
}  // namespace rally
