#include "common/games/negotiation.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rally {
namespace {

constexpr float kValueScale = 40.f;
constexpr float kHoldingScale = 50.f;  // the most of a resource one player can hold
constexpr int kSlotSize = 15;

int TotalValue(const std::array<int, kNumResources>& values,
               const std::array<int, kNumResources>& holdings) {
  int total = 0;
  for (int r = 0; r < kNumResources; ++r) total += values[r] * holdings[r];
  return total;
}

std::string ResourceList(const std::array<int, kNumResources>& amounts) {
  std::vector<std::string> parts;
  for (int r = 0; r < kNumResources; ++r)
    parts.push_back(absl::StrCat(kResourceNames[r], " ", amounts[r]));
  return absl::StrJoin(parts, ", ");
}

// One action of the history: its kind one-hot (offer, accept, deny) in kind[0..3) and, for an
// offer, what one side gives and receives were it accepted in offer[0..12): given resource
// one-hot (5), received resource one-hot (5), given units and received units / max_units. The
// side is the proposer's, or the other player's when `other_side`.
void WriteAction(int action, int max_units, bool other_side, std::span<float> kind,
                 std::span<float> offer) {
  if (action == NegotiationState::kAccept) {
    kind[1] = 1.f;
  } else if (action == NegotiationState::kDeny) {
    kind[2] = 1.f;
  } else {
    NegotiationOffer o = DecodeOffer(action - NegotiationState::kFirstOffer, max_units);
    if (other_side) o = {o.get, o.get_units, o.give, o.give_units};
    kind[0] = 1.f;
    offer[o.give] = 1.f;
    offer[kNumResources + o.get] = 1.f;
    offer[2 * kNumResources] = static_cast<float>(o.give_units) / max_units;
    offer[2 * kNumResources + 1] = static_cast<float>(o.get_units) / max_units;
  }
}

}  // namespace

std::pair<int, int> NegotiationValueRange(int resource) {
  int base = kBaseValues[resource];
  int low = (4 * base + 4) / 5;  // ceil(0.8 * base)
  int high = 6 * base / 5;       // floor(1.2 * base)
  return {std::max(low, 5), std::min(high, 40)};
}

int EncodeOffer(const NegotiationOffer& offer, int max_units) {
  int get_slot = offer.get - (offer.get > offer.give ? 1 : 0);
  return ((offer.give * (kNumResources - 1) + get_slot) * max_units + offer.give_units - 1) *
             max_units +
         offer.get_units - 1;
}

NegotiationOffer DecodeOffer(int offer_index, int max_units) {
  NegotiationOffer offer;
  offer.get_units = offer_index % max_units + 1;
  offer_index /= max_units;
  offer.give_units = offer_index % max_units + 1;
  offer_index /= max_units;
  int get_slot = offer_index % (kNumResources - 1);
  offer.give = offer_index / (kNumResources - 1);
  offer.get = get_slot + (get_slot >= offer.give ? 1 : 0);
  return offer;
}

std::string NegotiationActionName(int action, int max_units) {
  if (action == NegotiationState::kAccept) return "accept";
  if (action == NegotiationState::kDeny) return "deny";
  NegotiationOffer o = DecodeOffer(action - NegotiationState::kFirstOffer, max_units);
  return absl::StrCat("offer ", o.give_units, " ", kResourceNames[o.give], " for ", o.get_units,
                      " ", kResourceNames[o.get]);
}

NegotiationState::NegotiationState(const NegotiationOptions& options) : options_(options) {}

int NegotiationState::CurrentPlayer() const {
  if (chance_step_ < kNumChanceNodes) return kChancePlayer;
  if (turn() >= options_.max_turns) return kTerminalPlayer;
  return turn() % 2;
}

std::vector<std::pair<int, double>> NegotiationState::ChanceOutcomes() const {
  if (!IsChanceNode()) return {};
  bool is_value = chance_step_ % (2 * kNumResources) < kNumResources;
  auto [low, high] = is_value ? NegotiationValueRange(chance_step_ % kNumResources)
                              : std::pair<int, int>{kMinHolding, kMaxHolding};
  std::vector<std::pair<int, double>> outcomes;
  for (int v = low; v <= high; ++v) outcomes.emplace_back(v, 1.0 / (high - low + 1));
  return outcomes;
}

