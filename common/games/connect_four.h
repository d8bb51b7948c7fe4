// Connect Four: a board of 7 columns and 6 rows standing upright. Player 0 (x) moves first; an
// action is a column 0-6 that is not full, and the piece falls to the lowest empty cell of it.
// Four of a player's pieces in a row, column or diagonal win (+1/-1); a full board without four
// is a draw (0/0).
//
// Cells are addressed (row, column) with row 0 at the bottom. Observation of player p: 3 planes of
// 6x7 cells — p's pieces, the opponent's pieces, empty cells. The information state is the
// position (perfect information): its tensor is the observation and its string "p<player> "
// followed by BoardString().
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "common/games/game.h"

namespace rally {

class ConnectFourState : public State {
 public:
  static constexpr int kRows = 6;
  static constexpr int kColumns = 7;
  static constexpr int8_t kEmpty = -1;

  ConnectFourState() { board_.fill(kEmpty); }

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

  // kEmpty, or the player (0 = x, 1 = o) whose piece is there.
  int cell(int row, int column) const { return board_[row * kColumns + column]; }
  // Number of pieces in `column`; the next piece there lands in this row.
  int height(int column) const { return heights_[column]; }
  int num_moves() const { return num_moves_; }
  // Winner (0 or 1), or -1 when none (yet).
  int winner() const { return winner_; }
  // Rows from the top down, each 7 characters from 'x', 'o', '.'; 42 characters in all.
  std::string BoardString() const;

 private:
  bool CompletesFour(int row, int column) const;

  std::array<int8_t, kRows * kColumns> board_;
  std::array<int, kColumns> heights_{};
  int num_moves_ = 0;
  int winner_ = -1;
};

class ConnectFourGame : public Game {
 public:
  std::string Name() const override { return "connect_four"; }
  int NumPlayers() const override { return 2; }
  int NumDistinctActions() const override { return ConnectFourState::kColumns; }
  std::vector<int> ObservationShape() const override {
    return {3, ConnectFourState::kRows, ConnectFourState::kColumns};
  }
  std::vector<int> InformationStateShape() const override { return ObservationShape(); }
  int MaxGameLength() const override {
    return ConnectFourState::kRows * ConnectFourState::kColumns;
  }
  std::unique_ptr<State> NewInitialState() const override {
    return std::make_unique<ConnectFourState>();
  }
};

}  // namespace rally
