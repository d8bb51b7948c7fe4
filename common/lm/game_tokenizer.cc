#include "common/lm/game_tokenizer.h"

#include <algorithm>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/util/durable_file.h"
#include "nlohmann/json.hpp"

namespace rally {
namespace {

// The special tokens of the byte tokenizer, at ids 256, 257, 258 in every game tokenizer too.
constexpr const char* kSpecialTokens[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

// GameAnswerTexts stops early once this many playouts in a row found no new answer.
constexpr int kPlayoutsWithoutNewAnswers = 64;

// A chance outcome of `state` drawn by its probability, with `rng` (engine output only, so that
// every standard library draws the same).
int SampleChance(const State& state, std::mt19937_64& rng) {
  const std::vector<std::pair<int, double>> outcomes = state.ChanceOutcomes();
  const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
  double cumulative = 0;
  for (const auto& [action, p] : outcomes) {
    cumulative += p;
    if (u < cumulative) return action;
  }
  return outcomes.back().first;
}

nlohmann::json AddedTokenJson(int id, const std::string& content, bool special) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", special}};
}

}  // namespace

absl::StatusOr<std::vector<std::string>> GameAnswerTexts(const Game& game, PromptStyle style,
                                                         int playouts) {
  absl::StatusOr<const TextRendering*> rendering = FindTextRendering(game.Name());
  if (!rendering.ok()) return rendering.status();
  const std::string end(AnswerEnd(style));
  std::set<std::string> answers;
  std::mt19937_64 rng(0x9a3e);
  int since_new = 0;  // playouts in a row that found no new answer
  for (int g = 0; g < playouts && since_new < kPlayoutsWithoutNewAnswers; ++g) {
    const size_t before = answers.size();
    std::unique_ptr<State> state = game.NewInitialState();
    while (!state->IsTerminal()) {
      if (state->IsChanceNode()) {
        state->ApplyAction(SampleChance(*state, rng));
        continue;
      }
      const int player = state->CurrentPlayer();
      const std::vector<int> legal = state->LegalActions();
      for (int action : legal) {
        answers.insert(CanonicalAnswer(**rendering, style, *state, player, action) + end);
      }
      state->ApplyAction(legal[rng() % legal.size()]);
    }
    since_new = answers.size() == before ? since_new + 1 : 0;
  }
  return std::vector<std::string>(answers.begin(), answers.end());
}

absl::StatusOr<std::string> GameTokenizerJson(const Game& game, PromptStyle style) {
  absl::StatusOr<std::vector<std::string>> answers = GameAnswerTexts(game, style);
  if (!answers.ok()) return answers.status();
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteLevelToken(std::string(1, static_cast<char>(b)))] = b;
  nlohmann::json added = nlohmann::json::array();
  int id = 256;
  for (const char* special : kSpecialTokens) added.push_back(AddedTokenJson(id++, special, true));
  for (const std::string& answer : *answers) added.push_back(AddedTokenJson(id++, answer, false));
  nlohmann::ordered_json doc;
  doc["version"] = "1.0";
  doc["truncation"] = nullptr;
  doc["padding"] = nullptr;
  doc["added_tokens"] = added;
  doc["normalizer"] = nullptr;
  doc["pre_tokenizer"] = {{"type", "ByteLevel"},
                          {"add_prefix_space", false},
                          {"trim_offsets", false},
                          {"use_regex", false}};
  doc["post_processor"] = nullptr;
  doc["decoder"] = {{"type", "ByteLevel"},
                    {"add_prefix_space", false},
                    {"trim_offsets", false},
                    {"use_regex", false}};
  doc["model"] = {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", nullptr},
                  {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr},
                  {"fuse_unk", false},
                  {"byte_fallback", false},
                  {"vocab", vocab},
                  {"merges", nlohmann::json::array()}};
  return doc.dump(1) + "\n";
}

absl::StatusOr<std::unique_ptr<Tokenizer>> OpenTokenizer(const std::string& reference,
                                                         const Game& game, PromptStyle style) {
  if (reference.empty() || reference == kByteTokenizerName) return MakeByteTokenizer();
  if (reference == kGameTokenizerName) {
    absl::StatusOr<std::string> json = GameTokenizerJson(game, style);
    if (!json.ok()) return json.status();
    return ParseTokenizerJson(*json, absl::StrCat("the game tokenizer of ", game.Name()));
  }
  return LoadTokenizer(reference);
}

absl::StatusOr<std::string> TokenizerJsonBytes(const std::string& reference, const Game& game,
                                               PromptStyle style) {
  if (reference.empty() || reference == kByteTokenizerName) return std::string();
  if (reference == kGameTokenizerName) return GameTokenizerJson(game, style);
  return ReadFileBytes(reference);
}

}  // namespace rally
