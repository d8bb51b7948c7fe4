#include "common/games/negotiation.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

namespace rally {
namespace {

using Amounts = std::array<int, kNumResources>;
constexpr int kWheat = 0, kWood = 1, kSheep = 2, kBrick = 3, kOre = 4;

int Offer(int give, int give_units, int get, int get_units, int max_units = 5) {
  return NegotiationState::kFirstOffer + EncodeOffer({give, give_units, get, get_units}, max_units);
}

// A state after chance, with the given private values and holdings.
NegotiationState Dealt(const Amounts& values0, const Amounts& holdings0, const Amounts& values1,
                       const Amounts& holdings1, NegotiationOptions options = {}) {
  NegotiationState s(options);
  for (const Amounts* a : {&values0, &holdings0, &values1, &holdings1}) {
    for (int v : *a) {
      EXPECT_TRUE(s.IsChanceNode());
      EXPECT_TRUE(s.IsLegal(v)) << v;
      s.ApplyAction(v);
    }
  }
  EXPECT_EQ(s.CurrentPlayer(), 0);
  return s;
}

const Amounts kBase = {5, 10, 15, 25, 40};
const Amounts kTens = {10, 10, 10, 10, 10};

TEST(Negotiation, ValueRangesAreTwentyPercentAroundTheBaseClippedToFiveAndForty) {
  EXPECT_EQ(NegotiationValueRange(kWheat), (std::pair<int, int>{5, 6}));
  EXPECT_EQ(NegotiationValueRange(kWood), (std::pair<int, int>{8, 12}));
  EXPECT_EQ(NegotiationValueRange(kSheep), (std::pair<int, int>{12, 18}));
  EXPECT_EQ(NegotiationValueRange(kBrick), (std::pair<int, int>{20, 30}));
  EXPECT_EQ(NegotiationValueRange(kOre), (std::pair<int, int>{32, 40}));
}

TEST(Negotiation, DealtValuesAndHoldingsStayWithinBounds) {
  std::mt19937_64 rng(3);
  std::array<std::pair<int, int>, kNumResources> seen;
  seen.fill({100, -100});
  for (int game = 0; game < 300; ++game) {
    NegotiationState s({});
    int chance_nodes = 0;
    while (s.IsChanceNode()) {
      s.ApplyAction(SampleChanceOutcome(s, rng));
      ++chance_nodes;
    }
    EXPECT_EQ(chance_nodes, 20);
    for (int p = 0; p < 2; ++p) {
      for (int r = 0; r < kNumResources; ++r) {
        int v = s.values(p)[r];
        EXPECT_GE(v, 5);
        EXPECT_LE(v, 40);
        EXPECT_GE(v * 10, 8 * kBaseValues[r]);   // v >= 0.8 base
        EXPECT_LE(v * 10, 12 * kBaseValues[r]);  // v <= 1.2 base
        seen[r] = {std::min(seen[r].first, v), std::max(seen[r].second, v)};
        EXPECT_GE(s.holdings(p)[r], 5);
        EXPECT_LE(s.holdings(p)[r], 25);
        EXPECT_EQ(s.holdings(p)[r], s.starting_holdings(p)[r]);
      }
    }
  }
  // 300 games reach both ends of every range.
  for (int r = 0; r < kNumResources; ++r) EXPECT_EQ(seen[r], NegotiationValueRange(r)) << r;
}

TEST(Negotiation, OffersEncodeOneToOne) {
  std::set<int> indices;
  for (int i = 0; i < 500; ++i) {
    NegotiationOffer o = DecodeOffer(i, 5);
    EXPECT_NE(o.give, o.get);
    EXPECT_EQ(EncodeOffer(o, 5), i);
    indices.insert(EncodeOffer(o, 5));
  }
  EXPECT_EQ(indices.size(), 500u);
  EXPECT_EQ(NegotiationActionName(Offer(kWheat, 2, kOre, 1), 5), "offer 2 Wheat for 1 Ore");
  EXPECT_EQ(NegotiationActionName(NegotiationState::kAccept, 5), "accept");
  EXPECT_EQ(NegotiationActionName(NegotiationState::kDeny, 5), "deny");
}

TEST(Negotiation, AnAcceptedTradeMovesTheResources) {
  NegotiationState s = Dealt(kBase, kTens, kBase, kTens);
  // Nothing pending: offers only, and only what player 0 can afford (all of 1-5 units).
  std::vector<int> legal = s.LegalActions();
  EXPECT_EQ(legal.size(), 500u);
  EXPECT_EQ(legal.front(), NegotiationState::kFirstOffer);
  s.ApplyAction(Offer(kWheat, 4, kOre, 1));  // player 0 gives 4 Wheat for 1 Ore
  EXPECT_EQ(s.CurrentPlayer(), 1);
  EXPECT_EQ(s.LegalActions()[0], NegotiationState::kAccept);
  EXPECT_EQ(s.LegalActions()[1], NegotiationState::kDeny);
  s.ApplyAction(NegotiationState::kAccept);
  EXPECT_EQ(s.holdings(0), (Amounts{6, 10, 10, 10, 11}));
  EXPECT_EQ(s.holdings(1), (Amounts{14, 10, 10, 10, 9}));
  EXPECT_EQ(s.Gain(0), 40 - 20);
  EXPECT_EQ(s.Gain(1), 20 - 40);
  EXPECT_EQ(s.pending_offer(), -1);
  EXPECT_FALSE(s.IsLegal(NegotiationState::kAccept));
  EXPECT_FALSE(s.IsLegal(NegotiationState::kDeny));
}

TEST(Negotiation, AcceptNeedsTheUnitsAskedFor) {
  Amounts poor_in_ore = {10, 10, 10, 10, 5};
  NegotiationState s = Dealt(kBase, kTens, kBase, poor_in_ore);
  s.ApplyAction(Offer(kWheat, 1, kOre, 5));
  EXPECT_TRUE(s.IsLegal(NegotiationState::kAccept));
  NegotiationState t = Dealt(kBase, kTens, kBase, poor_in_ore);
  t.ApplyAction(Offer(kWheat, 1, kOre, 5));
  t.ApplyAction(NegotiationState::kAccept);  // player 1 now holds 0 Ore
  t.ApplyAction(Offer(kWheat, 1, kOre, 1));
  EXPECT_FALSE(t.IsLegal(NegotiationState::kAccept));
  EXPECT_TRUE(t.IsLegal(NegotiationState::kDeny));
  EXPECT_FALSE(t.IsLegal(Offer(kOre, 1, kWheat, 1)));  // nor can it offer Ore
}

TEST(Negotiation, ACounterOfferDeniesThePendingOne) {
  NegotiationState s = Dealt(kBase, kTens, kBase, kTens);
  s.ApplyAction(Offer(kWheat, 4, kOre, 1));   // player 0
  s.ApplyAction(Offer(kSheep, 2, kWood, 3));  // player 1 counters
  EXPECT_EQ(s.pending_offer(), Offer(kSheep, 2, kWood, 3));
  s.ApplyAction(NegotiationState::kAccept);  // player 0 accepts the counter-offer
  EXPECT_EQ(s.holdings(0), (Amounts{10, 7, 12, 10, 10}));
  EXPECT_EQ(s.holdings(1), (Amounts{10, 13, 8, 10, 10}));
}

TEST(Negotiation, ADenyClearsThePendingOffer) {
  NegotiationState s = Dealt(kBase, kTens, kBase, kTens);
  s.ApplyAction(Offer(kWheat, 4, kOre, 1));
  s.ApplyAction(NegotiationState::kDeny);
  EXPECT_EQ(s.pending_offer(), -1);
  EXPECT_EQ(s.holdings(0), kTens);
  EXPECT_EQ(s.CurrentPlayer(), 0);
  EXPECT_FALSE(s.IsLegal(NegotiationState::kAccept));
}

TEST(Negotiation, TheTurnLimitEndsTheGame) {
  NegotiationState s = Dealt(kBase, kTens, kBase, kTens, {.max_turns = 4, .max_units = 5});
  for (int turn = 0; turn < 4; ++turn) {
    EXPECT_EQ(s.CurrentPlayer(), turn % 2);
    s.ApplyAction(Offer(kWheat, 1, kWood, 1));
  }
  EXPECT_TRUE(s.IsTerminal());
  EXPECT_TRUE(s.LegalActions().empty());
  EXPECT_EQ(s.Returns(), (std::vector<double>{0, 0}));  // no trade: equal gains of 0
  NegotiationState d = Dealt(kBase, kTens, kBase, kTens);
  for (int turn = 0; turn < 10; ++turn) {
    EXPECT_FALSE(d.IsTerminal());
    d.ApplyAction(Offer(kWheat, 1, kWood, 1));
  }
  EXPECT_TRUE(d.IsTerminal());
}

TEST(Negotiation, TheLargerGainAtOwnPricesWins) {
  // Player 0 prizes Wood (12) over Wheat (5); player 1 prizes Wheat (6) and cares less for Wood
  // (8).
  Amounts values0 = {5, 12, 15, 25, 40};
  Amounts values1 = {6, 8, 15, 25, 40};
  NegotiationState s = Dealt(values0, kTens, values1, kTens, {.max_turns = 2, .max_units = 5});
  s.ApplyAction(Offer(kWheat, 2, kWood, 1));  // player 0: -10 + 12 = +2; player 1: +12 - 8 = +4
  s.ApplyAction(NegotiationState::kAccept);
  EXPECT_EQ(s.Gain(0), 2);
  EXPECT_EQ(s.Gain(1), 4);
  EXPECT_EQ(s.Returns(), (std::vector<double>{-1, 1}));
  NegotiationState t = Dealt(values0, kTens, values1, kTens, {.max_turns = 2, .max_units = 5});
  t.ApplyAction(Offer(kWheat, 1, kWood, 1));  // player 0: -5 + 12 = +7; player 1: +6 - 8 = -2
  t.ApplyAction(NegotiationState::kAccept);
  EXPECT_EQ(t.Returns(), (std::vector<double>{1, -1}));
}

TEST(Negotiation, PlayersSeeOwnValuesAndEveryActionButNotTheOthersValues) {
  Amounts values1 = {6, 9, 13, 27, 35};
  NegotiationState s = Dealt(kBase, kTens, values1, kTens);
  s.ApplyAction(Offer(kWheat, 4, kOre, 1));
  EXPECT_EQ(s.InformationStateString(0),
            "p0 values 5,10,15,25,40 start 10,10,10,10,10 | offer 4 Wheat for 1 Ore");
  EXPECT_EQ(s.InformationStateString(1),
            "p1 values 6,9,13,27,35 start 10,10,10,10,10 | offer 4 Wheat for 1 Ore");
  std::vector<float> obs(31);
  s.ObservationTensor(1, obs);
  EXPECT_EQ(obs[1], 1.f);
  EXPECT_FLOAT_EQ(obs[2], 6 / 40.f);
  EXPECT_EQ(obs[17], 1.f);           // an offer is pending
  EXPECT_EQ(obs[18 + kWheat], 1.f);  // player 1 would receive Wheat
  EXPECT_EQ(obs[23 + kOre], 1.f);    // and give Ore
  EXPECT_FLOAT_EQ(obs[28], 4 / 5.f);
  EXPECT_FLOAT_EQ(obs[29], 1 / 5.f);
  EXPECT_FLOAT_EQ(obs[30], 1 / 10.f);
  EXPECT_NE(
      s.ObservationString(1).find("Pending offer from player 0: you get 4 Wheat and give 1 Ore"),
      std::string::npos)
      << s.ObservationString(1);
}

// Three turns with `observe_history` set: player 0 offers 4 Wheat for 1 Ore, player 1 counters
// with 1 Ore for 2 Wood, player 0 denies. `plain` gets player 1's 31-float observation of them.
NegotiationState ThreeTurns(int observe_history, std::vector<float>* plain) {
  NegotiationOptions options;
  options.observe_history = observe_history;
  NegotiationState s = Dealt(kBase, kTens, kBase, kTens, options);
  s.ApplyAction(Offer(kWheat, 4, kOre, 1));
  s.ApplyAction(Offer(kOre, 1, kWood, 2));
  s.ApplyAction(NegotiationState::kDeny);
  NegotiationState without = Dealt(kBase, kTens, kBase, kTens);
  for (int a : s.history()) without.ApplyAction(a);
  plain->assign(31, 0.f);
  without.ObservationTensor(1, *plain);
  return s;
}

TEST(Negotiation, WithObserveHistoryTheObservationCarriesEveryTurn) {
  std::vector<float> plain;
  NegotiationState s = ThreeTurns(1, &plain);
  EXPECT_EQ(NegotiationGame(s.options()).ObservationShape(), std::vector<int>{31 + 15 * 10});
  EXPECT_EQ(NegotiationGame().ObservationShape(), std::vector<int>{31});
  std::vector<float> obs(31 + 150, -1.f);
  s.ObservationTensor(1, obs);
  // The first 31 floats are the plain observation; then one slot per turn, as the information
  // state has them, and zeros for the turns not taken.
  EXPECT_EQ(std::vector<float>(obs.begin(), obs.begin() + 31), plain);
  std::vector<float> info(12 + 150);
  s.InformationStateTensor(1, info);
  EXPECT_EQ(std::vector<float>(obs.begin() + 31, obs.end()),
            std::vector<float>(info.begin() + 12, info.end()));
  EXPECT_EQ(obs[31 + 0], 1.f);               // turn 0: an offer ...
  EXPECT_EQ(obs[31 + 3 + kWheat], 1.f);      // ... giving Wheat
  EXPECT_EQ(obs[31 + 15 + 8 + kWood], 1.f);  // turn 1: asking for Wood
  EXPECT_EQ(obs[31 + 30 + 2], 1.f);          // turn 2: deny
  for (size_t i = 31 + 45; i < obs.size(); ++i) EXPECT_EQ(obs[i], 0.f) << i;
}

// A 16-float recent-history slot holding an offer: taken by the observer or not, and what the
// observer would give and receive were it accepted (max_units 5).
void ExpectOfferSlot(std::span<const float> slot, bool mine, int given, int given_units,
                     int received, int received_units) {
  EXPECT_EQ(slot[0], 1.f);
  EXPECT_EQ(slot[3], mine ? 1.f : 0.f);
  EXPECT_EQ(slot[4 + given], 1.f);
  EXPECT_EQ(slot[9 + received], 1.f);
  EXPECT_FLOAT_EQ(slot[14], given_units / 5.f);
  EXPECT_FLOAT_EQ(slot[15], received_units / 5.f);
}

TEST(Negotiation, RecentHistoryComesNewestFirstFromTheObserversSide) {
  std::vector<float> plain;
  NegotiationState s = ThreeTurns(2, &plain);
  EXPECT_EQ(NegotiationGame(s.options()).ObservationShape(), std::vector<int>{31 + 16 * 10});
  std::vector<float> obs(31 + 160, -1.f);
  s.ObservationTensor(1, obs);
  EXPECT_EQ(std::vector<float>(obs.begin(), obs.begin() + 31), plain);
  // Slot 0, the newest: player 0's deny.
  std::span<const float> deny(obs.data() + 31, 16);
  EXPECT_EQ(deny[2], 1.f);
  EXPECT_EQ(deny[3], 0.f);  // not player 1's own
  // Slot 1: player 1's own counter, giving 1 Ore for 2 Wood.
  ExpectOfferSlot({obs.data() + 31 + 16, 16}, /*mine=*/true, kOre, 1, kWood, 2);
  // Slot 2: player 0's offer of 4 Wheat for 1 Ore, which player 1 would take: give Ore, get Wheat.
  ExpectOfferSlot({obs.data() + 31 + 32, 16}, /*mine=*/false, kOre, 1, kWheat, 4);
  for (size_t i = 31 + 48; i < obs.size(); ++i) EXPECT_EQ(obs[i], 0.f) << i;
  // Player 0 sees the same turns with the sides swapped.
  s.ObservationTensor(0, obs);
  EXPECT_EQ(obs[31 + 3], 1.f);                // the deny was player 0's
  EXPECT_EQ(obs[31 + 16 + 9 + kOre], 1.f);    // the counter would give player 0 Ore
  EXPECT_EQ(obs[31 + 32 + 4 + kWheat], 1.f);  // its own offer gives Wheat
}

}  // namespace
}  // namespace rally
