#include "common/eval/agent.h"

namespace rally {

int RandomAgent::Act(const State& state, std::mt19937_64& rng) const {
  std::vector<int> actions = state.LegalActions();
  return actions[std::uniform_int_distribution<size_t>(0, actions.size() - 1)(rng)];
}

int PolicyAgent::Act(const State& state, std::mt19937_64& rng) const {
  return SampleAction(policy_.ActionProbabilities(state), rng);
}

std::vector<double> PlayGame(const Game& game, std::span<const Agent* const> seats,
                             std::mt19937_64& rng) {
  std::unique_ptr<State> state = game.NewInitialState();
  while (!state->IsTerminal()) {
    int player = state->CurrentPlayer();
    int action = player == kChancePlayer ? SampleChanceOutcome(*state, rng)
                                         : seats[player]->Act(*state, rng);
    state->ApplyAction(action);
  }
  return state->Returns();
}

}  // namespace rally
