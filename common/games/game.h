// The game interface, shaped after OpenSpiel's Game/State so that researchers recognise it.
//
// Contract:
// - Players are numbered 0..NumPlayers()-1. CurrentPlayer() returns kTerminalPlayer once the game
//   is over and kChancePlayer at chance nodes.
// - LegalActions() is ascending and non-empty at every non-terminal state. At a player's node the
//   actions lie in [0, NumDistinctActions()); at a chance node they are the outcomes of
//   ChanceOutcomes() (in [0, MaxChanceOutcomes())), whose probabilities sum to 1.
// - ObservationTensor(player) fills exactly ObservationSize() floats: what `player` sees now, from
//   that player's perspective, so one network can play every seat.
// - InformationStateString(player) identifies everything `player` knows (perfect recall): two
//   states give the same string exactly when that player cannot tell them apart. Strings of
//   different players never coincide. InformationStateTensor fills InformationStateSize() floats
//   with the same knowledge. For perfect-information games the position itself is the
//   information state (transpositions share one).
// - Returns() has one entry per player, meaningful at terminal states (zero before).
// - States are values: Clone() copies, and a State is not shared between threads. Games are
//   immutable once made and may be shared between threads.
#pragma once

#include <map>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace rally {

inline constexpr int kTerminalPlayer = -4;
inline constexpr int kChancePlayer = -1;

// Game parameters as the job spec writes them: name -> value, both text.
using GameParameters = std::map<std::string, std::string>;

class State {
 public:
  virtual ~State() = default;
  virtual int CurrentPlayer() const = 0;
  bool IsTerminal() const { return CurrentPlayer() == kTerminalPlayer; }
  bool IsChanceNode() const { return CurrentPlayer() == kChancePlayer; }
  virtual std::vector<int> LegalActions() const = 0;
  // At a chance node: (outcome, probability) pairs, outcomes ascending, probabilities summing to 1.
  // Empty elsewhere, and for games without chance.
  virtual std::vector<std::pair<int, double>> ChanceOutcomes() const { return {}; }
  // Applies a legal action of the current player (an outcome at a chance node). Behaviour on an
  // illegal action is undefined: callers check legality first (IsLegal).
  virtual void ApplyAction(int action) = 0;
  bool IsLegal(int action) const;
  virtual std::vector<double> Returns() const = 0;
  virtual void ObservationTensor(int player, std::span<float> out) const = 0;
  // What `player` sees, as text (board rendering; the prompt of text policies later).
  virtual std::string ObservationString(int player) const = 0;
  virtual std::string InformationStateString(int player) const = 0;
  virtual void InformationStateTensor(int player, std::span<float> out) const = 0;
  // A short human-readable name of `action` taken by `player` (or a chance outcome).
  virtual std::string ActionToString(int player, int action) const;
  virtual std::string ToString() const = 0;
  virtual std::unique_ptr<State> Clone() const = 0;
};

class Game {
 public:
  virtual ~Game() = default;
  virtual std::string Name() const = 0;
  // The parameters this game was made with, every known one included (defaults filled in).
  virtual GameParameters Parameters() const { return {}; }
  virtual int NumPlayers() const = 0;
  virtual int NumDistinctActions() const = 0;
  // Chance outcomes lie in [0, MaxChanceOutcomes()); 0 for games without chance.
  virtual int MaxChanceOutcomes() const { return 0; }
  virtual std::vector<int> ObservationShape() const = 0;
  int ObservationSize() const;
  virtual std::vector<int> InformationStateShape() const = 0;
  int InformationStateSize() const;
  // The most player actions (chance outcomes not counted) any game can take.
  virtual int MaxGameLength() const = 0;
  virtual std::unique_ptr<State> NewInitialState() const = 0;
};

// Samples an outcome of the chance node `state` by its probabilities.
int SampleChanceOutcome(const State& state, std::mt19937_64& rng);

}  // namespace rally
