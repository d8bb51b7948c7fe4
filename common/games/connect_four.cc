#include "common/games/connect_four.h"

namespace rally {
namespace {

constexpr int kRows = ConnectFourState::kRows;
constexpr int kColumns = ConnectFourState::kColumns;
// Half of the four line directions; each is walked both ways from the new piece.
constexpr int kDirections[4][2] = {{0, 1}, {1, 0}, {1, 1}, {1, -1}};

}  // namespace

int ConnectFourState::CurrentPlayer() const {
  if (winner_ >= 0 || num_moves_ == kRows * kColumns) return kTerminalPlayer;
  return num_moves_ % 2;
}

std::vector<int> ConnectFourState::LegalActions() const {
  std::vector<int> actions;
  if (IsTerminal()) return actions;
  for (int c = 0; c < kColumns; ++c) {
    if (heights_[c] < kRows) actions.push_back(c);
  }
  return actions;
}

void ConnectFourState::ApplyAction(int action) {
  int player = CurrentPlayer();
  int row = heights_[action]++;
  board_[row * kColumns + action] = static_cast<int8_t>(player);
  ++num_moves_;
  if (CompletesFour(row, action)) winner_ = player;
}

bool ConnectFourState::CompletesFour(int row, int column) const {
  int player = cell(row, column);
  for (const auto& d : kDirections) {
    int count = 1;
    for (int sign : {1, -1}) {
      int r = row + sign * d[0];
      int c = column + sign * d[1];
      while (r >= 0 && r < kRows && c >= 0 && c < kColumns && cell(r, c) == player) {
        ++count;
        r += sign * d[0];
        c += sign * d[1];
      }
    }
    if (count >= 4) return true;
  }
  return false;
}

std::vector<double> ConnectFourState::Returns() const {
  if (winner_ < 0) return {0.0, 0.0};
  return winner_ == 0 ? std::vector<double>{1.0, -1.0} : std::vector<double>{-1.0, 1.0};
}

void ConnectFourState::ObservationTensor(int player, std::span<float> out) const {
  constexpr int kCells = kRows * kColumns;
  for (int i = 0; i < kCells; ++i) {
    out[i] = board_[i] == player ? 1.f : 0.f;
    out[kCells + i] = board_[i] == 1 - player ? 1.f : 0.f;
    out[2 * kCells + i] = board_[i] == kEmpty ? 1.f : 0.f;
  }
}

std::string ConnectFourState::BoardString() const {
  std::string s;
  s.reserve(kRows * kColumns);
  for (int r = kRows - 1; r >= 0; --r) {
    for (int c = 0; c < kColumns; ++c) {
      int v = cell(r, c);
      s.push_back(v == 0 ? 'x' : v == 1 ? 'o' : '.');
    }
  }
  return s;
}

std::string ConnectFourState::ObservationString(int /*player*/) const { return ToString(); }

std::string ConnectFourState::InformationStateString(int player) const {
  return "p" + std::to_string(player) + " " + BoardString();
}

void ConnectFourState::InformationStateTensor(int player, std::span<float> out) const {
  ObservationTensor(player, out);
}

std::string ConnectFourState::ToString() const {
  std::string b = BoardString();
  std::string s;
  for (int r = 0; r < kRows; ++r) s += b.substr(r * kColumns, kColumns) + "\n";
  return s + "0123456";
}

std::unique_ptr<State> ConnectFourState::Clone() const {
  return std::make_unique<ConnectFourState>(*this);
}

}  // namespace rally
