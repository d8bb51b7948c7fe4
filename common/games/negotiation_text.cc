// Simple Negotiation as text. An offer is written from its proposer's side: "[Offer: 3 Wheat ->
// 2 Ore]" gives 3 Wheat for 2 Ore; the pending offer is the opponent's, so accepting it gives the
// 2 Ore and receives the 3 Wheat.
//   kCompact  rules   "Negotiation, you are P0, 10 turns. Move [Offer: 3 Wheat -> 2 Ore] (give
//                     3 Wheat for 2 Ore, 1-5 units), [Accept] or [Deny].\n"
//             turn    on the seat's first turn "Values: Wheat 5, Wood 10, ...\n" and
//                     "Have: Wheat 12, Wood 7, ...\n"; then "Opp [Deny]\n" for the opponent's
//                     move since the seat's previous turn, if any (an offer there is the pending
//                     one); then "Have: ...\n" again when an offer was accepted since the seat's
//                     previous turn (its own answer there included); then "Turn 3/10\n".
//   kSpiral   rules   a paragraph: the resources, the turns, the moves, how the winner is found
//             turn    "Turn 3 of 10.\nYour values: ...\nYou have: ...\nYou started with: ...\n"
//                     "History: Player 0 [Offer: 3 Wheat -> 2 Ore]; Player 1 [Deny]\n"
//                     "Pending offer: none" (or "Pending offer: Player 1 [Offer: ...]")
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/games/negotiation.h"
#include "common/games/text_game.h"

namespace rally {
namespace {

constexpr char kOfferFormat[] = "[Offer: 3 Wheat -> 2 Ore]";

std::string Amounts(const std::array<int, kNumResources>& amounts) {
  std::vector<std::string> parts;
  for (int r = 0; r < kNumResources; ++r) {
    parts.push_back(absl::StrCat(kResourceNames[r], " ", amounts[r]));
  }
  return absl::StrJoin(parts, ", ");
}

std::string ActionText(int action, int max_units) {
  if (action == NegotiationState::kAccept) return "[Accept]";
  if (action == NegotiationState::kDeny) return "[Deny]";
  NegotiationOffer o = DecodeOffer(action - NegotiationState::kFirstOffer, max_units);
  return absl::StrCat("[Offer: ", o.give_units, " ", kResourceNames[o.give], " -> ", o.get_units,
                      " ", kResourceNames[o.get], "]");
}

int IntParameter(const Game& game, const std::string& key, int fallback) {
  GameParameters params = game.Parameters();
  int value = fallback;
  auto it = params.find(key);
  if (it != params.end() && absl::SimpleAtoi(it->second, &value)) return value;
  return fallback;
}

// One side of an offer, "3 Wheat": units and resource, or an error naming the side.
absl::StatusOr<std::pair<int, int>> ParseSide(std::string_view side, int max_units) {
  side = StripSpaces(side);
  size_t digits = 0;
  int units = 0;
  while (digits < side.size() && side[digits] >= '0' && side[digits] <= '9' && units < 100) {
    units = 10 * units + (side[digits++] - '0');
  }
  std::string_view name = StripSpaces(side.substr(digits));
  if (digits == 0 || name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("malformed offer side '", std::string(side),
                                                   "': write units then one resource, as in ",
                                                   kOfferFormat));
  }
  for (int r = 0; r < kNumResources; ++r) {
    if (!EqualsIgnoreCase(name, kResourceNames[r])) continue;
    if (units < 1 || units > max_units) {
      return absl::InvalidArgumentError(
          absl::StrCat("an offer moves 1 to ", max_units, " units a side, not ", units));
    }
    return std::pair<int, int>{units, r};
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'", std::string(name),
                   "' is not one resource: Wheat, Wood, Sheep, Brick or Ore, one a side"));
}

class NegotiationText final : public TextRendering {
 public:
  std::string Rules(const Game& game, int player, PromptStyle style) const override {
    int turns = IntParameter(game, "max_turns", NegotiationOptions{}.max_turns);
    int units = IntParameter(game, "max_units", NegotiationOptions{}.max_units);
    if (style == PromptStyle::kCompact) {
      return absl::StrCat("Negotiation, you are P", player, ", ", turns, " turns. Move ",
                          kOfferFormat, " (give 3 Wheat for 2 Ore, 1-", units,
                          " units), [Accept] or [Deny].\n");
    }
    return absl::StrCat(
        "You are Player ", player, " in a negotiation of ", turns,
        " turns in all, Player 0 first. Both players hold Wheat, Wood, Sheep, Brick and Ore and "
        "value them privately. On your turn make one offer, such as ",
        kOfferFormat, " (you give 3 Wheat for 2 Ore; 1 to ", units,
        " units a side), or [Accept] or [Deny] the pending offer; a new offer denies it. After "
        "the last turn, the player whose holdings gained more value at their own prices wins.\n");
  }

  std::string Observation(const State& state, int player, PromptStyle style) const override {
    const auto& s = static_cast<const NegotiationState&>(state);
    const std::vector<int>& h = s.history();
    const int max_units = s.options().max_units;
    if (style == PromptStyle::kSpiral) return SpiralObservation(s, player);
    std::string text;
    bool first_turn = s.turn() < 2;
    if (first_turn) {
      absl::StrAppend(&text, "Values: ", Amounts(s.values(player)),
                      "\nHave: ", Amounts(s.holdings(player)), "\n");
    }
    if (!h.empty() && static_cast<int>(h.size() - 1) % 2 != player) {
      absl::StrAppend(&text, "Opp ", ActionText(h.back(), max_units), "\n");
    }
    // Since the seat's previous turn: its own answer there and the opponent's reply.
    bool accepted = false;
    for (size_t i = h.size() >= 2 ? h.size() - 2 : 0; i < h.size(); ++i) {
      accepted = accepted || h[i] == NegotiationState::kAccept;
    }
    if (!first_turn && accepted)
      absl::StrAppend(&text, "Have: ", Amounts(s.holdings(player)), "\n");
    absl::StrAppend(&text, "Turn ", s.turn() + 1, "/", s.options().max_turns, "\n");
    return text;
  }

