#include "common/games/text_game.h"

#include <cctype>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rally {
namespace {

struct Entry {
  const char* game;
  const TextRendering& (*rendering)();
};

constexpr Entry kRenderings[] = {
    {"tictactoe", &TicTacToeTextRendering},      {"kuhn_poker", &KuhnPokerTextRendering},
    {"negotiation", &NegotiationTextRendering},  {"leduc_poker", &LeducPokerTextRendering},
    {"connect_four", &ConnectFourTextRendering},
};

constexpr std::string_view kBoxed = "\\boxed{";

// The text inside the last [...] of `text`, or nullopt.
std::optional<std::string_view> LastBracketed(std::string_view text) {
  size_t close = text.rfind(']');
  if (close == std::string_view::npos) return std::nullopt;
  size_t open = text.rfind('[', close);
  if (open == std::string_view::npos) return std::nullopt;
  return text.substr(open + 1, close - open - 1);
}

// The content of the last \boxed{...} of `answer` (braces inside balanced), or nullopt.
std::optional<std::string_view> LastBoxed(std::string_view answer) {
  size_t start = answer.rfind(kBoxed);
  if (start == std::string_view::npos) return std::nullopt;
  size_t begin = start + kBoxed.size();
  int depth = 1;
  for (size_t i = begin; i < answer.size(); ++i) {
    if (answer[i] == '{') ++depth;
    if (answer[i] == '}' && --depth == 0) return answer.substr(begin, i - begin);
  }
  return std::nullopt;
}

}  // namespace

std::string_view StripSpaces(std::string_view text) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  return text;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && EqualsIgnoreCase(text.substr(0, prefix.size()), prefix);
}

absl::StatusOr<PromptStyle> ParsePromptStyle(std::string_view name) {
  if (name == "compact") return PromptStyle::kCompact;
  if (name == "spiral") return PromptStyle::kSpiral;
  return absl::InvalidArgumentError(
      absl::StrCat("prompt style '", std::string(name), "' is neither 'compact' nor 'spiral'"));
}

std::string_view PromptStyleName(PromptStyle style) {
  return style == PromptStyle::kCompact ? "compact" : "spiral";
}

std::string_view AnswerEnd(PromptStyle style) {
  return style == PromptStyle::kCompact ? kCompactAnswerEnd : kSpiralAnswerEnd;
}

absl::StatusOr<const TextRendering*> FindTextRendering(std::string_view game_name) {
  for (const Entry& e : kRenderings) {
    if (game_name == e.game) return &e.rendering();
  }
  return absl::NotFoundError(absl::StrCat("game '", std::string(game_name),
                                          "' has no text rendering (games with one: ",
                                          absl::StrJoin(GamesWithTextRendering(), ", "), ")"));
}

std::vector<std::string> GamesWithTextRendering() {
  std::vector<std::string> names;
  for (const Entry& e : kRenderings) names.push_back(e.game);
  return names;
}

absl::StatusOr<std::string_view> ExtractMove(PromptStyle style, std::string_view answer) {
  if (style == PromptStyle::kCompact) {
    std::optional<std::string_view> move = LastBracketed(answer);
    if (!move) return absl::InvalidArgumentError("no move in brackets, such as [4], in the answer");
    return StripSpaces(*move);
  }
  std::optional<std::string_view> boxed = LastBoxed(answer);
  if (!boxed) return absl::InvalidArgumentError("no \\boxed{...} move in the answer");
  std::optional<std::string_view> move = LastBracketed(*boxed);
  return StripSpaces(move ? *move : *boxed);
}

absl::StatusOr<int> ParseAnswer(const TextRendering& rendering, PromptStyle style,
                                const State& state, int player, std::string_view answer) {
  absl::StatusOr<std::string_view> move = ExtractMove(style, answer);
  if (!move.ok()) return move.status();
  return rendering.ParseMoveText(state, player, *move);
}

std::string CanonicalAnswer(const TextRendering& rendering, PromptStyle style, const State& state,
                            int player, int action) {
  std::string move = rendering.MoveText(state, player, action);
  return style == PromptStyle::kCompact ? move : absl::StrCat(std::string(kBoxed), move, "}");
}

std::string SpiralPrompt(const TextRendering& rendering, const Game& game, const State& state,
                         int player) {
  return absl::StrCat(
      "<|im_start|>user\nYou are playing a two-player zero-sum game. Make valid actions to win.\n"
      "Observation: ",
      rendering.Rules(game, player, PromptStyle::kSpiral),
      rendering.Observation(state, player, PromptStyle::kSpiral),
      "\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
      "<|im_start|>assistant\n");
}

