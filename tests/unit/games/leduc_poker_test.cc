#include "common/games/leduc_poker.h"

#include <gtest/gtest.h>

#include <map>

#include "common/eval/game_tree.h"

namespace rally {
namespace {

// Cards: rank * 2 + suit.
constexpr int Js = 0, Jh = 1, Qs = 2, Qh = 3, Ks = 4, Kh = 5;
constexpr int F = LeducPokerState::kFold, C = LeducPokerState::kCall, R = LeducPokerState::kRaise;

LeducPokerState Play(int card0, int card1, const std::vector<int>& actions) {
  LeducPokerState s;
  s.ApplyAction(card0);
  s.ApplyAction(card1);
  for (int a : actions) {
    EXPECT_TRUE(s.IsLegal(a)) << a << " at " << s.ToString();
    s.ApplyAction(a);
  }
  return s;
}

TEST(LeducPoker, DealsPrivateCardsThenThePublicCardAfterTheFirstRound) {
  LeducPokerState s;
  EXPECT_TRUE(s.IsChanceNode());
  EXPECT_EQ(s.ChanceOutcomes().size(), 6u);
  EXPECT_DOUBLE_EQ(s.ChanceOutcomes()[0].second, 1.0 / 6);
  s.ApplyAction(Kh);
  EXPECT_EQ(s.LegalActions(), (std::vector<int>{Js, Jh, Qs, Qh, Ks}));
  s.ApplyAction(Qs);
  EXPECT_EQ(s.CurrentPlayer(), 0);
  s.ApplyAction(C);
  s.ApplyAction(C);
  EXPECT_TRUE(s.IsChanceNode());
  EXPECT_EQ(s.round(), 1);
  auto outcomes = s.ChanceOutcomes();
  ASSERT_EQ(outcomes.size(), 4u);
  EXPECT_EQ(outcomes[0], (std::pair<int, double>{Js, 0.25}));
  EXPECT_EQ(outcomes[3], (std::pair<int, double>{Ks, 0.25}));
  s.ApplyAction(Jh);
  EXPECT_EQ(s.public_card(), Jh);
  EXPECT_EQ(s.CurrentPlayer(), 0);  // player 0 begins the second round too
}

TEST(LeducPoker, FoldOnlyFacingABetAndAtMostTwoRaisesARound) {
  LeducPokerState s = Play(Ks, Qh, {});
  EXPECT_EQ(s.LegalActions(), (std::vector<int>{C, R}));
  s.ApplyAction(C);
  EXPECT_EQ(s.LegalActions(), (std::vector<int>{C, R}));
  s.ApplyAction(R);
  EXPECT_EQ(s.LegalActions(), (std::vector<int>{F, C, R}));
  s.ApplyAction(R);
  EXPECT_EQ(s.LegalActions(), (std::vector<int>{F, C}));
  EXPECT_EQ(s.contribution(0), 5);  // ante 1, call of 2, raise of 2
  EXPECT_EQ(s.contribution(1), 3);
  s.ApplyAction(C);
  EXPECT_TRUE(s.IsChanceNode());
  s.ApplyAction(Js);
  EXPECT_EQ(s.LegalActions(), (std::vector<int>{C, R}));
  s.ApplyAction(R);  // raises are 4 in the second round
  EXPECT_EQ(s.contribution(0), 9);
  s.ApplyAction(R);
  EXPECT_EQ(s.contribution(1), 13);
  EXPECT_EQ(s.LegalActions(), (std::vector<int>{F, C}));
}

TEST(LeducPoker, APairWithThePublicCardWins) {
  // Player 0's jack pairs the public jack and beats the king.
  LeducPokerState s = Play(Js, Ks, {C, C, Jh, C, C});
  EXPECT_TRUE(s.IsTerminal());
  EXPECT_EQ(s.Returns(), (std::vector<double>{1, -1}));
  // With a raise in each round the stakes are 1 + 2 + 4 = 7.
  LeducPokerState t = Play(Js, Ks, {R, C, Jh, R, C});
  EXPECT_TRUE(t.IsTerminal());
  EXPECT_EQ(t.Returns(), (std::vector<double>{7, -7}));
}

TEST(LeducPoker, OtherwiseTheHigherCardWinsAndEqualRanksSplit) {
  LeducPokerState s = Play(Qh, Ks, {C, R, C, Js, C, C});
  EXPECT_EQ(s.Returns(), (std::vector<double>{-3, 3}));
  LeducPokerState tie = Play(Qs, Qh, {R, R, C, Ks, R, C});
  EXPECT_TRUE(tie.IsTerminal());
  EXPECT_EQ(tie.contribution(0), 9);
  EXPECT_EQ(tie.Returns(), (std::vector<double>{0, 0}));
}

TEST(LeducPoker, AFoldLosesWhatTheFolderPutIn) {
  LeducPokerState s = Play(Js, Ks, {R, F});
  EXPECT_TRUE(s.IsTerminal());
  EXPECT_EQ(s.Returns(), (std::vector<double>{1, -1}));
  LeducPokerState t = Play(Ks, Js, {C, R, F});
  EXPECT_EQ(t.Returns(), (std::vector<double>{-1, 1}));
  LeducPokerState u = Play(Js, Ks, {R, C, Qh, R, F});
  EXPECT_EQ(u.Returns(), (std::vector<double>{3, -3}));
}

TEST(LeducPoker, KeysFollowTheClassicNotation) {
  LeducPokerState s = Play(Ks, Qh, {R});
  EXPECT_EQ(s.CurrentPlayer(), 1);
  EXPECT_EQ(LeducPolicyKey(s), "Q::r");
  EXPECT_EQ(s.InformationStateString(1), "p1 Qh::r");
  EXPECT_EQ(s.InformationStateString(0), "p0 Ks::r");
  s.ApplyAction(C);
  s.ApplyAction(Qs);
  EXPECT_EQ(LeducPolicyKey(s), "K:Q:rc/");
  EXPECT_EQ(s.InformationStateString(0), "p0 Ks:Qs:rc/");
  s.ApplyAction(R);
  EXPECT_EQ(LeducPolicyKey(s), "Q:Q:rc/r");
  LeducPokerState k = Play(Kh, Js, {R});
  EXPECT_EQ(k.Key(0, /*by_rank=*/true), "K::r");
  EXPECT_EQ(LeducActionName(F) + LeducActionName(C) + LeducActionName(R), "fcr");
}

TEST(LeducPoker, TensorsHoldCardsAndBetting) {
  LeducPokerState s = Play(Ks, Qh, {C, R, C, Js, R});
  std::vector<float> info(30), obs(32);
  s.InformationStateTensor(1, info);
  std::vector<float> expected(30, 0.f);
  expected[1] = 1;           // player 1
  expected[2 + Qh] = 1;      // private card
  expected[8 + Js] = 1;      // public card
  expected[14 + 0] = 1;      // round 1 slot 0: call
  expected[14 + 3] = 1;      // round 1 slot 1: raise
  expected[14 + 4] = 1;      // round 1 slot 2: call
  expected[14 + 8 + 1] = 1;  // round 2 slot 0: raise
  EXPECT_EQ(info, expected);
  // The observation is the information state plus both players' chips in the pot.
  s.ObservationTensor(1, obs);
  EXPECT_EQ(std::vector<float>(obs.begin(), obs.begin() + 30), expected);
  EXPECT_EQ(obs[30], 7.f);
  EXPECT_EQ(obs[31], 3.f);
  s.ObservationTensor(0, obs);
  EXPECT_EQ(obs[0], 1.f);
  EXPECT_EQ(obs[2 + Ks], 1.f);
  EXPECT_EQ(obs[8 + Js], 1.f);
}

// A network reads the observation: it must tell every information state apart, or the policy
// is forced to play two of them alike.
void CollectObservations(const State& s, std::map<std::vector<float>, std::string>& seen,
                         int& collisions) {
  if (s.IsTerminal()) return;
  if (!s.IsChanceNode()) {
    const int p = s.CurrentPlayer();
    std::vector<float> obs(32);
    s.ObservationTensor(p, obs);
    auto [it, inserted] = seen.emplace(obs, s.InformationStateString(p));
    if (!inserted && it->second != s.InformationStateString(p)) ++collisions;
  }
  std::vector<int> actions = s.IsChanceNode() ? std::vector<int>() : s.LegalActions();
  if (s.IsChanceNode()) {
    for (const auto& [a, p] : s.ChanceOutcomes()) actions.push_back(a);
  }
  for (int a : actions) {
    auto child = s.Clone();
    child->ApplyAction(a);
    CollectObservations(*child, seen, collisions);
  }
}

TEST(LeducPoker, ObservationsTellEveryInformationStateApart) {
  LeducPokerGame game;
  std::map<std::vector<float>, std::string> seen;
  int collisions = 0;
  CollectObservations(*game.NewInitialState(), seen, collisions);
  EXPECT_EQ(seen.size(), 936u);
  EXPECT_EQ(collisions, 0);
}

TEST(LeducPoker, Has936InformationStatesBySuitAnd288ByRank) {
  LeducPokerGame game;
  auto by_suit = CollectInformationStates(game);
  ASSERT_TRUE(by_suit.ok()) << by_suit.status();
  EXPECT_EQ(by_suit->size(), 936u);
  auto by_rank = CollectInformationStates(game, LeducPolicyKey);
  ASSERT_TRUE(by_rank.ok());
  EXPECT_EQ(by_rank->size(), 288u);
  int player0 = 0;
  for (const auto& s : *by_rank) player0 += s.player == 0;
  EXPECT_EQ(player0, 144);
}

}  // namespace
}  // namespace rally