std::vector<int> NegotiationState::LegalActions() const {
  std::vector<int> actions;
  int player = CurrentPlayer();
  if (player == kTerminalPlayer) return actions;
  if (player == kChancePlayer) {
    for (const auto& [outcome, probability] : ChanceOutcomes()) actions.push_back(outcome);
    return actions;
  }
  const auto& mine = holdings_[player];
  if (pending_offer_ >= 0) {
    NegotiationOffer o = DecodeOffer(pending_offer_ - kFirstOffer, options_.max_units);
    if (mine[o.get] >= o.get_units) actions.push_back(kAccept);
    actions.push_back(kDeny);
  }
  int num_offers = kNumResources * (kNumResources - 1) * options_.max_units * options_.max_units;
  for (int i = 0; i < num_offers; ++i) {
    NegotiationOffer o = DecodeOffer(i, options_.max_units);
    if (mine[o.give] >= o.give_units) actions.push_back(kFirstOffer + i);
  }
  return actions;
}

void NegotiationState::Transfer(int from, int resource, int units) {
  holdings_[from][resource] -= units;
  holdings_[1 - from][resource] += units;
}

void NegotiationState::ApplyAction(int action) {
  if (IsChanceNode()) {
    int player = chance_step_ / (2 * kNumResources);
    int resource = chance_step_ % kNumResources;
    if (chance_step_ % (2 * kNumResources) < kNumResources) {
      values_[player][resource] = action;
    } else {
      holdings_[player][resource] = action;
      starting_holdings_[player][resource] = action;
    }
    ++chance_step_;
    return;
  }
  int player = CurrentPlayer();
  if (action == kAccept) {
    NegotiationOffer o = DecodeOffer(pending_offer_ - kFirstOffer, options_.max_units);
    Transfer(1 - player, o.give, o.give_units);  // the proposer gives
    Transfer(player, o.get, o.get_units);
    pending_offer_ = -1;
  } else if (action == kDeny) {
    pending_offer_ = -1;
  } else {
    pending_offer_ = action;
  }
  history_.push_back(action);
}

int NegotiationState::Gain(int player) const {
  return TotalValue(values_[player], holdings_[player]) -
         TotalValue(values_[player], starting_holdings_[player]);
}

std::vector<double> NegotiationState::Returns() const {
  if (!IsTerminal()) return {0.0, 0.0};
  int g0 = Gain(0);
  int g1 = Gain(1);
  if (g0 == g1) return {0.0, 0.0};
  return g0 > g1 ? std::vector<double>{1.0, -1.0} : std::vector<double>{-1.0, 1.0};
}

void NegotiationState::ObservationTensor(int player, std::span<float> out) const {
  std::fill(out.begin(), out.begin() + 31, 0.f);
  out[player] = 1.f;
  for (int r = 0; r < kNumResources; ++r) {
    out[2 + r] = values_[player][r] / kValueScale;
    out[7 + r] = holdings_[player][r] / kHoldingScale;
    out[12 + r] = starting_holdings_[player][r] / kHoldingScale;
  }
  if (pending_offer_ >= 0) {
    NegotiationOffer o = DecodeOffer(pending_offer_ - kFirstOffer, options_.max_units);
    out[17] = 1.f;
    out[18 + o.give] = 1.f;  // what the proposer gives, this player would receive
    out[23 + o.get] = 1.f;
    out[28] = static_cast<float>(o.give_units) / options_.max_units;
    out[29] = static_cast<float>(o.get_units) / options_.max_units;
  }
  out[30] = static_cast<float>(turn()) / options_.max_turns;
  if (options_.observe_history == 1) WriteHistorySlots(out.subspan(31));
  if (options_.observe_history == 2) WriteRecentHistorySlots(player, out.subspan(31));
}

