#include "common/games/registry.h"

#include <functional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/games/connect_four.h"
#include "common/games/kuhn_poker.h"
#include "common/games/leduc_poker.h"
#include "common/games/negotiation.h"
#include "common/games/tictactoe.h"

namespace rally {
namespace {

using Factory =
    std::function<absl::StatusOr<std::shared_ptr<const Game>>(const GameParameters& params)>;

struct Entry {
  std::string name;
  GameParameters defaults;
  Factory make;  // called with every default filled in
};

absl::StatusOr<int> IntParameter(const std::string& game, const GameParameters& params,
                                 const std::string& key, int low, int high) {
  int value = 0;
  const std::string& text = params.at(key);
  if (!absl::SimpleAtoi(text, &value) || value < low || value > high) {
    return absl::InvalidArgumentError(absl::StrCat("game '", game, "' parameter '", key,
                                                   "' must be an integer in [", low, ", ", high,
                                                   "], not '", text, "'"));
  }
  return value;
}

template <typename G>
Entry Simple(const std::string& name) {
  return {name, {}, [](const GameParameters&) -> absl::StatusOr<std::shared_ptr<const Game>> {
            return std::make_shared<G>();
          }};
}

const std::vector<Entry>& Registry() {
  static const std::vector<Entry>* registry = new std::vector<Entry>{
      Simple<TicTacToeGame>("tictactoe"),
      Simple<ConnectFourGame>("connect_four"),
      Simple<KuhnPokerGame>("kuhn_poker"),
      Simple<LeducPokerGame>("leduc_poker"),
      {"negotiation",
       {{"max_turns", "10"}, {"max_units", "5"}, {"observe_history", "0"}},
       [](const GameParameters& params) -> absl::StatusOr<std::shared_ptr<const Game>> {
         NegotiationOptions options;
         absl::StatusOr<int> turns = IntParameter("negotiation", params, "max_turns", 1, 100);
         if (!turns.ok()) return turns.status();
         absl::StatusOr<int> units = IntParameter("negotiation", params, "max_units", 1, 10);
         if (!units.ok()) return units.status();
         absl::StatusOr<int> history = IntParameter("negotiation", params, "observe_history", 0, 2);
         if (!history.ok()) return history.status();
         options.max_turns = *turns;
         options.max_units = *units;
         options.observe_history = *history;
         return std::make_shared<NegotiationGame>(options);
       }},
  };
  return *registry;
}

absl::StatusOr<const Entry*> Find(const std::string& name) {
  for (const Entry& e : Registry()) {
    if (e.name == name) return &e;
  }
  return absl::NotFoundError(absl::StrCat(
      "unknown game '", name, "' (known games: ", absl::StrJoin(RegisteredGames(), ", "), ")"));
}

}  // namespace

std::vector<std::string> RegisteredGames() {
  std::vector<std::string> names;
  for (const Entry& e : Registry()) names.push_back(e.name);
  return names;
}

absl::StatusOr<GameParameters> DefaultParameters(const std::string& name) {
  absl::StatusOr<const Entry*> entry = Find(name);
  if (!entry.ok()) return entry.status();
  return (*entry)->defaults;
}

absl::StatusOr<std::shared_ptr<const Game>> LoadGame(const std::string& name) {
  return LoadGame(name, GameParameters{});
}

absl::StatusOr<std::shared_ptr<const Game>> LoadGame(const std::string& name,
                                                     const GameParameters& params) {
  absl::StatusOr<const Entry*> entry = Find(name);
  if (!entry.ok()) return entry.status();
  GameParameters merged = (*entry)->defaults;
  for (const auto& [key, value] : params) {
    auto it = merged.find(key);
    if (it == merged.end()) {
      std::vector<std::string> known;
      for (const auto& [k, v] : (*entry)->defaults) known.push_back(k);
      return absl::InvalidArgumentError(absl::StrCat(
          "game '", name, "' has no parameter '", key,
          "' (its parameters: ", known.empty() ? "none" : absl::StrJoin(known, ", "), ")"));
    }
    it->second = value;
  }
  return (*entry)->make(merged);
}

}  // namespace rally
