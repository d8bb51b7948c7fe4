#include "common/games/kuhn_poker.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace rally {
namespace {

constexpr char kCardNames[] = "JQK";

bool IsTerminalHistory(const std::vector<int>& h) {
  if (h.size() == 3) return true;
  return h.size() == 2 && !(h[0] == KuhnPokerState::kPass && h[1] == KuhnPokerState::kBet);
}

}  // namespace

int KuhnPokerState::CurrentPlayer() const {
  if (cards_[1] < 0) return kChancePlayer;
  if (IsTerminalHistory(history_)) return kTerminalPlayer;
  return static_cast<int>(history_.size()) % 2;
}

std::vector<int> KuhnPokerState::LegalActions() const {
  if (IsChanceNode()) {
    std::vector<int> cards;
    for (int c = 0; c < kNumCards; ++c) {
      if (c != cards_[0]) cards.push_back(c);
    }
    return cards;
  }
  if (IsTerminal()) return {};
  return {kPass, kBet};
}

std::vector<std::pair<int, double>> KuhnPokerState::ChanceOutcomes() const {
  if (!IsChanceNode()) return {};
  std::vector<int> cards = LegalActions();
  std::vector<std::pair<int, double>> outcomes;
  for (int c : cards) outcomes.emplace_back(c, 1.0 / cards.size());
  return outcomes;
}

void KuhnPokerState::ApplyAction(int action) {
  if (IsChanceNode()) {
    cards_[cards_[0] < 0 ? 0 : 1] = action;
    return;
  }
  history_.push_back(action);
}

int KuhnPokerState::Contribution(int player) const {
  int chips = 1;
  for (size_t i = 0; i < history_.size(); ++i) {
    if (static_cast<int>(i % 2) == player && history_[i] == kBet) ++chips;
  }
  return chips;
}

std::vector<double> KuhnPokerState::Returns() const {
  if (!IsTerminal()) return {0.0, 0.0};
  double c0 = Contribution(0);
  double c1 = Contribution(1);
  // A pass facing a bet is a fold: the folder loses what it put in.
  bool folded = history_.back() == kPass && std::count(history_.begin(), history_.end(), kBet) > 0;
  int winner;
  if (folded) {
    winner = static_cast<int>(history_.size()) % 2;  // the player after the folder
  } else {
    winner = cards_[0] > cards_[1] ? 0 : 1;
  }
  double won = winner == 0 ? c1 : c0;
  return winner == 0 ? std::vector<double>{won, -won} : std::vector<double>{-won, won};
}

void KuhnPokerState::ObservationTensor(int player, std::span<float> out) const {
  std::fill(out.begin(), out.begin() + 7, 0.f);
  out[player] = 1.f;
  if (cards_[player] >= 0) out[2 + cards_[player]] = 1.f;
  out[5] = static_cast<float>(Contribution(0));
  out[6] = static_cast<float>(Contribution(1));
}

void KuhnPokerState::InformationStateTensor(int player, std::span<float> out) const {
  std::fill(out.begin(), out.begin() + 11, 0.f);
  out[player] = 1.f;
  if (cards_[player] >= 0) out[2 + cards_[player]] = 1.f;
  for (size_t i = 0; i < history_.size(); ++i) out[5 + 2 * i + history_[i]] = 1.f;
}

std::string KuhnPokerState::HistoryString() const {
  std::string s;
  for (int a : history_) s += KuhnActionName(a);
  return s;
}

std::string KuhnPokerState::InformationStateString(int player) const {
  std::string card = cards_[player] >= 0 ? std::string(1, kCardNames[cards_[player]]) : "";
  return absl::StrCat("p", player, " ", card, HistoryString());
}

std::string KuhnPokerState::ObservationString(int player) const {
  std::string card = cards_[player] >= 0 ? std::string(1, kCardNames[cards_[player]]) : "?";
  return absl::StrCat("Your card: ", card, ". Chips in the pot: you ", Contribution(player),
                      ", opponent ", Contribution(1 - player), ".");
}

std::string KuhnPokerState::ActionToString(int player, int action) const {
  if (player == kChancePlayer) return std::string(1, kCardNames[action]);
  return action == kPass ? "pass" : "bet";
}

std::string KuhnPokerState::ToString() const {
  auto name = [](int c) { return c >= 0 ? std::string(1, kCardNames[c]) : std::string("?"); };
  return absl::StrCat("cards ", name(cards_[0]), " ", name(cards_[1]), ", history ",
                      HistoryString());
}

std::unique_ptr<State> KuhnPokerState::Clone() const {
  return std::make_unique<KuhnPokerState>(*this);
}

std::string KuhnPolicyKey(const State& state) {
  const auto& s = static_cast<const KuhnPokerState&>(state);
  return std::string(1, kCardNames[s.card(s.CurrentPlayer())]) + s.HistoryString();
}

std::string KuhnActionName(int action) { return action == KuhnPokerState::kPass ? "p" : "b"; }

}  // namespace rally
