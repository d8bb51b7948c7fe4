// The contract of game.h, checked on random playouts of every registered game.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "common/games/registry.h"

namespace rally {
namespace {

class GameContract : public testing::TestWithParam<std::string> {};

TEST_P(GameContract, HoldsAlongRandomPlayouts) {
  auto game = LoadGame(GetParam());
  ASSERT_TRUE(game.ok()) << game.status();
  const Game& g = **game;
  const int obs_size = g.ObservationSize();
  const int info_size = g.InformationStateSize();
  std::mt19937_64 rng(7);
  for (int episode = 0; episode < 30; ++episode) {
    std::unique_ptr<State> s = g.NewInitialState();
    int player_moves = 0;
    while (!s->IsTerminal()) {
      std::vector<int> legal = s->LegalActions();
      ASSERT_FALSE(legal.empty());
      ASSERT_TRUE(std::is_sorted(legal.begin(), legal.end()));
      ASSERT_EQ(std::adjacent_find(legal.begin(), legal.end()), legal.end());
      if (s->IsChanceNode()) {
        auto outcomes = s->ChanceOutcomes();
        ASSERT_EQ(outcomes.size(), legal.size());
        double total = 0;
        for (size_t i = 0; i < outcomes.size(); ++i) {
          EXPECT_EQ(outcomes[i].first, legal[i]);
          EXPECT_GE(outcomes[i].first, 0);
          EXPECT_LT(outcomes[i].first, g.MaxChanceOutcomes());
          total += outcomes[i].second;
        }
        EXPECT_NEAR(total, 1.0, 1e-12);
        s->ApplyAction(SampleChanceOutcome(*s, rng));
        continue;
      }
      EXPECT_TRUE(s->ChanceOutcomes().empty());
      EXPECT_GE(legal.front(), 0);
      EXPECT_LT(legal.back(), g.NumDistinctActions());
      for (int p = 0; p < g.NumPlayers(); ++p) {
        // Tensors fill exactly their declared size: the guard after it stays untouched.
        std::vector<float> obs(obs_size + 1, NAN), info(info_size + 1, NAN);
        s->ObservationTensor(p, std::span<float>(obs).first(obs_size));
        s->InformationStateTensor(p, std::span<float>(info).first(info_size));
        for (int i = 0; i < obs_size; ++i) ASSERT_FALSE(std::isnan(obs[i])) << i;
        for (int i = 0; i < info_size; ++i) ASSERT_FALSE(std::isnan(info[i])) << i;
        EXPECT_TRUE(std::isnan(obs[obs_size]));
        EXPECT_TRUE(std::isnan(info[info_size]));
        EXPECT_FALSE(s->ObservationString(p).empty());
      }
      EXPECT_NE(s->InformationStateString(0), s->InformationStateString(1));
      int action = legal[std::uniform_int_distribution<size_t>(0, legal.size() - 1)(rng)];
      std::unique_ptr<State> copy = s->Clone();
      s->ApplyAction(action);
      copy->ApplyAction(action);
      EXPECT_EQ(copy->ToString(), s->ToString());
      ++player_moves;
      if (!s->IsTerminal()) {
        EXPECT_EQ(s->Returns(), std::vector<double>(2, 0.0));
      }
    }
    EXPECT_LE(player_moves, g.MaxGameLength());
    std::vector<double> r = s->Returns();
    ASSERT_EQ(static_cast<int>(r.size()), g.NumPlayers());
    EXPECT_DOUBLE_EQ(r[0] + r[1], 0.0);  // every game here is zero-sum
  }
}

INSTANTIATE_TEST_SUITE_P(AllGames, GameContract,
                         testing::Values("tictactoe", "connect_four", "kuhn_poker", "leduc_poker",
                                         "negotiation"));

}  // namespace
}  // namespace rally
