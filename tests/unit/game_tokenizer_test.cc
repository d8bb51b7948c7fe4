#include "common/lm/game_tokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "common/games/registry.h"
#include "common/games/text_game.h"

namespace rally {
namespace {

using Ids = std::vector<int32_t>;

std::shared_ptr<const Game> Load(const std::string& name) {
  absl::StatusOr<std::shared_ptr<const Game>> game = LoadGame(name);
  EXPECT_TRUE(game.ok()) << game.status();
  return *game;
}

std::unique_ptr<Tokenizer> Open(const std::string& reference, const Game& game) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      OpenTokenizer(reference, game, PromptStyle::kCompact);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return *std::move(tokenizer);
}

TEST(GameTokenizer, KuhnPokersAnswersAreItsFourMoveWordsEachEndedByTheNewline) {
  auto game = Load("kuhn_poker");
  absl::StatusOr<std::vector<std::string>> answers = GameAnswerTexts(*game, PromptStyle::kCompact);
  ASSERT_TRUE(answers.ok()) << answers.status();
  EXPECT_EQ(*answers, (std::vector<std::string>{"[Bet]\n", "[Call]\n", "[Check]\n", "[Fold]\n"}));
  absl::StatusOr<std::vector<std::string>> spiral = GameAnswerTexts(*game, PromptStyle::kSpiral);
  ASSERT_TRUE(spiral.ok());
  EXPECT_EQ(spiral->front(), "\\boxed{[Bet]}<|im_end|>");
}

TEST(GameTokenizer, TicTacToesAnswersAreItsNineCells) {
  auto game = Load("tictactoe");
  absl::StatusOr<std::vector<std::string>> answers = GameAnswerTexts(*game, PromptStyle::kCompact);
  ASSERT_TRUE(answers.ok());
  std::vector<std::string> cells;
  for (int c = 0; c < 9; ++c) cells.push_back("[" + std::to_string(c) + "]\n");
  EXPECT_EQ(*answers, cells);
}

TEST(GameTokenizer, EveryNegotiationMoveHasItsOwnAnswer) {
  auto game = Load("negotiation");
  absl::StatusOr<std::vector<std::string>> answers = GameAnswerTexts(*game, PromptStyle::kCompact);
  ASSERT_TRUE(answers.ok());
  // Accept, deny and every offer: one text per distinct action.
  EXPECT_EQ(static_cast<int>(answers->size()), game->NumDistinctActions());
}

TEST(GameTokenizer, AnAnswerIsOneTokenAndEverythingElseIsTheByteTokenizersIds) {
  auto game = Load("kuhn_poker");
  std::unique_ptr<Tokenizer> tokenizer = Open(kGameTokenizerName, *game);
  std::unique_ptr<Tokenizer> bytes = MakeByteTokenizer();
  EXPECT_EQ(tokenizer->VocabSize(), 259 + 4);
  // Sorted answers from id 259: [Bet] [Call] [Check] [Fold].
  EXPECT_EQ(tokenizer->Encode("[Bet]\n"), (Ids{259}));
  EXPECT_EQ(tokenizer->Encode("[Fold]\n"), (Ids{262}));
  EXPECT_EQ(tokenizer->Decode(Ids{261}), "[Check]\n");
  // Without the newline a move is not an answer: bytes.
  EXPECT_EQ(tokenizer->Encode("[Bet]"), bytes->Encode("[Bet]"));
  EXPECT_EQ(tokenizer->Encode("Card K\nMoves [Check] [Bet]\n"),
            (Ids{'C', 'a', 'r', 'd', ' ', 'K', '\n', 'M', 'o', 'v', 'e',
                 's', ' ', '[', 'C', 'h', 'e', 'c',  'k', ']', ' ', 259}));
  EXPECT_EQ(tokenizer->Encode("<|im_end|>"), (Ids{258}));
  // Any bytes round-trip, and text without answers encodes as the byte tokenizer does.
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text(rng() % 40, '\0');
    for (char& c : text) c = static_cast<char>(rng() % 256);
    EXPECT_EQ(tokenizer->Decode(tokenizer->Encode(text)), text);
    if (text.find(']') == std::string::npos) {
      EXPECT_EQ(tokenizer->Encode(text), bytes->Encode(text));
    }
  }
}

TEST(GameTokenizer, TheCheckpointBytesReadBackAsTheSameTokenizer) {
  auto game = Load("tictactoe");
  absl::StatusOr<std::string> json =
      TokenizerJsonBytes(kGameTokenizerName, *game, PromptStyle::kCompact);
  ASSERT_TRUE(json.ok());
  absl::StatusOr<std::unique_ptr<Tokenizer>> parsed = ParseTokenizerJson(*json, "test");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  std::unique_ptr<Tokenizer> opened = Open(kGameTokenizerName, *game);
  const std::string text = "TicTacToe, you are x.\n...\n...\n...\n[4]\n[0]\nxo.\n";
  EXPECT_EQ((*parsed)->Encode(text), opened->Encode(text));
  EXPECT_EQ((*parsed)->VocabSize(), 259 + 9);
  absl::StatusOr<std::string> none =
      TokenizerJsonBytes(kByteTokenizerName, *game, PromptStyle::kCompact);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, "");
  EXPECT_EQ(Open("", *game)->VocabSize(), 259);
}

TEST(GameTokenizer, AMissingTokenizerFileIsNamed) {
  auto game = Load("kuhn_poker");
  absl::StatusOr<std::unique_ptr<Tokenizer>> opened =
      OpenTokenizer("/nonexistent/tokenizer.json", *game, PromptStyle::kCompact);
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.status().message().find("/nonexistent/tokenizer.json"), std::string::npos);
  absl::StatusOr<std::string> bytes =
      TokenizerJsonBytes("/nonexistent/tokenizer.json", *game, PromptStyle::kCompact);
  EXPECT_TRUE(absl::IsNotFound(bytes.status())) << bytes.status();
}

}  // namespace
}  // namespace rally
