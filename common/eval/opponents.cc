#include "common/eval/opponents.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/eval/alpha_beta.h"
#include "common/eval/negotiation_trader.h"
#include "common/games/tictactoe.h"
#include "common/games/tictactoe_solver.h"

namespace rally {
namespace {

class PerfectTicTacToe final : public Agent {
 public:
  std::string name() const override { return "perfect"; }
  int Act(const State& state, std::mt19937_64& rng) const override {
    const auto& s = static_cast<const TicTacToeState&>(state);
    std::vector<int> best = TicTacToeSolver::Get().OptimalActions(s);
    return best[std::uniform_int_distribution<size_t>(0, best.size() - 1)(rng)];
  }
};

absl::Status WrongGame(const std::string& name, const std::string& wanted, const Game& game) {
  return absl::InvalidArgumentError(
      absl::StrCat("opponent '", name, "' exists for ", wanted, " only, not '", game.Name(), "'"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Agent>> MakeOpponent(const std::string& name, const Game& game) {
  if (name == "random") return std::make_unique<RandomAgent>();
  if (name == "perfect") {
    if (game.Name() != "tictactoe") return WrongGame(name, "tictactoe", game);
    TicTacToeSolver::Get();  // solve up front, not inside the first game
    return std::make_unique<PerfectTicTacToe>();
  }
  if (name == "trader") {
    if (game.Name() != "negotiation") return WrongGame(name, "negotiation", game);
    return std::make_unique<NegotiationTrader>();
  }
  int depth = 0;
  if (name.rfind("alpha_beta_", 0) == 0 && absl::SimpleAtoi(name.substr(11), &depth) &&
      depth >= 1 && depth <= 9) {
    if (game.Name() != "connect_four") return WrongGame(name, "connect_four", game);
    return std::make_unique<ConnectFourAlphaBeta>(depth);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown opponent '", name, "' (known: random, perfect, trader, alpha_beta_1..9)"));
}

}  // namespace rally
