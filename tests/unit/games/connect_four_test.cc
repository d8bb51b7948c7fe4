#include "common/games/connect_four.h"

#include <gtest/gtest.h>

namespace rally {
namespace {

ConnectFourState Play(const std::vector<int>& moves) {
  ConnectFourState s;
  for (int m : moves) {
    EXPECT_TRUE(s.IsLegal(m)) << m;
    s.ApplyAction(m);
  }
  return s;
}

TEST(ConnectFour, PiecesFallToTheLowestEmptyCell) {
  ConnectFourState s = Play({3, 3, 3});
  EXPECT_EQ(s.cell(0, 3), 0);
  EXPECT_EQ(s.cell(1, 3), 1);
  EXPECT_EQ(s.cell(2, 3), 0);
  EXPECT_EQ(s.cell(3, 3), ConnectFourState::kEmpty);
  EXPECT_EQ(s.height(3), 3);
  EXPECT_EQ(s.CurrentPlayer(), 1);
  EXPECT_EQ(s.ToString(), ".......\n.......\n.......\n...x...\n...o...\n...x...\n0123456");
}

TEST(ConnectFour, AFullColumnIsNotLegal) {
  ConnectFourState s = Play({0, 0, 0, 0, 0, 0});
  EXPECT_FALSE(s.IsTerminal());
  EXPECT_EQ(s.LegalActions(), (std::vector<int>{1, 2, 3, 4, 5, 6}));
}

TEST(ConnectFour, FourInARowWins) {
  ConnectFourState s = Play({0, 0, 1, 1, 2, 2});
  EXPECT_FALSE(s.IsTerminal());
  s.ApplyAction(3);
  EXPECT_TRUE(s.IsTerminal());
  EXPECT_EQ(s.winner(), 0);
  EXPECT_EQ(s.Returns(), (std::vector<double>{1.0, -1.0}));
  EXPECT_TRUE(s.LegalActions().empty());
}

TEST(ConnectFour, FourInAColumnWinsForTheSecondPlayer) {
  ConnectFourState s = Play({0, 1, 0, 1, 0, 1, 6});
  EXPECT_FALSE(s.IsTerminal());
  s.ApplyAction(1);
  EXPECT_EQ(s.winner(), 1);
  EXPECT_EQ(s.Returns(), (std::vector<double>{-1.0, 1.0}));
}

TEST(ConnectFour, FourOnARisingDiagonalWins) {
  // x ends on (0,0), (1,1), (2,2), (3,3).
  ConnectFourState s = Play({0, 1, 1, 2, 3, 2, 2, 3, 6, 3});
  EXPECT_FALSE(s.IsTerminal());
  s.ApplyAction(3);
  EXPECT_EQ(s.winner(), 0);
  EXPECT_EQ(s.num_moves(), 11);
}

TEST(ConnectFour, FourOnAFallingDiagonalWins) {
  // The mirror image: x ends on (0,6), (1,5), (2,4), (3,3).
  ConnectFourState s = Play({6, 5, 5, 4, 3, 4, 4, 3, 0, 3});
  EXPECT_FALSE(s.IsTerminal());
  s.ApplyAction(3);
  EXPECT_EQ(s.winner(), 0);
}

TEST(ConnectFour, AFullBoardWithoutFourIsADraw) {
  // Column c holds alternating pieces starting with x where (c / 2) is even (columns 0, 1, 4, 5).
  ConnectFourState s = Play({0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 4, 2, 2, 2, 2, 2, 2, 3, 3,
                             3, 3, 3, 3, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6});
  EXPECT_FALSE(s.IsTerminal());
  s.ApplyAction(5);
  EXPECT_TRUE(s.IsTerminal());
  EXPECT_EQ(s.winner(), -1);
  EXPECT_EQ(s.num_moves(), 42);
  EXPECT_EQ(s.Returns(), (std::vector<double>{0.0, 0.0}));
  EXPECT_EQ(s.BoardString().substr(0, 7), "ooxxoox");  // the top row
}

TEST(ConnectFour, ObservationIsFromTheGivenPlayersPerspective) {
  ConnectFourState s = Play({3, 4});
  std::vector<float> o0(126), o1(126);
  s.ObservationTensor(0, o0);
  s.ObservationTensor(1, o1);
  EXPECT_EQ(o0[3], 1.f);       // x's own piece at (0, 3)
  EXPECT_EQ(o0[42 + 4], 1.f);  // o's piece at (0, 4) in x's opponent plane
  EXPECT_EQ(o1[4], 1.f);       // o's own plane
  EXPECT_EQ(o1[42 + 3], 1.f);
  float empties = 0;
  for (int i = 84; i < 126; ++i) empties += o1[i];
  EXPECT_EQ(empties, 40.f);
  EXPECT_EQ(s.InformationStateString(0).substr(0, 3), "p0 ");
  EXPECT_EQ(s.InformationStateString(1).substr(3), s.BoardString());
}

}  // namespace
}  // namespace rally
