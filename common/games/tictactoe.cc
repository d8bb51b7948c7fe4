#include "common/games/tictactoe.h"

namespace rally {
namespace {

constexpr int kLines[8][3] = {{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {0, 3, 6},
                              {1, 4, 7}, {2, 5, 8}, {0, 4, 8}, {2, 4, 6}};

}  // namespace

int TicTacToeState::CurrentPlayer() const {
  if (winner_ >= 0 || num_moves_ == 9) return kTerminalPlayer;
  return num_moves_ % 2;
}

std::vector<int> TicTacToeState::LegalActions() const {
  std::vector<int> actions;
  if (IsTerminal()) return actions;
  for (int i = 0; i < 9; ++i) {
    if (board_[i] == kEmpty) actions.push_back(i);
  }
  return actions;
}

void TicTacToeState::ApplyAction(int action) {
  int player = CurrentPlayer();
  board_[action] = static_cast<int8_t>(player);
  ++num_moves_;
  for (const auto& line : kLines) {
    if (board_[line[0]] == player && board_[line[1]] == player && board_[line[2]] == player) {
      winner_ = player;
      return;
    }
  }
}

std::vector<double> TicTacToeState::Returns() const {
  if (winner_ < 0) return {0.0, 0.0};
  return winner_ == 0 ? std::vector<double>{1.0, -1.0} : std::vector<double>{-1.0, 1.0};
}

void TicTacToeState::ObservationTensor(int player, std::span<float> out) const {
  for (int i = 0; i < 9; ++i) {
    out[i] = board_[i] == player ? 1.f : 0.f;
    out[9 + i] = board_[i] == 1 - player ? 1.f : 0.f;
    out[18 + i] = board_[i] == kEmpty ? 1.f : 0.f;
  }
}

std::string TicTacToeState::BoardString() const {
  std::string s(9, '.');
  for (int i = 0; i < 9; ++i) {
    if (board_[i] == 0) s[i] = 'x';
    if (board_[i] == 1) s[i] = 'o';
  }
  return s;
}

std::string TicTacToeState::ObservationString(int /*player*/) const { return ToString(); }

std::string TicTacToeState::InformationStateString(int player) const {
  return "p" + std::to_string(player) + " " + BoardString();
}

void TicTacToeState::InformationStateTensor(int player, std::span<float> out) const {
  ObservationTensor(player, out);
}

std::string TicTacToeState::ToString() const {
  std::string b = BoardString();
  return b.substr(0, 3) + "\n" + b.substr(3, 3) + "\n" + b.substr(6, 3);
}

std::unique_ptr<State> TicTacToeState::Clone() const {
  return std::make_unique<TicTacToeState>(*this);
}

int TicTacToeState::Encode() const {
  int code = 0;
  for (int i = 8; i >= 0; --i) code = code * 3 + (board_[i] + 1);
  return code;
}

std::string TicTacToePolicyKey(const State& state) {
  return static_cast<const TicTacToeState&>(state).BoardString();
}

std::string TicTacToeActionName(int action) { return std::to_string(action); }

}  // namespace rally
