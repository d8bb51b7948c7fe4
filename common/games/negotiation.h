// Simple Negotiation (SPIRAL): two players trade five resources that each values privately.
//
// Resources 0..4: Wheat, Wood, Sheep, Brick, Ore, with base values 5, 10, 15, 25, 40.
//
// Chance (20 nodes, in this order): for player 0 then player 1, the value of each resource, then
// the holding of each resource. A value is uniform over the integers within ±20% of the base,
// clipped to [5, 40] (Wheat 5-6, Wood 8-12, Sheep 12-18, Brick 20-30, Ore 32-40); a holding is
// uniform over 5-25 units. Chance outcomes are these numbers themselves.
//
// Play: players alternate, player 0 first, for `max_turns` turns in all (parameter, default 10);
// then the game ends. On a turn the player either
//   - makes one offer "give g units of resource X for r units of resource Y" (X != Y, 1 <= g, r
//     <= `max_units`, parameter, default 5), legal when the player holds g units of X; it replaces
//     any pending offer, so a counter-offer denies the pending one;
//   - accepts the pending offer (legal when one is pending and the player holds the r units of Y
//     asked for): the resources change hands at once;
//   - or denies the pending offer (legal when one is pending).
// Actions: 0 = accept, 1 = deny, 2 + EncodeOffer(offer) for offers, 2 + 20 * max_units^2 in all
// (502 by default). An offer that expires at the end of the game is void.
//
// Result: each player's gain is the value of their holdings at their own prices at the end minus
// at the start; the player with the larger gain gets +1 and the other -1; equal gains give 0/0.
//
// What a player knows: their own values and starting holdings, and every action (offers,
// accepts, denies) — so also their current holdings. The opponent's values and holdings stay
// private. Observation of player p (31 floats): p one-hot (2), p's values / 40 (5), p's holdings
// / 50 (5), p's starting holdings / 50 (5), the pending offer as p would take it — pending flag
// (1), resource p would receive one-hot (5), resource p would give one-hot (5), units received and
// units given / max_units (2) — and turns taken / max_turns (1); with the parameter
// `observe_history` 1, followed by the history slots of the information-state tensor (15 per
// turn, below), so that a memoryless policy sees which of its offers were refused. With
// `observe_history` 2, followed instead by one 16-float slot per turn taken, newest first, each
// from p's side: kind one-hot (offer, accept, deny) (3), taken by p (1), and for an offer what p
// would give and receive were it accepted: given resource one-hot (5), received resource one-hot
// (5), given units and received units / max_units (2). The slot of the opponent's latest action
// comes first, so a policy finds the turns that matter in the same place at every turn and seat.
// Information-state tensor (12 + 15 * max_turns floats): p one-hot (2), p's values / 40 (5), p's
// starting holdings / 50 (5), then per turn taken: kind one-hot (offer, accept, deny) (3), the
// offer's given resource one-hot (5), received resource one-hot (5), given units and received units
// / max_units (2), the offer seen from the player who made it.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "common/games/game.h"

namespace rally {

inline constexpr int kNumResources = 5;
inline constexpr std::array<int, kNumResources> kBaseValues = {5, 10, 15, 25, 40};
inline constexpr std::array<const char*, kNumResources> kResourceNames = {"Wheat", "Wood", "Sheep",
                                                                          "Brick", "Ore"};

// One offer, from the side of the player who makes it.
struct NegotiationOffer {
  int give = 0;        // resource the proposer gives
  int give_units = 1;  // 1..max_units
  int get = 1;         // resource the proposer receives, != give
  int get_units = 1;   // 1..max_units
  bool operator==(const NegotiationOffer&) const = default;
};

struct NegotiationOptions {
  int max_turns = 10;
  int max_units = 5;
  // 0: the 31 floats; 1: + the information state's history slots; 2: + the recent-history slots.
  int observe_history = 0;
};

class NegotiationState : public State {
 public:
  static constexpr int kAccept = 0;
  static constexpr int kDeny = 1;
  static constexpr int kFirstOffer = 2;
  static constexpr int kNumChanceNodes = 4 * kNumResources;

  explicit NegotiationState(const NegotiationOptions& options);

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

  const NegotiationOptions& options() const { return options_; }
  // `player`'s private value of each resource (0 until dealt).
  const std::array<int, kNumResources>& values(int player) const { return values_[player]; }
  const std::array<int, kNumResources>& holdings(int player) const { return holdings_[player]; }
  const std::array<int, kNumResources>& starting_holdings(int player) const {
    return starting_holdings_[player];
  }
  // Player turns taken so far.
  int turn() const { return static_cast<int>(history_.size()); }
  // The pending offer's action, or -1 when none is pending. It was made by the other player.
  int pending_offer() const { return pending_offer_; }
  // Value of `player`'s holdings now minus at the start, at `player`'s own prices.
  int Gain(int player) const;
  // Players' actions so far.
  const std::vector<int>& history() const { return history_; }

 private:
  void Transfer(int from, int resource, int units);
  // The 15-float slot of every turn taken, into `out` (15 * max_turns floats, cleared first).
  void WriteHistorySlots(std::span<float> out) const;
  // The 16-float slot of every turn taken, newest first, as `player` sees it (16 * max_turns
  // floats, cleared first).
  void WriteRecentHistorySlots(int player, std::span<float> out) const;
  std::string HistoryString() const;

  NegotiationOptions options_;
  int chance_step_ = 0;  // chance nodes done, 0..kNumChanceNodes
  std::array<std::array<int, kNumResources>, 2> values_{};
  std::array<std::array<int, kNumResources>, 2> holdings_{};
  std::array<std::array<int, kNumResources>, 2> starting_holdings_{};
  int pending_offer_ = -1;
  std::vector<int> history_;
};

class NegotiationGame : public Game {
 public:
  explicit NegotiationGame(const NegotiationOptions& options = {}) : options_(options) {}
  std::string Name() const override { return "negotiation"; }
  GameParameters Parameters() const override;
  int NumPlayers() const override { return 2; }
  int NumDistinctActions() const override;
  int MaxChanceOutcomes() const override { return 41; }
  std::vector<int> ObservationShape() const override {
    return {31 + options_.max_turns * (options_.observe_history == 0   ? 0
                                       : options_.observe_history == 1 ? 15
                                                                       : 16)};
  }
  std::vector<int> InformationStateShape() const override { return {12 + 15 * options_.max_turns}; }
  int MaxGameLength() const override { return options_.max_turns; }
  std::unique_ptr<State> NewInitialState() const override {
    return std::make_unique<NegotiationState>(options_);
  }
  const NegotiationOptions& options() const { return options_; }

 private:
  NegotiationOptions options_;
};

// The inclusive range of a resource's private value: within ±20% of its base, clipped to [5, 40].
std::pair<int, int> NegotiationValueRange(int resource);
inline constexpr int kMinHolding = 5;
inline constexpr int kMaxHolding = 25;

// Offers as actions: EncodeOffer gives the offer's index in [0, 20 * max_units^2); the action
// is NegotiationState::kFirstOffer plus it.
int EncodeOffer(const NegotiationOffer& offer, int max_units);
NegotiationOffer DecodeOffer(int offer_index, int max_units);
// "offer 2 Wheat for 3 Ore", "accept" or "deny".
std::string NegotiationActionName(int action, int max_units);

}  // namespace rally
