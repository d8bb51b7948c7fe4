// Kuhn poker, two players, with OpenSpiel's rules: a deck of three cards J < Q < K, each player
// antes 1, chance deals one card to player 0 then one to player 1 (uniformly from those left),
// then players act in turn starting with player 0: pass (action 0) or bet 1 (action 1).
// Histories: pp and bb go to a showdown (higher card wins the pot: ±1 or ±2), bp and pbp end in a
// fold (the bettor wins ±1), pbb shows down for ±2.
//
// Cards are 0 = J, 1 = Q, 2 = K. Chance outcomes are cards.
// Observation of player p (7 floats): p one-hot (2), p's card one-hot (3), each player's chips in
// the pot (2). Information-state tensor (11 floats): p one-hot (2), p's card one-hot (3), then
// for each of the 3 possible player actions a (pass, bet) one-hot pair, zero when not yet taken.
// Information-state string: "p<player> " followed by the player's card and the history, e.g.
// "p0 Qpb". The game has 12 information states, 6 per player.
//
// Classic notation (policy export): key = card then history ("Qpb"); actions "p" and "b".
#pragma once

#include <array>
#include <string>
#include <vector>

#include "common/games/game.h"

namespace rally {

class KuhnPokerState : public State {
 public:
  static constexpr int kPass = 0;
  static constexpr int kBet = 1;
  static constexpr int kNumCards = 3;

  int CurrentPlayer() const override;
  std::vector<int> LegalActions() const override;
  std::vector<std::pair<int, double>> ChanceOutcomes() const override;
  void ApplyAction(int action) override;
  std::vector<double> Returns() const override;
  void ObservationTensor(int player, std::span<float> out) const override;
  std::string ObservationString(int player) const override;
  std::string InformationStateString(int player) const override;
  void InformationStateTensor(int player, std::span<float> out) const override;
  std::string ActionToString(int player, int action) const override;
  std::string ToString() const override;
  std::unique_ptr<State> Clone() const override;

  // The card of `player` (0 = J, 1 = Q, 2 = K), or -1 before it is dealt.
  int card(int player) const { return cards_[player]; }
  // The players' actions so far.
  const std::vector<int>& history() const { return history_; }
  // The history in p/b letters, e.g. "pb".
  std::string HistoryString() const;
  // Chips `player` has put in the pot (ante included).
  int Contribution(int player) const;

 private:
  std::array<int, 2> cards_{-1, -1};
  std::vector<int> history_;
};

class KuhnPokerGame : public Game {
 public:
  std::string Name() const override { return "kuhn_poker"; }
  int NumPlayers() const override { return 2; }
  int NumDistinctActions() const override { return 2; }
  int MaxChanceOutcomes() const override { return KuhnPokerState::kNumCards; }
  std::vector<int> ObservationShape() const override { return {7}; }
  std::vector<int> InformationStateShape() const override { return {11}; }
  int MaxGameLength() const override { return 3; }
  std::unique_ptr<State> NewInitialState() const override {
    return std::make_unique<KuhnPokerState>();
  }
};

// The classic key of the player to move at a KuhnPokerState decision node, e.g. "Qpb".
std::string KuhnPolicyKey(const State& state);
// "p" (pass) or "b" (bet).
std::string KuhnActionName(int action);

}  // namespace rally
