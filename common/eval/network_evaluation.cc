#include "common/eval/network_evaluation.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/eval/exploitability.h"
#include "common/eval/policy.h"

namespace rally {

absl::StatusOr<v1::EvalResult> EvaluateExactly(const Game& game, const GameTree& tree,
                                               NetworkPolicy& policy) {
  auto states = CollectInformationStates(game);
  if (!states.ok()) return states.status();
  const int obs_size = game.ObservationSize();
  const int num_actions = game.NumDistinctActions();
  const int n = static_cast<int>(states->size());
  std::vector<float> obs(static_cast<size_t>(n) * obs_size, 0.f);
  std::vector<uint8_t> legal(static_cast<size_t>(n) * num_actions, 0);
  std::vector<float> probs(static_cast<size_t>(n) * num_actions);
  for (int i = 0; i < n; ++i) {
    const InformationStateEntry& e = (*states)[i];
    e.state->ObservationTensor(e.player, std::span<float>(obs.data() + i * obs_size, obs_size));
    for (int a : e.actions) legal[i * num_actions + a] = 1;
  }
  policy.Probabilities(n, obs.data(), legal.data(), probs.data());
  TabularPolicy table;
  for (int i = 0; i < n; ++i) {
    ActionsAndProbs row;
    for (int a : (*states)[i].actions) row.emplace_back(a, probs[i * num_actions + a]);
    table.Set((*states)[i].key, std::move(row));
  }
  auto exploitability = Exploitability(tree, table);
  if (!exploitability.ok()) return exploitability.status();
  v1::EvalResult result;
  result.set_opponent(kBestResponse);
  result.set_policy_version(policy.version());
  result.set_exploitability(*exploitability);
  return result;
}

v1::EvalResult Evaluate(const Game& game, NetworkPolicy& policy, const Agent& opponent, int games,
                        bool greedy, std::mt19937_64& rng) {
  const int obs_size = game.ObservationSize();
  const int num_actions = game.NumDistinctActions();
  std::vector<std::unique_ptr<State>> states;
  for (int i = 0; i < games; ++i) states.push_back(game.NewInitialState());
  std::vector<int> waiting;  // games where the policy is to move
  std::vector<float> obs;
  std::vector<uint8_t> legal;
  std::vector<float> probs;
  while (true) {
    waiting.clear();
    for (int i = 0; i < games; ++i) {
      State& s = *states[i];
      // Chance and the opponent move until the policy is to move or the game ends.
      while (!s.IsTerminal() && (s.IsChanceNode() || s.CurrentPlayer() != i % 2)) {
        s.ApplyAction(s.IsChanceNode() ? SampleChanceOutcome(s, rng) : opponent.Act(s, rng));
      }
      if (!s.IsTerminal()) waiting.push_back(i);
    }
    if (waiting.empty()) break;
    const int n = static_cast<int>(waiting.size());
    obs.assign(static_cast<size_t>(n) * obs_size, 0.f);
    legal.assign(static_cast<size_t>(n) * num_actions, 0);
    probs.resize(static_cast<size_t>(n) * num_actions);
    std::vector<std::vector<int>> legal_lists(n);
    for (int k = 0; k < n; ++k) {
      State& s = *states[waiting[k]];
      s.ObservationTensor(s.CurrentPlayer(), std::span<float>(obs.data() + k * obs_size, obs_size));
      legal_lists[k] = s.LegalActions();
      for (int a : legal_lists[k]) legal[k * num_actions + a] = 1;
    }
    policy.Probabilities(n, obs.data(), legal.data(), probs.data());
    for (int k = 0; k < n; ++k) {
      int action = SampleAction(probs.data() + k * num_actions, legal_lists[k], greedy, rng).first;
      states[waiting[k]]->ApplyAction(action);
    }
  }
  v1::EvalResult result;
  result.set_opponent(opponent.name());
  result.set_games(games);
  result.set_policy_version(policy.version());
  result.set_greedy(greedy);
  for (int i = 0; i < games; ++i) {
    double r = states[i]->Returns()[i % 2];
    if (r > 0) {
      result.set_wins(result.wins() + 1);
    } else if (r < 0) {
      result.set_losses(result.losses() + 1);
    } else {
      result.set_draws(result.draws() + 1);
    }
  }
  return result;
}

int NetworkAgent::Act(const State& state, std::mt19937_64& rng) const {
  const int player = state.CurrentPlayer();
  std::vector<float> obs(policy_->observation_size());
  state.ObservationTensor(player, obs);
  std::vector<int> legal = state.LegalActions();
  std::vector<uint8_t> mask(policy_->num_actions(), 0);
  for (int a : legal) mask[a] = 1;
  std::vector<float> probs(policy_->num_actions());
  policy_->Probabilities(1, obs.data(), mask.data(), probs.data());
  return SampleAction(probs.data(), legal, /*greedy=*/false, rng).first;
}

std::string League::Player(int64_t version) { return absl::StrCat("v", version); }

void League::Add(const std::string& player, const v1::EvalResult& r) {
  if (r.games() <= 0 || r.opponent() == player) return;
  results_.push_back({player, r.opponent(), static_cast<double>(r.wins()),
                      static_cast<double>(r.draws()), static_cast<double>(r.losses())});
}

absl::StatusOr<std::map<std::string, double>> League::Ratings() const {
  EloOptions options;
  for (const MatchResult& m : results_) {
    if (m.player_a == "random" || m.player_b == "random") options.anchor = "random";
  }
  return FitElo(results_, options);
}

}  // namespace rally
