// Fixed players for evaluation and as opponents: given a decision node where the agent is to move,
// it picks a legal action. Agents are immutable after construction; Act may be called from several
// threads at once, each with its own generator.
#pragma once

#include <random>
#include <span>
#include <string>
#include <vector>

#include "common/eval/policy.h"
#include "common/games/game.h"

namespace rally {

class Agent {
 public:
  virtual ~Agent() = default;
  virtual std::string name() const = 0;
  // A legal action at `state` (a decision node, this agent to move).
  virtual int Act(const State& state, std::mt19937_64& rng) const = 0;
};

// Uniform over the legal actions.
class RandomAgent final : public Agent {
 public:
  std::string name() const override { return "random"; }
  int Act(const State& state, std::mt19937_64& rng) const override;
};

// Samples from a Policy (which must outlive the agent).
class PolicyAgent final : public Agent {
 public:
  PolicyAgent(std::string name, const Policy& policy) : name_(std::move(name)), policy_(policy) {}
  std::string name() const override { return name_; }
  int Act(const State& state, std::mt19937_64& rng) const override;

 private:
  std::string name_;
  const Policy& policy_;
};

// Plays one game of `game` with seats[p] acting for player p, chance sampled from `rng`;
// returns the final returns.
std::vector<double> PlayGame(const Game& game, std::span<const Agent* const> seats,
                             std::mt19937_64& rng);

}  // namespace rally
