// Leduc poker, two players, with OpenSpiel's rules. The deck holds six cards: J, Q, K in two suits
// (card c has rank c / 2 and suit c % 2, so 0 = Js, 1 = Jh, 2 = Qs, ... 5 = Kh). Each player antes
// 1; chance deals a private card to player 0, then to player 1. Two betting rounds follow, each
// begun by player 0; before the second, chance deals one public card. Actions: fold (0), call (1;
// a check when nothing is owed), raise (2): match the current bet, then add 2 in the first round or
// 4 in the second. At most two raises a round; fold is legal only when facing a bet. A round ends
// when both players have checked, or a raise has been called. At the showdown a player whose card
// pairs the public card wins, else the higher private card; equal ranks split the pot (0/0). A
// fold gives the other player what the folder put in.
//
// Observation of player p (16 floats): p one-hot (2), p's card one-hot (6), public card one-hot
// (6), each player's chips in the pot (2). Information-state tensor (30 floats): p one-hot (2),
// p's card (6), public card (6), then for each round 4 action slots of (call, raise) bits.
// Information-state string: "p<player> " then the classic key with suits, e.g. "p1 Ks:Qh:rc/r".
// Cards told apart by suit, the game has 936 information states; by rank alone, 288.
//
// Classic notation (policy export): key = private rank, ':', public rank (empty before it is
// dealt), ':', the first round's actions in f/c/r, and once the public card is out '/' and the
// second round's actions, e.g. "K::r", "K:Q:rc/", "K:Q:rc/r". Action names "f", "c", "r".
#pragma once

#include <array>
#include <string>
#include <vector>

#include "common/games/game.h"

namespace rally {

class LeducPokerState : public State {
 public:
  static constexpr int kFold = 0;
  static constexpr int kCall = 1;
  static constexpr int kRaise = 2;
  static constexpr int kNumCards = 6;
  static constexpr int kMaxRaisesPerRound = 2;

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

  // The private card of `player`, or -1 before it is dealt.
  int card(int player) const { return cards_[player]; }
  // The public card, or -1 before it is dealt.
  int public_card() const { return public_card_; }
  // 0 for the first betting round, 1 for the second (from the end of the first on).
  int round() const { return round_; }
  // Chips `player` has put in the pot (ante included).
  int contribution(int player) const { return contribution_[player]; }
  // The key of `player` as the header describes it; suits kept unless `by_rank`.
  std::string Key(int player, bool by_rank) const;

 private:
  bool RoundOver() const;

  std::array<int, 2> cards_{-1, -1};
  int public_card_ = -1;
  int round_ = 0;
  std::array<std::vector<int>, 2> sequences_;  // actions of each round
  int stakes_ = 1;                             // what each player must have put in to stay
  std::array<int, 2> contribution_{1, 1};
  int num_raises_ = 0;  // in the current round
  int num_calls_ = 0;   // in the current round, since the last raise
  int folded_ = -1;     // the player who folded, or -1
  bool finished_ = false;
};

class LeducPokerGame : public Game {
 public:
  std::string Name() const override { return "leduc_poker"; }
  int NumPlayers() const override { return 2; }
  int NumDistinctActions() const override { return 3; }
  int MaxChanceOutcomes() const override { return LeducPokerState::kNumCards; }
  std::vector<int> ObservationShape() const override { return {32}; }
  std::vector<int> InformationStateShape() const override { return {30}; }
  int MaxGameLength() const override { return 8; }
  std::unique_ptr<State> NewInitialState() const override {
    return std::make_unique<LeducPokerState>();
  }
};

// The classic key of the player to move at a LeducPokerState decision node, e.g. "K:Q:rc/r".
std::string LeducPolicyKey(const State& state);
// "f", "c" or "r".
std::string LeducActionName(int action);

}  // namespace rally
