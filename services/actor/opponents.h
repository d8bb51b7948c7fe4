// Fixed opponents that evaluation (and training, where a job asks for it) plays against.
#pragma once

#include <memory>
#include <random>
#include <string>

#include "absl/status/statusor.h"
#include "common/games/game.h"

namespace rally {

class Opponent {
 public:
  virtual ~Opponent() = default;
  virtual std::string name() const = 0;
  // Picks a legal action at `state` (not terminal, this opponent to move).
  virtual int Act(const State& state, std::mt19937_64& rng) const = 0;
};

// "random": uniform over the legal actions. "perfect": exact minimax, uniform among the optimal
// actions (TicTacToe only). Unknown names or games give INVALID_ARGUMENT.
absl::StatusOr<std::unique_ptr<Opponent>> MakeOpponent(const std::string& name, const Game& game);

}  // namespace rally
