#include "common/eval/negotiation_trader.h"

#include <gtest/gtest.h>

namespace rally {
namespace {

using Amounts = std::array<int, kNumResources>;
constexpr int kWheat = 0, kWood = 1, kOre = 4;

int Offer(int give, int give_units, int get, int get_units) {
  return NegotiationState::kFirstOffer + EncodeOffer({give, give_units, get, get_units}, 5);
}

NegotiationState Dealt(const Amounts& values0, const Amounts& values1) {
  NegotiationState s({});
  const Amounts tens = {10, 10, 10, 10, 10};
  for (const Amounts* a : {&values0, &tens, &values1, &tens}) {
    for (int v : *a) s.ApplyAction(v);
  }
  return s;
}

const Amounts kBase = {5, 10, 15, 25, 40};

TEST(NegotiationTrader, AcceptsATradeThatGainsItValue) {
  NegotiationState s = Dealt(kBase, kBase);
  s.ApplyAction(Offer(kOre, 1, kWheat, 2));  // the trader (player 1) gets 40 for 10
  std::mt19937_64 rng(1);
  EXPECT_EQ(NegotiationTrader().Act(s, rng), NegotiationState::kAccept);
  EXPECT_EQ(NegotiationTrader::TradeGain(s, 1, 0, {kOre, 1, kWheat, 2}), 30);
  EXPECT_EQ(NegotiationTrader::TradeGain(s, 0, 0, {kOre, 1, kWheat, 2}), -30);
}

TEST(NegotiationTrader, CountersALosingTradeWithItsBestFairOffer) {
  // The trader (player 1) values Wood above base (12) and Ore below (32).
  Amounts trader_values = {5, 12, 15, 25, 32};
  NegotiationState s = Dealt(kBase, trader_values);
  s.ApplyAction(Offer(kWheat, 2, kOre, 1));  // asks the trader for Ore (32 to it) for Wheat (10)
  std::mt19937_64 rng(1);
  int action = NegotiationTrader().Act(s, rng);
  // Of the offers fair at base prices, 1 Ore for 4 Wood gains it most: 48 - 32 = +16 (at base,
  // 40 for 40).
  EXPECT_EQ(action, Offer(kOre, 1, kWood, 4)) << NegotiationActionName(action, 5);
}

TEST(NegotiationTrader, DeniesWhenNoFairOfferGainsIt) {
  NegotiationState s = Dealt(kBase, kBase);  // at base prices no fair offer gains
  s.ApplyAction(Offer(kWheat, 2, kOre, 1));
  std::mt19937_64 rng(1);
  EXPECT_EQ(NegotiationTrader().Act(s, rng), NegotiationState::kDeny);
}

TEST(NegotiationTrader, BeatsRandomPlay) {
  auto game = NegotiationGame();
  NegotiationTrader trader;
  RandomAgent random;
  std::mt19937_64 rng(2);
  int wins = 0, losses = 0;
  const int kGames = 200;
  for (int g = 0; g < kGames; ++g) {
    int seat = g % 2;
    const Agent* seats[2] = {&random, &random};
    seats[seat] = &trader;
    double r = PlayGame(game, seats, rng)[seat];
    wins += r > 0;
    losses += r < 0;
  }
  EXPECT_GE(wins, 150) << "losses " << losses;
}

}  // namespace
}  // namespace rally
