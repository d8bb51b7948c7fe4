#include "common/games/game.h"

#include <algorithm>
#include <functional>
#include <numeric>

namespace rally {
namespace {

int Product(const std::vector<int>& shape) {
  return std::accumulate(shape.begin(), shape.end(), 1, std::multiplies<int>());
}

}  // namespace

bool State::IsLegal(int action) const {
  std::vector<int> legal = LegalActions();
  return std::binary_search(legal.begin(), legal.end(), action);
}

std::string State::ActionToString(int /*player*/, int action) const {
  return std::to_string(action);
}

int Game::ObservationSize() const { return Product(ObservationShape()); }

int Game::InformationStateSize() const { return Product(InformationStateShape()); }

int SampleChanceOutcome(const State& state, std::mt19937_64& rng) {
  std::vector<std::pair<int, double>> outcomes = state.ChanceOutcomes();
  double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  for (const auto& [outcome, probability] : outcomes) {
    u -= probability;
    if (u < 0) return outcome;
  }
  return outcomes.back().first;  // rounding left u just above zero
}

}  // namespace rally
