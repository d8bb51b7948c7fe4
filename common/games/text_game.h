// Games as text: what a seat observes, written out for a language-model policy, and a parser of
// the answers it generates (SPIRAL's text games, ../shared/REFERENCES.md).
//
// A move is written in brackets, the same in every style: TicTacToe "[4]" (cells 0-8), Kuhn poker
// "[Check]", "[Bet]", "[Call]", "[Fold]", Simple Negotiation "[Offer: 3 Wheat -> 2 Ore]" (the
// proposer gives 3 Wheat for 2 Ore), "[Accept]", "[Deny]", Leduc poker Kuhn's words and "[Raise]",
// Connect Four "[3]" (columns 0-6). Words are matched case-insensitively and free text may stand
// around the move. Each game's file (tictactoe_text.cc, ...) opens with its texts.
//
// Two prompt styles:
// - kCompact, for small models trained from scratch: no chat template, terse rules once, then per
//   turn only what is new since the seat's previous turn, so that an actor appends to its KV cache
//   instead of re-reading the prompt. A seat's context (its transcript) is, in order, for each of
//   its turns: on the first turn Rules(game, p, kCompact); then Observation(state, p, kCompact);
//   then the answer; then kCompactAnswerEnd ("\n"). An answer is one line: the actor stops
//   generating at the newline (which ends the answer), and the move is the last [...] of the
//   answer. CompactTranscript() builds this concatenation for a sequence of actions, answers
//   written as MoveText.
// - kSpiral, for pretrained chat models (SPIRAL's Qwen template): each turn is a fresh prompt,
//   the template around Rules(game, p, kSpiral) followed by Observation(state, p, kSpiral) (the
//   state and the history since the start); the move is the last \boxed{...} of the answer, read
//   as its last [...] or, without brackets, as a whole ("\boxed{[Bet]}" and "\boxed{Bet}" alike).
//
// Renderings are pure functions of the state: equal states give equal text. The poker games' and
// Negotiation's states hold their history, so their texts are functions of the seat's information
// state. TicTacToe's and Connect Four's states are positions (transpositions share one); their
// compact transcripts repeat the boards the seat saw at its turns, so they tell transpositions
// apart while every single Observation does not; CompactPrompt gives the exact evaluator one
// prompt per TicTacToe position, that of a fixed move order.
//
// Every rendering is stateless and thread-safe; FindTextRendering returns a long-lived instance.
#pragma once

#include <memory>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/games/game.h"

namespace rally {

enum class PromptStyle { kCompact, kSpiral };

// "compact" or "spiral"; INVALID_ARGUMENT naming both otherwise.
absl::StatusOr<PromptStyle> ParsePromptStyle(std::string_view name);
std::string_view PromptStyleName(PromptStyle style);

// The end of an answer: a compact answer is one line; a spiral answer ends the assistant turn.
inline constexpr std::string_view kCompactAnswerEnd = "\n";
inline constexpr std::string_view kSpiralAnswerEnd = "<|im_end|>";
std::string_view AnswerEnd(PromptStyle style);

// The rewards of the forfeit rule: an invalid answer ends the game.
inline constexpr double kForfeitOffenderReturn = -1.5;
inline constexpr double kForfeitOpponentReturn = 0.5;

// One game's text. `game` and `state` are of the game the rendering was found for; `player` is a
// seat 0..NumPlayers()-1; `state` in Observation, MoveText and ParseMoveText is a decision node of
// `player` (CurrentPlayer() == player).
class TextRendering {
 public:
  virtual ~TextRendering() = default;
  // The rules as `player` is told them once, at the start of its first turn.
  virtual std::string Rules(const Game& game, int player, PromptStyle style) const = 0;
  // What `player` observes now. kCompact: what is new since its previous turn (on its first turn,
  // its private information too). kSpiral: the state and the history since the start.
  virtual std::string Observation(const State& state, int player, PromptStyle style) const = 0;
  // The canonical text of legal `action`, brackets included ("[4]", "[Bet]").
  virtual std::string MoveText(const State& state, int player, int action) const = 0;
  // The action named by `move`, the text inside the brackets ("4", "bet", "Offer: 3 Wheat -> 2
  // Ore"), surrounding spaces removed. INVALID_ARGUMENT saying why when it names no move of the
  // game, is malformed, or is not legal now.
  virtual absl::StatusOr<int> ParseMoveText(const State& state, int player,
                                            std::string_view move) const = 0;
  // Actions (chance outcomes included) that lead from the initial state to `state`: the state's
  // own history where it keeps one; for TicTacToe, whose state is its position, x's cells then
  // o's cells each ascending, taken in turns (a legal order to any position without a line).
  // UNIMPLEMENTED where neither is available (Connect Four).
  virtual absl::StatusOr<std::vector<int>> Path(const State& state) const;
};

// The rendering of the game registered as `game_name` (registry.h), or NOT_FOUND naming those
// that have one.
absl::StatusOr<const TextRendering*> FindTextRendering(std::string_view game_name);
std::vector<std::string> GamesWithTextRendering();

// The move text of `answer` (without brackets, trimmed): the last [...] (kCompact), or the last
// \boxed{...} read as described above (kSpiral). INVALID_ARGUMENT when there is none.
absl::StatusOr<std::string_view> ExtractMove(PromptStyle style, std::string_view answer);

// The action `answer` names at decision node `state` of `player`: ExtractMove, then
// ParseMoveText. Any error is an invalid answer.
absl::StatusOr<int> ParseAnswer(const TextRendering& rendering, PromptStyle style,
                                const State& state, int player, std::string_view answer);

// The canonical answer for legal `action`: MoveText (kCompact), "\boxed{" MoveText "}" (kSpiral).
// Without the answer end. ParseAnswer reads it back as `action`; the exact evaluator scores it.
std::string CanonicalAnswer(const TextRendering& rendering, PromptStyle style, const State& state,
                            int player, int action);

// SPIRAL's whole prompt for `player` to move at `state`:
//   <|im_start|>user\nYou are playing a two-player zero-sum game. Make valid actions to win.\n
//   Observation: {Rules}{Observation}\nPlease reason step by step, and put your final answer
//   within \boxed{}.<|im_end|>\n<|im_start|>assistant\n
std::string SpiralPrompt(const TextRendering& rendering, const Game& game, const State& state,
                         int player);

// The text `player` is given at its decision node `state` in `style`: kCompact, the text appended
// to its context (the rules first when `first_turn`); kSpiral, SpiralPrompt.
std::string TurnPrompt(const TextRendering& rendering, PromptStyle style, const Game& game,
                       const State& state, int player, bool first_turn);

// `player`'s compact transcript after `actions` (chance outcomes included) from the initial
// state, as the header describes, each answer its MoveText: ends with the pending turn's prompt
// when `player` is to move. Empty before its first turn. INVALID_ARGUMENT naming the position of an
// illegal action.
absl::StatusOr<std::string> CompactTranscript(const TextRendering& rendering, const Game& game,
                                              std::span<const int> actions, int player);

// `player`'s compact transcript at `state`: CompactTranscript of Path(state). For the exact
// evaluator: the prompt after which a move's canonical answer is scored. Where the state keeps its
// history this depends on the state only through `player`'s information state; for TicTacToe it
// is a function of the position.
absl::StatusOr<std::string> CompactPrompt(const TextRendering& rendering, const Game& game,
                                          const State& state, int player);

// A two-player game played from the text side, with the forfeit rule. Chance nodes are sampled
// with the generator the caller passes. The game ends when the state is terminal (the game's
// returns), when an answer is invalid (offender kForfeitOffenderReturn, the other
// kForfeitOpponentReturn), or when `max_turns` answers have been applied to an unfinished game
// (a draw, 0 / 0). A game's own turn limit, such as Negotiation's, is part of its rules and scored
// by them. Not thread-safe; movable.
struct TextMatchOptions {
  PromptStyle style = PromptStyle::kCompact;
  // Answers after which an unfinished game is cut as a draw; 0 for no limit but the game's.
  int max_turns = 0;
};

class TextMatch {
 public:
  // A match of `game` (two players, with a text rendering), chance nodes up to the first decision
  // sampled. INVALID_ARGUMENT for a game that is not two-player or has no rendering.
  static absl::StatusOr<TextMatch> Start(std::shared_ptr<const Game> game,
                                         const TextMatchOptions& options, std::mt19937_64& rng);

