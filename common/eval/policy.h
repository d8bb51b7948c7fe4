// Policies for exact evaluation: at a decision node, a distribution over the legal actions of the
// player to move.
//
// Contract: a Policy depends on the state only through the acting player's information state;
// the exact evaluators (exploitability.h) query it once per information state. Probabilities are
// non-negative, name legal actions only (actions left out have probability 0) and sum to 1 minus
// the forfeit probability: the mass of answers that are no legal move, which end the game as a
// forfeit (a language model's invalid answers, common/lm/lm_policy.h; 0 for every other policy).
// Const methods may be called from several threads at once.
#pragma once

#include <functional>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/games/game.h"

namespace rally {

// (action, probability) pairs, actions ascending.
using ActionsAndProbs = std::vector<std::pair<int, double>>;

class Policy {
 public:
  virtual ~Policy() = default;
  // The distribution at decision node `state` for CurrentPlayer().
  virtual ActionsAndProbs ActionProbabilities(const State& state) const = 0;
  // The probability of forfeiting at decision node `state`, in [0, 1].
  virtual double ForfeitProbability(const State& /*state*/) const { return 0.0; }
};

// Uniform over the legal actions.
class UniformPolicy final : public Policy {
 public:
  ActionsAndProbs ActionProbabilities(const State& state) const override;
};

// A table from information-state keys to distributions; uniform over the legal actions at keys
// the table lacks. The key of a state is, by default, the acting player's InformationStateString;
// a game's classic notation (games/policy_notation.h) can be used instead. An entry may carry a
// forfeit probability (the rest of 1 after its actions' probabilities).
class TabularPolicy final : public Policy {
 public:
  using KeyFunction = std::function<std::string(const State& state)>;

  TabularPolicy();
  explicit TabularPolicy(KeyFunction key);

  // The key of decision node `state`.
  std::string Key(const State& state) const { return key_(state); }
  // Sets the distribution at `key` (sorted by action on the way in) and its forfeit probability;
  // `probs` should then sum to 1 - `forfeit`.
  void Set(const std::string& key, ActionsAndProbs probs, double forfeit = 0.0);
  // The entry at `key`, or nullptr.
  const ActionsAndProbs* Find(const std::string& key) const;
  // The forfeit probability at `key` (0 where none was set).
  double Forfeit(const std::string& key) const;
  ActionsAndProbs ActionProbabilities(const State& state) const override;
  double ForfeitProbability(const State& state) const override;
  const std::map<std::string, ActionsAndProbs>& table() const { return table_; }
  // The keys with a forfeit probability other than 0, and it.
  const std::map<std::string, double>& forfeits() const { return forfeits_; }

 private:
  KeyFunction key_;
  std::map<std::string, ActionsAndProbs> table_;
  std::map<std::string, double> forfeits_;
};

// Uniform over `actions`.
ActionsAndProbs UniformOver(const std::vector<int>& actions);
// Samples an action by its probability (`probs` non-empty).
int SampleAction(const ActionsAndProbs& probs, std::mt19937_64& rng);
// Samples from the dense row `probs` restricted to `legal` (probabilities need not sum exactly to
// 1), or takes the most probable legal action when `greedy`. Returns the action and its
// probability. A network's output row, as the actor's inference worker and the evaluator use it.
std::pair<int, float> SampleAction(const float* probs, const std::vector<int>& legal, bool greedy,
                                   std::mt19937_64& rng);

}  // namespace rally
