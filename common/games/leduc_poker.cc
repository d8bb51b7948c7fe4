#include "common/games/leduc_poker.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace rally {
namespace {

constexpr char kRankNames[] = "JQK";
constexpr char kSuitNames[] = "sh";
constexpr int kRaiseAmounts[2] = {2, 4};
constexpr int kSlotsPerRound = 4;  // the longest round: call, raise, raise, call

int Rank(int card) { return card / 2; }

std::string CardName(int card, bool by_rank) {
  if (card < 0) return "";
  std::string s(1, kRankNames[Rank(card)]);
  if (!by_rank) s.push_back(kSuitNames[card % 2]);
  return s;
}

}  // namespace

bool LeducPokerState::RoundOver() const {
  return (num_raises_ == 0 && num_calls_ == 2) || (num_raises_ > 0 && num_calls_ == 1);
}

int LeducPokerState::CurrentPlayer() const {
  if (cards_[1] < 0) return kChancePlayer;
  if (folded_ >= 0 || finished_) return kTerminalPlayer;
  if (round_ == 1 && public_card_ < 0) return kChancePlayer;
  return static_cast<int>(sequences_[round_].size()) % 2;
}

std::vector<int> LeducPokerState::LegalActions() const {
  int player = CurrentPlayer();
  std::vector<int> actions;
  if (player == kTerminalPlayer) return actions;
  if (player == kChancePlayer) {
    for (int c = 0; c < kNumCards; ++c) {
      if (c != cards_[0] && c != cards_[1] && c != public_card_) actions.push_back(c);
    }
    return actions;
  }
  if (stakes_ > contribution_[player]) actions.push_back(kFold);
  actions.push_back(kCall);
  if (num_raises_ < kMaxRaisesPerRound) actions.push_back(kRaise);
  return actions;
}

std::vector<std::pair<int, double>> LeducPokerState::ChanceOutcomes() const {
  if (!IsChanceNode()) return {};
  std::vector<int> cards = LegalActions();
  std::vector<std::pair<int, double>> outcomes;
  for (int c : cards) outcomes.emplace_back(c, 1.0 / cards.size());
  return outcomes;
}

void LeducPokerState::ApplyAction(int action) {
  int player = CurrentPlayer();
  if (player == kChancePlayer) {
    if (cards_[0] < 0) {
      cards_[0] = action;
    } else if (cards_[1] < 0) {
      cards_[1] = action;
    } else {
      public_card_ = action;
    }
    return;
  }
  sequences_[round_].push_back(action);
  if (action == kFold) {
    folded_ = player;
    return;
  }
  if (action == kCall) {
    contribution_[player] = stakes_;
    ++num_calls_;
    if (RoundOver()) {
      if (round_ == 0) {
        round_ = 1;
        num_raises_ = 0;
        num_calls_ = 0;
      } else {
        finished_ = true;
      }
    }
    return;
  }
  stakes_ += kRaiseAmounts[round_];
  contribution_[player] = stakes_;
  ++num_raises_;
  num_calls_ = 0;
}

std::vector<double> LeducPokerState::Returns() const {
  if (!IsTerminal()) return {0.0, 0.0};
  if (folded_ >= 0) {
    double lost = contribution_[folded_];
    return folded_ == 0 ? std::vector<double>{-lost, lost} : std::vector<double>{lost, -lost};
  }
  auto strength = [&](int player) {
    int rank = Rank(cards_[player]);
    return rank == Rank(public_card_) ? 10 + rank : rank;
  };
  int s0 = strength(0);
  int s1 = strength(1);
  if (s0 == s1) return {0.0, 0.0};
  double pot_share = stakes_;  // both players have put in the stakes at a showdown
  return s0 > s1 ? std::vector<double>{pot_share, -pot_share}
                 : std::vector<double>{-pot_share, pot_share};
}

void LeducPokerState::ObservationTensor(int player, std::span<float> out) const {
  // What is on the table: the information state (cards and every bet of the hand, which the
  // player has seen) and both players' chips in the pot. The chips alone would merge histories
  // with equal pots ("rc" and "crc" both reach round two at 3 / 3), and a network fed them could
  // not play those information states differently.
  InformationStateTensor(player, out.first(30));
  out[30] = static_cast<float>(contribution_[0]);
  out[31] = static_cast<float>(contribution_[1]);
}

void LeducPokerState::InformationStateTensor(int player, std::span<float> out) const {
  std::fill(out.begin(), out.begin() + 30, 0.f);
  out[player] = 1.f;
  if (cards_[player] >= 0) out[2 + cards_[player]] = 1.f;
  if (public_card_ >= 0) out[8 + public_card_] = 1.f;
  for (int r = 0; r < 2; ++r) {
    for (size_t i = 0; i < sequences_[r].size() && i < kSlotsPerRound; ++i) {
      int a = sequences_[r][i];
      if (a == kFold) continue;
      out[14 + (r * kSlotsPerRound + i) * 2 + (a == kCall ? 0 : 1)] = 1.f;
    }
  }
}

std::string LeducPokerState::Key(int player, bool by_rank) const {
  std::string s = CardName(cards_[player], by_rank) + ":" + CardName(public_card_, by_rank) + ":";
  for (int a : sequences_[0]) s += LeducActionName(a);
  if (public_card_ >= 0) {
    s += "/";
    for (int a : sequences_[1]) s += LeducActionName(a);
  }
  return s;
}

std::string LeducPokerState::InformationStateString(int player) const {
  return absl::StrCat("p", player, " ", Key(player, /*by_rank=*/false));
}

std::string LeducPokerState::ObservationString(int player) const {
  std::string card = cards_[player] >= 0 ? CardName(cards_[player], false) : "?";
  std::string board = public_card_ >= 0 ? CardName(public_card_, false) : "none";
  return absl::StrCat("Your card: ", card, ". Public card: ", board, ". Round ", round_ + 1,
                      ". Chips in the pot: you ", contribution_[player], ", opponent ",
                      contribution_[1 - player], ".");
}

std::string LeducPokerState::ActionToString(int player, int action) const {
  if (player == kChancePlayer) return CardName(action, false);
  return action == kFold ? "fold" : action == kCall ? "call" : "raise";
}

std::string LeducPokerState::ToString() const {
  auto name = [](int c) { return c >= 0 ? CardName(c, false) : std::string("?"); };
  std::string betting;
  for (int a : sequences_[0]) betting += LeducActionName(a);
  if (public_card_ >= 0) {
    betting += "/";
    for (int a : sequences_[1]) betting += LeducActionName(a);
  }
  return absl::StrCat("cards ", name(cards_[0]), " ", name(cards_[1]), ", public ",
                      name(public_card_), ", betting ", betting);
}

std::unique_ptr<State> LeducPokerState::Clone() const {
  return std::make_unique<LeducPokerState>(*this);
}

std::string LeducPolicyKey(const State& state) {
  const auto& s = static_cast<const LeducPokerState&>(state);
  return s.Key(s.CurrentPlayer(), /*by_rank=*/true);
}

std::string LeducActionName(int action) {
  return action == LeducPokerState::kFold ? "f" : action == LeducPokerState::kCall ? "c" : "r";
}

}  // namespace rally
