// TicTacToe: player 0 (x) moves first; actions are cells 0-8, row-major. A win gives +1/-1,
// a full board without a line 0/0.
//
// Observation of player p: 3 planes of 9 cells — p's marks, the opponent's marks, empty cells.
// The information state is the position (perfect information): its tensor is the observation and
// its string "p<player> " followed by BoardString().
//
// Classic notation (policy export): the key is BoardString(), the action name the cell "0".."8".
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "common/games/game.h"

namespace rally {

class TicTacToeState : public State {
 public:
  TicTacToeState() { board_.fill(kEmpty); }

  int CurrentPlayer() const override;
  std::vector<int> LegalActions() const override;
  void ApplyAction(int action) override;
  std::vector<double> Returns() const override;
  void ObservationTensor(int player, std::span<float> out) const override;
  std::string ObservationString(int player) const override;
  std::string InformationStateString(int player) const override;
  void InformationStateTensor(int player, std::span<float> out) const override;
  std::string ToString() const override;
  std::unique_ptr<State> Clone() const override;

  // Cell contents: kEmpty, or the player (0 = x, 1 = o) who marked it.
  static constexpr int8_t kEmpty = -1;
  int8_t cell(int i) const { return board_[i]; }
  int num_moves() const { return num_moves_; }
  // Winner (0 or 1), or -1 when none (yet).
  int winner() const { return winner_; }
  // A base-3 code of the board, unique per position: sum of (cell+1) * 3^i.
  int Encode() const;
  // The board row-major as 9 characters from 'x', 'o', '.'.
  std::string BoardString() const;

 private:
  std::array<int8_t, 9> board_;
  int num_moves_ = 0;
  int winner_ = -1;
};

class TicTacToeGame : public Game {
 public:
  std::string Name() const override { return "tictactoe"; }
  int NumPlayers() const override { return 2; }
  int NumDistinctActions() const override { return 9; }
  std::vector<int> ObservationShape() const override { return {3, 9}; }
  std::vector<int> InformationStateShape() const override { return {3, 9}; }
  int MaxGameLength() const override { return 9; }
  std::unique_ptr<State> NewInitialState() const override {
    return std::make_unique<TicTacToeState>();
  }
};

// The classic key of the position of a TicTacToeState (its BoardString()).
std::string TicTacToePolicyKey(const State& state);
// "0".."8".
std::string TicTacToeActionName(int action);

}  // namespace rally
