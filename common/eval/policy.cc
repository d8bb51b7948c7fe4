#include "common/eval/policy.h"

#include <algorithm>

namespace rally {

ActionsAndProbs UniformOver(const std::vector<int>& actions) {
  ActionsAndProbs probs;
  for (int a : actions) probs.emplace_back(a, 1.0 / actions.size());
  return probs;
}

int SampleAction(const ActionsAndProbs& probs, std::mt19937_64& rng) {
  double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  for (const auto& [action, probability] : probs) {
    u -= probability;
    if (u < 0) return action;
  }
  // Rounding left u just above zero: the last action with positive probability.
  for (auto it = probs.rbegin(); it != probs.rend(); ++it) {
    if (it->second > 0) return it->first;
  }
  return probs.back().first;
}

std::pair<int, float> SampleAction(const float* probs, const std::vector<int>& legal, bool greedy,
                                   std::mt19937_64& rng) {
  if (greedy) {
    int best = legal.front();
    for (int a : legal) {
      if (probs[a] > probs[best]) best = a;
    }
    return {best, probs[best]};
  }
  double total = 0;
  for (int a : legal) total += probs[a];
  double x = std::uniform_real_distribution<double>(0.0, total)(rng);
  double c = 0;
  for (int a : legal) {
    c += probs[a];
    if (x < c && probs[a] > 0) return {a, probs[a]};
  }
  // Rounding left x at the very top: the last legal action with probability mass.
  for (auto it = legal.rbegin(); it != legal.rend(); ++it) {
    if (probs[*it] > 0) return {*it, probs[*it]};
  }
  return {legal.back(), probs[legal.back()]};
}

ActionsAndProbs UniformPolicy::ActionProbabilities(const State& state) const {
  return UniformOver(state.LegalActions());
}

TabularPolicy::TabularPolicy()
    : key_([](const State& state) { return state.InformationStateString(state.CurrentPlayer()); }) {
}

TabularPolicy::TabularPolicy(KeyFunction key) : key_(std::move(key)) {}

void TabularPolicy::Set(const std::string& key, ActionsAndProbs probs, double forfeit) {
  std::sort(probs.begin(), probs.end());
  table_[key] = std::move(probs);
  if (forfeit != 0) {
    forfeits_[key] = forfeit;
  } else {
    forfeits_.erase(key);
  }
}

const ActionsAndProbs* TabularPolicy::Find(const std::string& key) const {
  auto it = table_.find(key);
  return it == table_.end() ? nullptr : &it->second;
}

double TabularPolicy::Forfeit(const std::string& key) const {
  auto it = forfeits_.find(key);
  return it == forfeits_.end() ? 0.0 : it->second;
}

ActionsAndProbs TabularPolicy::ActionProbabilities(const State& state) const {
  const ActionsAndProbs* entry = Find(key_(state));
  return entry != nullptr ? *entry : UniformOver(state.LegalActions());
}

double TabularPolicy::ForfeitProbability(const State& state) const {
  return forfeits_.empty() ? 0.0 : Forfeit(key_(state));
}

}  // namespace rally
