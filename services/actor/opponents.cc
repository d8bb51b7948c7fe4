#include "services/actor/opponents.h"

#include "absl/strings/str_cat.h"
#include "common/games/tictactoe.h"
#include "common/games/tictactoe_solver.h"

namespace rally {
namespace {

int Uniform(const std::vector<int>& actions, std::mt19937_64& rng) {
  return actions[std::uniform_int_distribution<size_t>(0, actions.size() - 1)(rng)];
}

class RandomOpponent : public Opponent {
 public:
  std::string name() const override { return "random"; }
  int Act(const State& state, std::mt19937_64& rng) const override {
    return Uniform(state.LegalActions(), rng);
  }
};

class PerfectTicTacToe : public Opponent {
 public:
  std::string name() const override { return "perfect"; }
  int Act(const State& state, std::mt19937_64& rng) const override {
    const auto& s = static_cast<const TicTacToeState&>(state);
    return Uniform(TicTacToeSolver::Get().OptimalActions(s), rng);
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<Opponent>> MakeOpponent(const std::string& name, const Game& game) {
  if (name == "random") return std::make_unique<RandomOpponent>();
  if (name == "perfect") {
    if (game.Name() != "tictactoe") {
      return absl::InvalidArgumentError(
          absl::StrCat("opponent 'perfect' exists for tictactoe only, not '", game.Name(), "'"));
    }
    TicTacToeSolver::Get();  // solve up front, not inside the first game
    return std::make_unique<PerfectTicTacToe>();
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown opponent '", name, "'"));
}

}  // namespace rally