std::string TurnPrompt(const TextRendering& rendering, PromptStyle style, const Game& game,
                       const State& state, int player, bool first_turn) {
  if (style == PromptStyle::kSpiral) return SpiralPrompt(rendering, game, state, player);
  std::string text = first_turn ? rendering.Rules(game, player, style) : "";
  absl::StrAppend(&text, rendering.Observation(state, player, style));
  return text;
}

absl::StatusOr<std::string> CompactTranscript(const TextRendering& rendering, const Game& game,
                                              std::span<const int> actions, int player) {
  std::unique_ptr<State> state = game.NewInitialState();
  std::string transcript;
  bool first_turn = true;
  for (size_t i = 0; i < actions.size(); ++i) {
    if (state->IsTerminal() || !state->IsLegal(actions[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("action ", actions[i], " at position ", i, " is not legal"));
    }
    if (state->CurrentPlayer() == player) {
      absl::StrAppend(
          &transcript,
          TurnPrompt(rendering, PromptStyle::kCompact, game, *state, player, first_turn),
          rendering.MoveText(*state, player, actions[i]), std::string(kCompactAnswerEnd));
      first_turn = false;
    }
    state->ApplyAction(actions[i]);
  }
  if (state->CurrentPlayer() == player) {
    absl::StrAppend(&transcript,
                    TurnPrompt(rendering, PromptStyle::kCompact, game, *state, player, first_turn));
  }
  return transcript;
}

absl::StatusOr<std::vector<int>> TextRendering::Path(const State& /*state*/) const {
  return absl::UnimplementedError("this game's states do not keep the actions that led to them");
}

absl::StatusOr<std::string> CompactPrompt(const TextRendering& rendering, const Game& game,
                                          const State& state, int player) {
  absl::StatusOr<std::vector<int>> path = rendering.Path(state);
  if (!path.ok()) return path.status();
  return CompactTranscript(rendering, game, *path, player);
}

TextMatch::TextMatch(std::shared_ptr<const Game> game, const TextRendering* rendering,
                     const TextMatchOptions& options)
    : game_(std::move(game)),
      rendering_(rendering),
      options_(options),
      state_(game_->NewInitialState()),
      given_(2),
      player_turns_(2, 0) {}

absl::StatusOr<TextMatch> TextMatch::Start(std::shared_ptr<const Game> game,
                                           const TextMatchOptions& options, std::mt19937_64& rng) {
  if (game->NumPlayers() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("a text match needs a two-player game; '",
                                                   game->Name(), "' has ", game->NumPlayers(),
                                                   " players"));
  }
  absl::StatusOr<const TextRendering*> rendering = FindTextRendering(game->Name());
  if (!rendering.ok()) return absl::InvalidArgumentError(rendering.status().message());
  TextMatch match(std::move(game), *rendering, options);
  match.PlayChance(rng);
  return match;
}

void TextMatch::PlayChance(std::mt19937_64& rng) {
  while (state_->IsChanceNode()) {
    int outcome = SampleChanceOutcome(*state_, rng);
    state_->ApplyAction(outcome);
    actions_.push_back(outcome);
  }
  if (state_->IsTerminal()) over_ = true;
}

std::string TextMatch::Prompt() const {
  if (over_) return "";
  int player = state_->CurrentPlayer();
  return TurnPrompt(*rendering_, options_.style, *game_, *state_, player,
                    player_turns_[player] == 0);
}

absl::StatusOr<int> TextMatch::Answer(std::string_view answer, std::mt19937_64& rng) {
  if (over_) return absl::FailedPreconditionError("the text match is over; no answer is taken");
  int player = state_->CurrentPlayer();
  absl::StrAppend(&given_[player], Prompt(), std::string(answer),
                  std::string(AnswerEnd(options_.style)));
  ++player_turns_[player];
  ++turns_;
  absl::StatusOr<int> action = ParseAnswer(*rendering_, options_.style, *state_, player, answer);
  if (!action.ok()) {
    forfeited_by_ = player;
    over_ = true;
    return action.status();
  }
  state_->ApplyAction(*action);
  actions_.push_back(*action);
  PlayChance(rng);
  if (!over_ && options_.max_turns > 0 && turns_ >= options_.max_turns) {
    cut_ = true;
    over_ = true;
  }
  return *action;
}

std::vector<double> TextMatch::Returns() const {
  if (forfeited_by_ >= 0) {
    std::vector<double> returns(2, kForfeitOpponentReturn);
    returns[forfeited_by_] = kForfeitOffenderReturn;
    return returns;
  }
  if (!over_ || cut_) return {0.0, 0.0};
  return state_->Returns();
}

std::string TextMatch::Transcript(int player) const {
  if (!over_ && state_->CurrentPlayer() == player) return given_[player] + Prompt();
  return given_[player];
}

}  // namespace rally
