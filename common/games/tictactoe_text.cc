// TicTacToe as text. The board is drawn in 3 lines, each cell its mark (x or o) or, when empty,
// its number, so that the moves left can be read off the board.
//   kCompact  rules   "TicTacToe, you are x. Move [cell].\n"
//             turn    the board: "x1o\n3x5\n67o\n"
//   kSpiral   rules   a paragraph naming the seat's mark, the win condition and the cell numbers
//             turn    "Board:\n x | 1 | o\n 3 | x | 5\n 6 | 7 | o\nYou play x. Your legal moves:
//                     [1], [3], [5], [6], [7]"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/games/text_game.h"
#include "common/games/tictactoe.h"

namespace rally {
namespace {

char Mark(int player) { return player == 0 ? 'x' : 'o'; }

// What cell `i` shows: its mark, or its number when empty.
char CellChar(const TicTacToeState& s, int i) {
  return s.cell(i) == TicTacToeState::kEmpty ? static_cast<char>('0' + i) : Mark(s.cell(i));
}

class TicTacToeText final : public TextRendering {
 public:
  std::string Rules(const Game& /*game*/, int player, PromptStyle style) const override {
    if (style == PromptStyle::kCompact) {
      return absl::StrCat("TicTacToe, you are ", std::string(1, Mark(player)), ". Move [cell].\n");
    }
    return absl::StrCat(
        "You are Player ", player, " in TicTacToe and play ", std::string(1, Mark(player)),
        "; Player ", 1 - player, " plays ", std::string(1, Mark(1 - player)),
        ", and x moves first. Players take turns marking an empty cell of the 3x3 board; three "
        "marks in a row, column or diagonal win, and a full board without one is a draw. Cells "
        "are numbered 0-8 row by row; answer with the cell, e.g. [4].\n");
  }

  std::string Observation(const State& state, int player, PromptStyle style) const override {
    const auto& s = static_cast<const TicTacToeState&>(state);
    std::string text;
    if (style == PromptStyle::kCompact) {
      for (int i = 0; i < 9; ++i) {
        text += CellChar(s, i);
        if (i % 3 == 2) text += '\n';
      }
      return text;
    }
    text = "Board:\n";
    for (int row = 0; row < 3; ++row) {
      absl::StrAppend(&text, " ", std::string(1, CellChar(s, 3 * row)), " | ",
                      std::string(1, CellChar(s, 3 * row + 1)), " | ",
                      std::string(1, CellChar(s, 3 * row + 2)), "\n");
    }
    std::vector<std::string> moves;
    for (int a : s.LegalActions()) moves.push_back(MoveText(s, player, a));
    absl::StrAppend(&text, "You play ", std::string(1, Mark(player)),
                    ". Your legal moves: ", absl::StrJoin(moves, ", "));
    return text;
  }

  std::string MoveText(const State& /*state*/, int /*player*/, int action) const override {
    return absl::StrCat("[", action, "]");
  }

  absl::StatusOr<int> ParseMoveText(const State& state, int /*player*/,
                                    std::string_view move) const override {
    const auto& s = static_cast<const TicTacToeState&>(state);
    if (move.size() != 1 || move[0] < '0' || move[0] > '8') {
      return absl::InvalidArgumentError(absl::StrCat(
          "'", std::string(move), "' is not a TicTacToe cell: a move is a cell 0-8, e.g. [4]"));
    }
    int cell = move[0] - '0';
    if (s.cell(cell) != TicTacToeState::kEmpty) {
      return absl::InvalidArgumentError(
          absl::StrCat("cell ", cell, " is taken by ", std::string(1, Mark(s.cell(cell)))));
    }
    return cell;
  }

  absl::StatusOr<std::vector<int>> Path(const State& state) const override {
    const auto& s = static_cast<const TicTacToeState&>(state);
    std::vector<std::vector<int>> cells(2);
    for (int i = 0; i < 9; ++i) {
      if (s.cell(i) != TicTacToeState::kEmpty) cells[s.cell(i)].push_back(i);
    }
    std::vector<int> path;
    for (size_t k = 0; k < cells[0].size(); ++k) {
      path.push_back(cells[0][k]);
      if (k < cells[1].size()) path.push_back(cells[1][k]);
    }
    return path;
  }
};

}  // namespace

const TextRendering& TicTacToeTextRendering() {
  static const TicTacToeText* rendering = new TicTacToeText;
  return *rendering;
}

}  // namespace rally
