// Connect Four as text: the board from the top row down, x and o for the pieces and . for empty
// cells, over a line of column numbers; a move is a column, "[3]".
//   kCompact  rules   "Connect Four, you are x. Move [column].\n"
//             turn    the board, 6 lines of 7 characters and "0123456\n"
//   kSpiral   rules   a paragraph naming the seat's pieces, how pieces fall and the win condition
//             turn    "Board:\n" the same board with spaces between cells, then
//                     "You play x. Your legal moves: [0], [1], ..."
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/games/connect_four.h"
#include "common/games/text_game.h"

namespace rally {
namespace {

char Mark(int player) { return player == 0 ? 'x' : 'o'; }

class ConnectFourText final : public TextRendering {
 public:
  std::string Rules(const Game& /*game*/, int player, PromptStyle style) const override {
    if (style == PromptStyle::kCompact) {
      return absl::StrCat("Connect Four, you are ", std::string(1, Mark(player)),
                          ". Move [column].\n");
    }
    return absl::StrCat(
        "You are Player ", player, " in Connect Four and play ", std::string(1, Mark(player)),
        "; Player ", 1 - player, " plays ", std::string(1, Mark(1 - player)),
        ", and x moves first. Players take turns dropping a piece into one of the 7 columns "
        "(0-6) of an upright board of 6 rows; it falls to the lowest empty cell. Four pieces in a "
        "row, column or diagonal win; a full board without four is a draw. Answer with the "
        "column, e.g. [3].\n");
  }

  std::string Observation(const State& state, int player, PromptStyle style) const override {
    const auto& s = static_cast<const ConnectFourState&>(state);
    const std::string separator = style == PromptStyle::kCompact ? "" : " ";
    std::string text = style == PromptStyle::kCompact ? "" : "Board:\n";
    for (int row = ConnectFourState::kRows - 1; row >= 0; --row) {
      std::vector<std::string> cells;
      for (int column = 0; column < ConnectFourState::kColumns; ++column) {
        int cell = s.cell(row, column);
        cells.push_back(cell == ConnectFourState::kEmpty ? "." : std::string(1, Mark(cell)));
      }
      absl::StrAppend(&text, absl::StrJoin(cells, separator), "\n");
    }
    absl::StrAppend(&text, absl::StrJoin({"0", "1", "2", "3", "4", "5", "6"}, separator), "\n");
    if (style == PromptStyle::kCompact) return text;
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
    const auto& s = static_cast<const ConnectFourState&>(state);
    if (move.size() != 1 || move[0] < '0' || move[0] > '6') {
      return absl::InvalidArgumentError(
          absl::StrCat("'", std::string(move),
                       "' is not a Connect Four column: a move is a column 0-6, e.g. [3]"));
    }
    int column = move[0] - '0';
    if (s.height(column) >= ConnectFourState::kRows) {
      return absl::InvalidArgumentError(absl::StrCat("column ", column, " is full"));
    }
    return column;
  }
};

}  // namespace

const TextRendering& ConnectFourTextRendering() {
  static const ConnectFourText* rendering = new ConnectFourText;
  return *rendering;
}

}  // namespace rally
