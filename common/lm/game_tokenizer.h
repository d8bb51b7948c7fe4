// The game tokenizer: a tokenizer for language models trained from scratch on one text game, and
// the one place that turns a job's `policy.tokenizer` into a Tokenizer (docs/lm.md).
//
// A model trained from scratch starts near uniform over its vocabulary. Under the byte tokenizer
// a valid compact answer is several tokens ("[Bet]" then "\n": six bytes), which such a model
// writes with probability about 259^-6: it forfeits every game and never sees a reward that
// tells moves apart. The game tokenizer is the byte tokenizer (bytes 0..255 as ids 0..255, then
// "<|endoftext|>", "<|im_start|>", "<|im_end|>" as 256..258) plus one added token per canonical
// answer of the game, answer end included ("[Bet]\n", "[4]\n"), from id 259 in byte order. A
// canonical answer is then one token, drawn at first with probability about (legal moves) /
// (vocabulary); anything else the model writes is still text, parsed by the same rules, and
// still forfeits when it is not a legal move. The vocabulary says nothing about which move is
// good: every move of the game has its token.
//
// The answers are collected from random playouts with a fixed seed (GameAnswerTexts), so every
// process of a job builds the same tokenizer from the game's name alone; it is written as a
// Hugging Face tokenizer.json (byte-level BPE, no merges, the answers as added tokens), which is
// what checkpoints store and `rally export-hf` copies.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/games/game.h"
#include "common/games/text_game.h"
#include "common/lm/tokenizer.h"

namespace rally {

// The names `policy.tokenizer` takes besides a tokenizer.json path.
inline constexpr char kByteTokenizerName[] = "byte";
inline constexpr char kGameTokenizerName[] = "game";

// Every canonical answer of `game` in `style`, answer end included, sorted by bytes, without
// repeats: CanonicalAnswer + AnswerEnd of each legal move at each decision node of uniformly
// random games from a fixed seed (chance nodes sampled by their probabilities), played until 64
// games in a row add no new answer or `playouts` have been played. NOT_FOUND when the game has no
// text rendering.
absl::StatusOr<std::vector<std::string>> GameAnswerTexts(const Game& game, PromptStyle style,
                                                         int playouts = 4096);

// The game tokenizer of `game` in `style` as a tokenizer.json document.
absl::StatusOr<std::string> GameTokenizerJson(const Game& game, PromptStyle style);

// The tokenizer `reference` names: "byte" (or ""), "game" (the game tokenizer of `game` in
// `style`), or a tokenizer.json path. Errors name the file and key, or the game.
absl::StatusOr<std::unique_ptr<Tokenizer>> OpenTokenizer(const std::string& reference,
                                                         const Game& game, PromptStyle style);

// The tokenizer.json bytes a checkpoint stores for `reference`: "" for the byte tokenizer, the
// generated document for "game", the file's bytes otherwise (NOT_FOUND naming an unreadable file).
absl::StatusOr<std::string> TokenizerJsonBytes(const std::string& reference, const Game& game,
                                               PromptStyle style);

}  // namespace rally
