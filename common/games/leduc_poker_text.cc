// Leduc poker as text. Cards are told by rank (J, Q, K): suits never decide a hand. With nothing
// owed, call is [Check] and raise is [Bet]; facing a bet, the moves are [Fold], [Call] and
// [Raise]. The last line lists the legal moves.
//   kCompact  rules   "Leduc poker (J J Q Q K K, a pair wins), you are P0.\n"
//             turn    on the seat's first turn "Card K\n"; then, in the order they happened
//                     since the seat's previous turn, "Opp [Bet]\n" for each opponent move and
//                     "Public Q\n" when the public card came; then "Moves [Fold] [Call] [Raise]\n"
//   kSpiral   rules   a paragraph: the deck, the ante, the rounds and bet sizes, the showdown
//             turn    "Your card: K\nPublic card: none yet\nBetting so far: round 1: Player 0
//                     [Bet], Player 1 [Call]; round 2: Player 0 [Check]\nChips in the pot: you 3,
//                     opponent 3\nYour legal moves: [Check], [Bet]"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/games/leduc_poker.h"
#include "common/games/text_game.h"

namespace rally {
namespace {

struct Move {
  int round;
  int player;
  int action;
  bool faces_bet;
};

// The betting so far, read from the state's rank key "K:Q:rc/r" (leduc_poker.h): each round
// begins with player 0, and a player faces a bet after a raise in the same round.
std::vector<Move> Betting(const LeducPokerState& s) {
  std::string key = s.Key(0, /*by_rank=*/true);
  std::string_view betting = std::string_view(key).substr(key.find(':', key.find(':') + 1) + 1);
  std::vector<Move> moves;
  int round = 0, index = 0;
  bool raised = false;
  for (char c : betting) {
    if (c == '/') {
      round = 1;
      index = 0;
      raised = false;
      continue;
    }
    int action = c == 'f'   ? LeducPokerState::kFold
                 : c == 'c' ? LeducPokerState::kCall
                            : LeducPokerState::kRaise;
    moves.push_back({round, index % 2, action, raised});
    raised = raised || action == LeducPokerState::kRaise;
    ++index;
  }
  return moves;
}

std::string MoveName(bool faces_bet, int action) {
  if (action == LeducPokerState::kFold) return "Fold";
  if (action == LeducPokerState::kCall) return faces_bet ? "Call" : "Check";
  return faces_bet ? "Raise" : "Bet";
}

char Rank(int card) { return "JQK"[card / 2]; }

bool FacesBet(const LeducPokerState& s, int player) {
  return s.contribution(player) < s.contribution(1 - player);
}

class LeducPokerText final : public TextRendering {
 public:
  std::string Rules(const Game& /*game*/, int player, PromptStyle style) const override {
    if (style == PromptStyle::kCompact) {
      return absl::StrCat("Leduc poker (J J Q Q K K, a pair wins), you are P", player, ".\n");
    }
    return absl::StrCat(
        "You are Player ", player,
        " in Leduc poker. The deck has six cards, two each of J < Q < K. Each player antes 1 "
        "chip and is dealt one private card. Two betting rounds follow, Player 0 first in each; a "
        "public card is dealt before the second. With nothing owed you may [Check] or [Bet]; "
        "facing a bet you may [Fold], [Call] or [Raise]. A bet or raise adds 2 chips in the first "
        "round and 4 in the second, at most two a round. At the showdown a card that pairs the "
        "public card wins, else the higher card; equal ranks split the pot.\n");
  }

  std::string Observation(const State& state, int player, PromptStyle style) const override {
    const auto& s = static_cast<const LeducPokerState&>(state);
    std::vector<Move> betting = Betting(s);
    std::vector<std::string> moves;
    for (int a : s.LegalActions()) moves.push_back(MoveText(s, player, a));
    if (style == PromptStyle::kSpiral) return SpiralObservation(s, player, betting, moves);
    int last = -1;  // this seat's previous move
    for (size_t i = 0; i < betting.size(); ++i) {
      if (betting[i].player == player) last = static_cast<int>(i);
    }
    std::string text =
        last < 0 ? absl::StrCat("Card ", std::string(1, Rank(s.card(player))), "\n") : "";
    bool public_shown = last >= 0 && betting[last].round == 1;
    for (size_t i = last + 1; i < betting.size(); ++i) {
      if (betting[i].round == 1 && !public_shown) {
        absl::StrAppend(&text, "Public ", std::string(1, Rank(s.public_card())), "\n");
        public_shown = true;
      }
      absl::StrAppend(&text, "Opp [", MoveName(betting[i].faces_bet, betting[i].action), "]\n");
    }
    if (s.public_card() >= 0 && !public_shown) {
      absl::StrAppend(&text, "Public ", std::string(1, Rank(s.public_card())), "\n");
    }
    absl::StrAppend(&text, "Moves ", absl::StrJoin(moves, " "), "\n");
    return text;
  }

