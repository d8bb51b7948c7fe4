#include "common/eval/alpha_beta.h"

#include <gtest/gtest.h>

#include "common/eval/opponents.h"
#include "common/games/connect_four.h"
#include "common/games/registry.h"

namespace rally {
namespace {

ConnectFourState Play(const std::vector<int>& moves) {
  ConnectFourState s;
  for (int m : moves) s.ApplyAction(m);
  return s;
}

TEST(ConnectFourAlphaBeta, DepthOneTakesAnImmediateWin) {
  // x on (0,0), (0,1), (0,2); o on (1,0), (1,1), (0,6); x to move wins at column 3.
  ConnectFourState s = Play({0, 0, 1, 1, 2, 6});
  ConnectFourAlphaBeta depth1(1);
  for (uint64_t seed = 0; seed < 10; ++seed) {
    std::mt19937_64 rng(seed);
    EXPECT_EQ(depth1.Act(s, rng), 3);
  }
  auto scores = depth1.ScoreActions(s);
  ASSERT_EQ(scores.size(), 7u);
  EXPECT_EQ(scores[3], (std::pair<int, int>{3, ConnectFourAlphaBeta::kWin}));
}

TEST(ConnectFourAlphaBeta, DepthOneBlocksAnImmediateLoss) {
  // x on (0,0), (0,1), (0,2) threatens column 3; o (on column 6) to move must block.
  ConnectFourState s = Play({0, 6, 1, 6, 2});
  ConnectFourAlphaBeta depth1(1);
  for (uint64_t seed = 0; seed < 10; ++seed) {
    std::mt19937_64 rng(seed);
    EXPECT_EQ(depth1.Act(s, rng), 3);
  }
  for (const auto& [action, score] : depth1.ScoreActions(s)) {
    if (action != 3) {
      EXPECT_EQ(score, -ConnectFourAlphaBeta::kThreat) << action;
    }
  }
}

TEST(ConnectFourAlphaBeta, DeeperSearchPrefersTheNearerWin) {
  // Same position as the first test, searched at depth 3: the immediate win still scores best.
  ConnectFourState s = Play({0, 0, 1, 1, 2, 6});
  auto scores = ConnectFourAlphaBeta(3).ScoreActions(s);
  EXPECT_EQ(scores[3].second, ConnectFourAlphaBeta::kWin + 2);
}

TEST(ConnectFourAlphaBeta, HeuristicCountsOpenWindowsAndTheCentre) {
  ConnectFourState empty;
  EXPECT_EQ(ConnectFourAlphaBeta::Evaluate(empty), 0);
  // One x in the bottom centre, o to move: x's piece lies in 7 windows (4 horizontal, 1 vertical,
  // 1 on each diagonal) worth 1 each, plus the centre bonus 3; from o's side that is -10.
  ConnectFourState s = Play({3});
  EXPECT_EQ(ConnectFourAlphaBeta::Evaluate(s), -10);
}

TEST(ConnectFourAlphaBeta, DepthTwoBeatsRandomPlay) {
  ConnectFourGame game;
  ConnectFourAlphaBeta search(2);
  RandomAgent random;
  std::mt19937_64 rng(11);
  int wins = 0;
  const int kGames = 40;
  for (int g = 0; g < kGames; ++g) {
    int seat = g % 2;
    const Agent* seats[2] = {&random, &random};
    seats[seat] = &search;
    if (PlayGame(game, seats, rng)[seat] > 0) ++wins;
  }
  EXPECT_GE(wins, 38);
}

TEST(ConnectFourAlphaBeta, DepthFourBeatsDepthOneMostOfTheTime) {
  ConnectFourGame game;
  ConnectFourAlphaBeta deep(4), shallow(1);
  std::mt19937_64 rng(5);
  double score = 0;
  const int kGames = 20;
  for (int g = 0; g < kGames; ++g) {
    int seat = g % 2;
    const Agent* seats[2] = {&shallow, &shallow};
    seats[seat] = &deep;
    score += PlayGame(game, seats, rng)[seat];
  }
  EXPECT_GT(score, kGames / 2);  // an average result above +0.5 a game
}

}  // namespace
}  // namespace rally

namespace rally {
namespace {

// Evaluation results and targets are keyed by the opponent's name: it must be the spec's.
TEST(Opponents, CarryTheNamesTheJobSpecUses) {
  auto c4 = LoadGame("connect_four");
  ASSERT_TRUE(c4.ok());
  for (const char* name : {"random", "alpha_beta_1", "alpha_beta_2", "alpha_beta_4"}) {
    auto o = MakeOpponent(name, **c4);
    ASSERT_TRUE(o.ok()) << name << ": " << o.status();
    EXPECT_EQ((*o)->name(), name);
  }
  auto negotiation = LoadGame("negotiation");
  ASSERT_TRUE(negotiation.ok());
  auto trader = MakeOpponent("trader", **negotiation);
  ASSERT_TRUE(trader.ok()) << trader.status();
  EXPECT_EQ((*trader)->name(), "trader");
}

}  // namespace
}  // namespace rally
