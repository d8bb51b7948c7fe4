// Kuhn poker as text, with SPIRAL's move words: pass is [Check] before a bet and [Fold] facing one;
// bet is [Bet] before a bet and [Call] facing one. The last line lists the legal moves.
//   kCompact  rules   "Kuhn poker (J<Q<K), you are P0.\n"
//             turn    on the seat's first turn "Card K\n"; then "Opp [Bet]\n" for the
//                     opponent's move since the seat's previous turn, if any; then
//                     "Moves [Fold] [Call]\n"
//   kSpiral   rules   a paragraph: the deck, the ante, the acting order, the moves, the showdown
//             turn    "Your card: K\nBetting so far: Player 0 [Check], Player 1 [Bet]\n"
//                     "Your legal moves: [Fold], [Call]" ("Betting so far: none" at the start)
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/games/kuhn_poker.h"
#include "common/games/text_game.h"

namespace rally {
namespace {

constexpr char kCardNames[] = "JQK";

// Whether the player to act after the first `n` actions of `history` faces a bet.
bool FacesBet(const std::vector<int>& history, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (history[i] == KuhnPokerState::kBet) return true;
  }
  return false;
}

std::string MoveName(bool faces_bet, int action) {
  if (faces_bet) return action == KuhnPokerState::kBet ? "Call" : "Fold";
  return action == KuhnPokerState::kBet ? "Bet" : "Check";
}

class KuhnPokerText final : public TextRendering {
 public:
  std::string Rules(const Game& /*game*/, int player, PromptStyle style) const override {
    if (style == PromptStyle::kCompact) {
      return absl::StrCat("Kuhn poker (J<Q<K), you are P", player, ".\n");
    }
    return absl::StrCat(
        "You are Player ", player,
        " in Kuhn poker. The deck has three cards, J < Q < K. Each player antes 1 chip and is "
        "dealt one card; Player 0 acts first. Before any bet you may [Check] or [Bet] 1 chip; "
        "facing a bet you may [Call] or [Fold]. If nobody folds, the higher card wins the pot.\n");
  }

  std::string Observation(const State& state, int player, PromptStyle style) const override {
    const auto& s = static_cast<const KuhnPokerState&>(state);
    const std::vector<int>& h = s.history();
    std::vector<std::string> moves;
    for (int a : {KuhnPokerState::kPass, KuhnPokerState::kBet}) {
      moves.push_back(MoveText(s, player, a));
    }
    std::string card(1, kCardNames[s.card(player)]);
    if (style == PromptStyle::kCompact) {
      std::string text = h.size() < 2 ? absl::StrCat("Card ", card, "\n") : "";
      // The opponent's move since this seat's previous one: the last action, by the other seat.
      if (!h.empty() && static_cast<int>(h.size() - 1) % 2 != player) {
        absl::StrAppend(&text, "Opp [", MoveName(FacesBet(h, h.size() - 1), h.back()), "]\n");
      }
      absl::StrAppend(&text, "Moves ", absl::StrJoin(moves, " "), "\n");
      return text;
    }
    std::vector<std::string> betting;
    for (size_t i = 0; i < h.size(); ++i) {
      betting.push_back(absl::StrCat("Player ", i % 2, " [", MoveName(FacesBet(h, i), h[i]), "]"));
    }
    return absl::StrCat("Your card: ", card, "\nBetting so far: ",
                        betting.empty() ? "none" : absl::StrJoin(betting, ", "),
                        "\nYour legal moves: ", absl::StrJoin(moves, ", "));
  }

  std::string MoveText(const State& state, int /*player*/, int action) const override {
    const auto& h = static_cast<const KuhnPokerState&>(state).history();
    return absl::StrCat("[", MoveName(FacesBet(h, h.size()), action), "]");
  }

  absl::StatusOr<int> ParseMoveText(const State& state, int /*player*/,
                                    std::string_view move) const override {
    const auto& h = static_cast<const KuhnPokerState&>(state).history();
    bool faces_bet = FacesBet(h, h.size());
    for (bool facing : {false, true}) {
      for (int a : {KuhnPokerState::kPass, KuhnPokerState::kBet}) {
        if (!EqualsIgnoreCase(move, MoveName(facing, a))) continue;
        if (facing == faces_bet) return a;
        return absl::InvalidArgumentError(
            absl::StrCat("[", MoveName(facing, a), "] is not legal now: ",
                         faces_bet ? "facing a bet, the moves are [Fold] and [Call]"
                                   : "with no bet made, the moves are [Check] and [Bet]"));
      }
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "'", std::string(move), "' is not a Kuhn poker move: [Check], [Bet], [Call] or [Fold]"));
  }

  absl::StatusOr<std::vector<int>> Path(const State& state) const override {
    const auto& s = static_cast<const KuhnPokerState&>(state);
    std::vector<int> path;
    for (int p = 0; p < 2; ++p) {
      if (s.card(p) >= 0) path.push_back(s.card(p));
    }
    path.insert(path.end(), s.history().begin(), s.history().end());
    return path;
  }
};

}  // namespace

const TextRendering& KuhnPokerTextRendering() {
  static const KuhnPokerText* rendering = new KuhnPokerText;
  return *rendering;
}

}  // namespace rally