  std::string MoveText(const State& state, int player, int action) const override {
    const auto& s = static_cast<const LeducPokerState&>(state);
    return absl::StrCat("[", MoveName(FacesBet(s, player), action), "]");
  }

  absl::StatusOr<int> ParseMoveText(const State& state, int player,
                                    std::string_view move) const override {
    const auto& s = static_cast<const LeducPokerState&>(state);
    bool faces_bet = FacesBet(s, player);
    for (bool facing : {false, true}) {
      for (int a : {LeducPokerState::kFold, LeducPokerState::kCall, LeducPokerState::kRaise}) {
        if (!EqualsIgnoreCase(move, MoveName(facing, a))) continue;
        if (facing != faces_bet && a != LeducPokerState::kFold) continue;
        if (s.IsLegal(a)) return a;
        std::vector<std::string> legal;
        for (int l : s.LegalActions()) legal.push_back(MoveText(s, player, l));
        return absl::InvalidArgumentError(absl::StrCat("[", MoveName(facing, a),
                                                       "] is not legal now; the moves are ",
                                                       absl::StrJoin(legal, ", ")));
      }
    }
    for (const char* word : {"Check", "Bet", "Call", "Raise"}) {
      if (EqualsIgnoreCase(move, word)) {
        return absl::InvalidArgumentError(
            absl::StrCat("[", word, "] is not legal now: ",
                         faces_bet ? "facing a bet, the moves are [Fold], [Call] and [Raise]"
                                   : "with nothing owed, the moves are [Check] and [Bet]"));
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat("'", std::string(move),
                     "' is not a Leduc poker move: [Check], [Bet], [Fold], [Call] or [Raise]"));
  }

  absl::StatusOr<std::vector<int>> Path(const State& state) const override {
    const auto& s = static_cast<const LeducPokerState&>(state);
    std::vector<int> path;
    for (int p = 0; p < 2; ++p) {
      if (s.card(p) >= 0) path.push_back(s.card(p));
    }
    bool public_dealt = false;
    for (const Move& m : Betting(s)) {
      if (m.round == 1 && !public_dealt) {
        path.push_back(s.public_card());
        public_dealt = true;
      }
      path.push_back(m.action);
    }
    if (s.public_card() >= 0 && !public_dealt) path.push_back(s.public_card());
    return path;
  }

 private:
  static std::string SpiralObservation(const LeducPokerState& s, int player,
                                       const std::vector<Move>& betting,
                                       const std::vector<std::string>& moves) {
    std::vector<std::string> rounds;
    for (int round = 0; round < 2; ++round) {
      std::vector<std::string> parts;
      for (const Move& m : betting) {
        if (m.round != round) continue;
        parts.push_back(
            absl::StrCat("Player ", m.player, " [", MoveName(m.faces_bet, m.action), "]"));
      }
      if (!parts.empty()) {
        rounds.push_back(absl::StrCat("round ", round + 1, ": ", absl::StrJoin(parts, ", ")));
      }
    }
    std::string public_card =
        s.public_card() < 0 ? "none yet" : std::string(1, Rank(s.public_card()));
    return absl::StrCat(
        "Your card: ", std::string(1, Rank(s.card(player))), "\nPublic card: ", public_card,
        "\nBetting so far: ", rounds.empty() ? "none" : absl::StrJoin(rounds, "; "),
        "\nChips in the pot: you ", s.contribution(player), ", opponent ",
        s.contribution(1 - player), "\nYour legal moves: ", absl::StrJoin(moves, ", "));
  }
};

}  // namespace

const TextRendering& LeducPokerTextRendering() {
  static const LeducPokerText* rendering = new LeducPokerText;
  return *rendering;
}

}  // namespace rally