  bool IsOver() const { return over_; }
  // The seat to answer, or kTerminalPlayer once over.
  int CurrentPlayer() const { return over_ ? kTerminalPlayer : state_->CurrentPlayer(); }
  // The text for the seat to answer (TurnPrompt). Empty once over.
  std::string Prompt() const;
  // Applies the seat's answer (its text without the answer end) and samples chance nodes up to
  // the next decision: the action applied, or the parse error, after which the game is over by
  // forfeit. FAILED_PRECONDITION once over (nothing changes).
  absl::StatusOr<int> Answer(std::string_view answer, std::mt19937_64& rng);
  // Per player; zeros before the end.
  std::vector<double> Returns() const;

  const State& state() const { return *state_; }
  const Game& game() const { return *game_; }
  const TextRendering& rendering() const { return *rendering_; }
  // Every action applied, chance outcomes included, from the initial state.
  const std::vector<int>& actions() const { return actions_; }
  // Answers applied so far.
  int turns() const { return turns_; }
  // The seat whose answer was invalid, or -1.
  int forfeited_by() const { return forfeited_by_; }
  // Whether the match was cut at max_turns.
  bool cut_at_turn_limit() const { return cut_; }
  // The prompts given to `player` and its answers, each followed by the answer end, in order,
  // the pending prompt last when `player` is to answer. In the compact style this is the seat's
  // context, and with canonical answers CompactTranscript(actions()).
  std::string Transcript(int player) const;

 private:
  TextMatch(std::shared_ptr<const Game> game, const TextRendering* rendering,
            const TextMatchOptions& options);
  void PlayChance(std::mt19937_64& rng);

  std::shared_ptr<const Game> game_;
  const TextRendering* rendering_;
  TextMatchOptions options_;
  std::unique_ptr<State> state_;
  std::vector<int> actions_;
  std::vector<std::string> given_;  // per player: past prompts and answers
  std::vector<int> player_turns_;   // per player: answers applied
  int turns_ = 0;
  int forfeited_by_ = -1;
  bool cut_ = false;
  bool over_ = false;
};

// ASCII text helpers shared by the renderings.
std::string_view StripSpaces(std::string_view text);
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix);

// The renderings, one per game (tictactoe_text.cc, ...).
const TextRendering& TicTacToeTextRendering();
const TextRendering& KuhnPokerTextRendering();
const TextRendering& NegotiationTextRendering();
const TextRendering& LeducPokerTextRendering();
const TextRendering& ConnectFourTextRendering();

}  // namespace rally
