#include "common/games/kuhn_poker.h"

#include <gtest/gtest.h>

#include <set>

#include "common/eval/game_tree.h"

namespace rally {
namespace {

constexpr int J = 0, Q = 1, K = 2;
constexpr int P = KuhnPokerState::kPass, B = KuhnPokerState::kBet;

KuhnPokerState Deal(int card0, int card1) {
  KuhnPokerState s;
  s.ApplyAction(card0);
  s.ApplyAction(card1);
  return s;
}

TEST(KuhnPoker, ChanceDealsOneCardToEachPlayer) {
  KuhnPokerState s;
  EXPECT_TRUE(s.IsChanceNode());
  using Outcomes = std::vector<std::pair<int, double>>;
  EXPECT_EQ(s.ChanceOutcomes(), (Outcomes{{J, 1.0 / 3}, {Q, 1.0 / 3}, {K, 1.0 / 3}}));
  s.ApplyAction(Q);
  EXPECT_TRUE(s.IsChanceNode());
  EXPECT_EQ(s.ChanceOutcomes(), (Outcomes{{J, 0.5}, {K, 0.5}}));
  s.ApplyAction(K);
  EXPECT_EQ(s.CurrentPlayer(), 0);
  EXPECT_EQ(s.card(0), Q);
  EXPECT_EQ(s.card(1), K);
  EXPECT_EQ(s.LegalActions(), (std::vector<int>{P, B}));
}

TEST(KuhnPoker, PaysEachOfTheFiveEndings) {
  struct Case {
    std::vector<int> history;
    double return0;  // with player 0 holding K and player 1 holding J
  };
  for (const Case& c : std::vector<Case>{{{P, P}, 1},      // showdown for the antes
                                         {{B, P}, 1},      // player 1 folds
                                         {{B, B}, 2},      // showdown, one bet each
                                         {{P, B, P}, -1},  // player 0 folds
                                         {{P, B, B}, 2}}) {
    KuhnPokerState s = Deal(K, J);
    for (size_t i = 0; i < c.history.size(); ++i) {
      EXPECT_FALSE(s.IsTerminal());
      EXPECT_EQ(s.CurrentPlayer(), static_cast<int>(i % 2));
      s.ApplyAction(c.history[i]);
    }
    EXPECT_TRUE(s.IsTerminal()) << s.ToString();
    EXPECT_EQ(s.Returns(), (std::vector<double>{c.return0, -c.return0})) << s.ToString();
  }
  KuhnPokerState s = Deal(J, Q);  // the lower card loses the showdown
  s.ApplyAction(B);
  s.ApplyAction(B);
  EXPECT_EQ(s.Returns(), (std::vector<double>{-2, 2}));
}

TEST(KuhnPoker, KeysAndStringsNameTheCardAndTheBetting) {
  KuhnPokerState s = Deal(Q, K);
  s.ApplyAction(P);
  s.ApplyAction(B);
  EXPECT_EQ(KuhnPolicyKey(s), "Qpb");
  EXPECT_EQ(s.InformationStateString(0), "p0 Qpb");
  EXPECT_EQ(s.InformationStateString(1), "p1 Kpb");
  EXPECT_EQ(KuhnActionName(P), "p");
  EXPECT_EQ(KuhnActionName(B), "b");
  EXPECT_EQ(s.Contribution(0), 1);
  EXPECT_EQ(s.Contribution(1), 2);
  std::vector<float> info(11), obs(7);
  s.InformationStateTensor(0, info);
  EXPECT_EQ(info, (std::vector<float>{1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0}));
  s.ObservationTensor(1, obs);
  EXPECT_EQ(obs, (std::vector<float>{0, 1, 0, 0, 1, 1, 2}));
}

TEST(KuhnPoker, HasTwelveInformationStates) {
  KuhnPokerGame game;
  auto states = CollectInformationStates(game);
  ASSERT_TRUE(states.ok()) << states.status();
  std::set<std::string> keys;
  for (const auto& s : *states) keys.insert(s.key);
  EXPECT_EQ(keys, (std::set<std::string>{"p0 J", "p0 Q", "p0 K", "p0 Jpb", "p0 Qpb", "p0 Kpb",
                                         "p1 Jp", "p1 Qp", "p1 Kp", "p1 Jb", "p1 Qb", "p1 Kb"}));
  auto classic = CollectInformationStates(game, KuhnPolicyKey);
  ASSERT_TRUE(classic.ok());
  EXPECT_EQ(classic->size(), 12u);
  EXPECT_EQ(classic->front().key, "J");
}

}  // namespace
}  // namespace rally
