// The game interface, shaped after OpenSpiel's Game/State so that researchers recognise it.
//
// Contract:
// - Players are numbered 0..NumPlayers()-1. CurrentPlayer() returns kTerminalPlayer once the game
//   is over (and kChancePlayer at chance nodes, for games that have them).
// - LegalActions() is ascending and non-empty at every non-terminal state; actions lie in
//   [0, NumDistinctActions()).
// - ObservationTensor(player) fills exactly ObservationSize() floats: what `player` sees, from
//   that player's perspective, so one network can play every seat.
// - Returns() has one entry per player, meaningful at terminal states (zero before).
// - States are values: Clone() copies, and a State is not shared between threads.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

namespace rally {

inline constexpr int kTerminalPlayer = -4;
inline constexpr int kChancePlayer = -1;

class State {
 public:
  virtual ~State() = default;
  virtual int CurrentPlayer() const = 0;
  bool IsTerminal() const { return CurrentPlayer() == kTerminalPlayer; }
  virtual std::vector<int> LegalActions() const = 0;
  // Applies a legal action of the current player. Behaviour on an illegal action is undefined:
  // callers check legality first (IsLegal).
  virtual void ApplyAction(int action) = 0;
  bool IsLegal(int action) const;
  virtual std::vector<double> Returns() const = 0;
  virtual void ObservationTensor(int player, std::span<float> out) const = 0;
  // What `player` sees, as text (board rendering; the prompt of text policies later).
  virtual std::string ObservationString(int player) const = 0;
  virtual std::string ToString() const = 0;
  virtual std::unique_ptr<State> Clone() const = 0;
};

class Game {
 public:
  virtual ~Game() = default;
  virtual std::string Name() const = 0;
  virtual int NumPlayers() const = 0;
  virtual int NumDistinctActions() const = 0;
  virtual std::vector<int> ObservationShape() const = 0;
  int ObservationSize() const;
  virtual int MaxGameLength() const = 0;
  virtual std::unique_ptr<State> NewInitialState() const = 0;
};

}  // namespace rally