  std::string MoveText(const State& state, int /*player*/, int action) const override {
    return ActionText(action, static_cast<const NegotiationState&>(state).options().max_units);
  }

  absl::StatusOr<int> ParseMoveText(const State& state, int player,
                                    std::string_view move) const override {
    const auto& s = static_cast<const NegotiationState&>(state);
    if (EqualsIgnoreCase(move, "accept")) return ParseAccept(s, player);
    if (EqualsIgnoreCase(move, "deny")) {
      if (s.pending_offer() < 0) return absl::InvalidArgumentError("no offer is pending to deny");
      return NegotiationState::kDeny;
    }
    if (!StartsWithIgnoreCase(move, "offer")) {
      return absl::InvalidArgumentError(absl::StrCat("'", std::string(move),
                                                     "' is not a negotiation move: ", kOfferFormat,
                                                     ", [Accept] or [Deny]"));
    }
    return ParseOffer(s, player, move);
  }

  absl::StatusOr<std::vector<int>> Path(const State& state) const override {
    const auto& s = static_cast<const NegotiationState&>(state);
    if (s.IsChanceNode()) {
      return absl::UnimplementedError(
          "a negotiation state keeps its deal only once it is complete");
    }
    std::vector<int> path;
    for (int p = 0; p < 2; ++p) {
      path.insert(path.end(), s.values(p).begin(), s.values(p).end());
      path.insert(path.end(), s.starting_holdings(p).begin(), s.starting_holdings(p).end());
    }
    path.insert(path.end(), s.history().begin(), s.history().end());
    return path;
  }

 private:
  static std::string SpiralObservation(const NegotiationState& s, int player) {
    const std::vector<int>& h = s.history();
    const int max_units = s.options().max_units;
    std::vector<std::string> history;
    for (size_t i = 0; i < h.size(); ++i) {
      history.push_back(absl::StrCat("Player ", i % 2, " ", ActionText(h[i], max_units)));
    }
    std::string pending =
        s.pending_offer() < 0
            ? "none"
            : absl::StrCat("Player ", 1 - player, " ", ActionText(s.pending_offer(), max_units));
    return absl::StrCat("Turn ", s.turn() + 1, " of ", s.options().max_turns,
                        ".\nYour values: ", Amounts(s.values(player)),
                        "\nYou have: ", Amounts(s.holdings(player)),
                        "\nYou started with: ", Amounts(s.starting_holdings(player)),
                        "\nHistory: ", history.empty() ? "none" : absl::StrJoin(history, "; "),
                        "\nPending offer: ", pending);
  }

  static absl::StatusOr<int> ParseAccept(const NegotiationState& s, int player) {
    if (s.pending_offer() < 0) return absl::InvalidArgumentError("no offer is pending to accept");
    if (s.IsLegal(NegotiationState::kAccept)) return NegotiationState::kAccept;
    NegotiationOffer o =
        DecodeOffer(s.pending_offer() - NegotiationState::kFirstOffer, s.options().max_units);
    return absl::InvalidArgumentError(absl::StrCat("accepting gives ", o.get_units, " ",
                                                   kResourceNames[o.get], " but you have ",
                                                   s.holdings(player)[o.get]));
  }

  // `move` starts with the word "Offer", e.g. "Offer: 3 Wheat -> 2 Ore".
  static absl::StatusOr<int> ParseOffer(const NegotiationState& s, int player,
                                        std::string_view move) {
    std::string_view rest = StripSpaces(move.substr(5));
    if (!rest.empty() && rest.front() == ':') rest.remove_prefix(1);
    size_t arrow = rest.find("->");
    if (arrow == std::string_view::npos || rest.find("->", arrow + 2) != std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("malformed offer '", std::string(move),
                                                     "': write one arrow, as in ", kOfferFormat));
    }
    const int max_units = s.options().max_units;
    absl::StatusOr<std::pair<int, int>> give = ParseSide(rest.substr(0, arrow), max_units);
    if (!give.ok()) return give.status();
    absl::StatusOr<std::pair<int, int>> get = ParseSide(rest.substr(arrow + 2), max_units);
    if (!get.ok()) return get.status();
    if (give->second == get->second) {
      return absl::InvalidArgumentError(
          absl::StrCat("an offer trades two different resources, not ",
                       kResourceNames[give->second], " for itself"));
    }
    int action = NegotiationState::kFirstOffer +
                 EncodeOffer({give->second, give->first, get->second, get->first}, max_units);
    if (!s.IsLegal(action)) {
      return absl::InvalidArgumentError(absl::StrCat("you offer ", give->first, " ",
                                                     kResourceNames[give->second], " but have ",
                                                     s.holdings(player)[give->second]));
    }
    return action;
  }
};

}  // namespace

const TextRendering& NegotiationTextRendering() {
  static const NegotiationText* rendering = new NegotiationText;
  return *rendering;
}

}  // namespace rally