void NegotiationState::WriteRecentHistorySlots(int player, std::span<float> out) const {
  constexpr int kRecentSlotSize = kSlotSize + 1;
  std::fill(out.begin(), out.begin() + kRecentSlotSize * options_.max_turns, 0.f);
  const int taken = turn();
  for (int t = 0; t < taken; ++t) {
    std::span<float> slot = out.subspan(kRecentSlotSize * (taken - 1 - t), kRecentSlotSize);
    bool mine = t % 2 == player;
    slot[3] = mine ? 1.f : 0.f;
    WriteAction(history_[t], options_.max_units, !mine, slot.subspan(0, 3), slot.subspan(4));
  }
}

void NegotiationState::WriteHistorySlots(std::span<float> out) const {
  std::fill(out.begin(), out.begin() + kSlotSize * options_.max_turns, 0.f);
  for (size_t t = 0; t < history_.size(); ++t) {
    std::span<float> slot = out.subspan(kSlotSize * t, kSlotSize);
    WriteAction(history_[t], options_.max_units, false, slot.subspan(0, 3), slot.subspan(3));
  }
}

void NegotiationState::InformationStateTensor(int player, std::span<float> out) const {
  std::fill(out.begin(), out.begin() + 12, 0.f);
  out[player] = 1.f;
  for (int r = 0; r < kNumResources; ++r) {
    out[2 + r] = values_[player][r] / kValueScale;
    out[7 + r] = starting_holdings_[player][r] / kHoldingScale;
  }
  WriteHistorySlots(out.subspan(12));
}

std::string NegotiationState::HistoryString() const {
  std::vector<std::string> parts;
  for (int a : history_) parts.push_back(NegotiationActionName(a, options_.max_units));
  return absl::StrJoin(parts, "; ");
}

std::string NegotiationState::InformationStateString(int player) const {
  return absl::StrCat("p", player, " values ", absl::StrJoin(values_[player], ","), " start ",
                      absl::StrJoin(starting_holdings_[player], ","), " | ", HistoryString());
}

std::string NegotiationState::ObservationString(int player) const {
  std::string s = absl::StrCat("Simple Negotiation, ", turn(), " of ", options_.max_turns,
                               " turns taken. You are player ", player, ".\n");
  absl::StrAppend(&s, "Your values: ", ResourceList(values_[player]), ".\n");
  absl::StrAppend(&s, "Your holdings: ", ResourceList(holdings_[player]), " (worth ",
                  TotalValue(values_[player], holdings_[player]), " to you; ",
                  TotalValue(values_[player], starting_holdings_[player]), " at the start).\n");
  if (pending_offer_ >= 0) {
    NegotiationOffer o = DecodeOffer(pending_offer_ - kFirstOffer, options_.max_units);
    absl::StrAppend(&s, "Pending offer from player ", 1 - player, ": you get ", o.give_units, " ",
                    kResourceNames[o.give], " and give ", o.get_units, " ", kResourceNames[o.get],
                    ".");
  } else {
    absl::StrAppend(&s, "No offer is pending.");
  }
  return s;
}

std::string NegotiationState::ActionToString(int player, int action) const {
  if (player == kChancePlayer) return std::to_string(action);
  return NegotiationActionName(action, options_.max_units);
}

std::string NegotiationState::ToString() const {
  std::string s;
  for (int p = 0; p < 2; ++p) {
    absl::StrAppend(&s, "player ", p, ": values ", absl::StrJoin(values_[p], ","), "; holdings ",
                    absl::StrJoin(holdings_[p], ","), "; start ",
                    absl::StrJoin(starting_holdings_[p], ","), "; gain ", Gain(p), "\n");
  }
  absl::StrAppend(&s, "history: ", HistoryString());
  return s;
}

std::unique_ptr<State> NegotiationState::Clone() const {
  return std::make_unique<NegotiationState>(*this);
}

GameParameters NegotiationGame::Parameters() const {
  return {{"max_turns", std::to_string(options_.max_turns)},
          {"max_units", std::to_string(options_.max_units)},
          {"observe_history", std::to_string(options_.observe_history)}};
}

int NegotiationGame::NumDistinctActions() const {
  return NegotiationState::kFirstOffer +
         kNumResources * (kNumResources - 1) * options_.max_units * options_.max_units;
}

}  // namespace rally
