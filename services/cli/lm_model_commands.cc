// `rally lm-score` and `rally lm-generate`: a Hugging Face checkpoint directory, or a rally run or
// transformer checkpoint, run on the CPU.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/games/registry.h"
#include "common/games/text_game.h"
#include "common/lm/hf_checkpoint.h"
#include "common/lm/lm_checkpoint.h"
#include "common/lm/sampling.h"
#include "common/lm/tokenizer.h"
#include "common/lm/transformer.h"
#include "nlohmann/json.hpp"
#include "services/cli/lm_commands.h"
#include "services/cli/policy_commands.h"

ABSL_FLAG(std::string, model, "",
          "lm-score, lm-generate: a Hugging Face checkpoint directory, or a rally run's work "
          "directory, checkpoints directory or step-N directory of a transformer policy");
ABSL_FLAG(std::string, token_ids, "", "lm-score: comma-separated token ids, at least two");
ABSL_FLAG(std::string, prompt, "", "lm-generate: the text to continue (no chat template added)");
ABSL_FLAG(int, max_new_tokens, 32, "lm-generate: tokens to generate at most");
ABSL_FLAG(double, temperature, 0.0, "lm-generate: sampling temperature (0: greedy)");
ABSL_FLAG(double, top_p, 1.0, "lm-generate: nucleus mass to sample from (1: all)");
ABSL_FLAG(int, top_k, 0, "lm-generate: sample from the k most probable tokens (0: all)");
ABSL_DECLARE_FLAG(uint64_t, seed);

namespace rally {
namespace {

struct LoadedModel {
  HfModel files;
  Transformer model;
};

// A rally transformer checkpoint (a run, its checkpoints directory or one step-N directory) as
// the files of a Hugging Face directory: its shape, weights and tokenizer.json.
absl::StatusOr<HfModel> LoadRallyCheckpoint(const std::string& dir) {
  absl::StatusOr<std::string> resolved = ResolveCheckpoint(dir);
  if (!resolved.ok()) return resolved.status();
  absl::StatusOr<LmCheckpoint> checkpoint = ReadLmCheckpoint(*resolved);
  if (!checkpoint.ok()) return checkpoint.status();
  HfModel files;
  files.config = checkpoint->config;
  files.weights = std::move(checkpoint->weights);
  files.tokenizer_path = checkpoint->tokenizer_path;
  return files;
}

absl::StatusOr<LoadedModel> LoadModel(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("--model DIR is required");
  const bool hugging_face = std::filesystem::exists(std::filesystem::path(dir) / "config.json");
  absl::StatusOr<HfModel> files = hugging_face ? LoadHfDirectory(dir) : LoadRallyCheckpoint(dir);
  if (!files.ok()) return files.status();
  absl::StatusOr<Transformer> model = Transformer::Create(files->config, /*seed=*/0);
  if (!model.ok()) return model.status();
  if (absl::Status s = model->LoadWeights(files->weights); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": ", s.message()));
  }
  files->weights = TensorSet();  // the model holds its own copy
  return LoadedModel{*std::move(files), *std::move(model)};
}

absl::StatusOr<std::vector<int32_t>> ParseTokenIds(const std::string& text) {
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int32_t id = 0;
    if (!absl::SimpleAtoi(part, &id)) {
      return absl::InvalidArgumentError(absl::StrCat("--token-ids: '", part, "' is not an id"));
    }
    ids.push_back(id);
  }
  return ids;
}

int Fail(const char* command, const absl::Status& status) {
  std::fprintf(stderr, "%s: %s\n", command, std::string(status.message()).c_str());
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

// log p(ids[i] | ids[0..i-1]) for i >= 1, from one full forward pass.
absl::StatusOr<std::vector<float>> ScoreTokens(const Transformer& model,
                                               const std::vector<int32_t>& ids) {
  const int64_t n = static_cast<int64_t>(ids.size());
  torch::Tensor tokens = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).view({1, n});
  torch::NoGradGuard no_grad;
  absl::StatusOr<torch::Tensor> logits = model.Forward(tokens, torch::tensor({n}));
  if (!logits.ok()) return logits.status();
  torch::Tensor log_probs = torch::log_softmax((*logits)[0].narrow(0, 0, n - 1), -1);
  torch::Tensor next = tokens[0].narrow(0, 1, n - 1).unsqueeze(1);
  torch::Tensor picked = log_probs.gather(1, next).squeeze(1).contiguous();
  return std::vector<float>(picked.data_ptr<float>(), picked.data_ptr<float>() + n - 1);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> TokenizerFor(const HfModel& files) {
  if (files.tokenizer_path.empty()) return MakeByteTokenizer();
  return LoadTokenizer(files.tokenizer_path);
}

// Greedy or sampled continuation of `prompt`, through the KV cache; stops after `max_new` tokens,
// at an end-of-text token (<|endoftext|> or <|im_end|>), which is not returned, or once the
// decoded continuation holds `stop` (when not empty), which is.
absl::StatusOr<std::vector<int32_t>> Generate(const Transformer& model, const Tokenizer& tokenizer,
                                              const std::vector<int32_t>& prompt, int max_new,
                                              const SamplingOptions& options, std::mt19937_64& rng,
                                              const std::string& stop = "") {
  std::vector<int32_t> stops;
  for (const char* end : {"<|endoftext|>", "<|im_end|>"}) {
    if (auto id = tokenizer.SpecialTokenId(end)) stops.push_back(*id);
  }
  const int capacity = static_cast<int>(prompt.size()) + max_new;
  absl::StatusOr<KvCache> cache = KvCache::Create(model.config(), 1, capacity);
  if (!cache.ok()) return cache.status();
  const int slot = *cache->Allocate();
  std::vector<int32_t> generated;
  std::vector<int32_t> chunk = prompt;
  while (static_cast<int>(generated.size()) < max_new) {
    const std::vector<SequenceChunk> chunks = {{slot, chunk}};
    absl::StatusOr<torch::Tensor> logits = model.Extend(*cache, chunks);
    if (!logits.ok()) return logits.status();
    torch::Tensor row = logits->select(0, 0).contiguous();
    const SampledToken next =
        SampleToken(std::span<const float>(row.data_ptr<float>(), row.numel()), options, rng);
    if (std::find(stops.begin(), stops.end(), next.token) != stops.end()) break;
    generated.push_back(next.token);
    if (!stop.empty() && tokenizer.Decode(generated).find(stop) != std::string::npos) break;
    chunk = {next.token};
  }
  return generated;
}

}  // namespace

int LmScoreCommand() {
  absl::StatusOr<std::vector<int32_t>> ids = ParseTokenIds(absl::GetFlag(FLAGS_token_ids));
  if (!ids.ok()) return Fail("lm-score", ids.status());
  if (ids->size() < 2) {
    return Fail("lm-score", absl::InvalidArgumentError("--token-ids needs at least two ids"));
  }
  absl::StatusOr<LoadedModel> loaded = LoadModel(absl::GetFlag(FLAGS_model));
  if (!loaded.ok()) return Fail("lm-score", loaded.status());
  absl::StatusOr<std::vector<float>> log_probs = ScoreTokens(loaded->model, *ids);
  if (!log_probs.ok()) return Fail("lm-score", log_probs.status());
  nlohmann::json out = {{"log_probs", *log_probs}};
  std::cout << out.dump() << "\n";
  return 0;
}

int LmGenerateCommand() {
  const SamplingOptions options{.temperature = absl::GetFlag(FLAGS_temperature),
                                .top_k = absl::GetFlag(FLAGS_top_k),
                                .top_p = absl::GetFlag(FLAGS_top_p)};
  if (absl::Status s = ValidateSamplingOptions(options); !s.ok()) return Fail("lm-generate", s);
  const int max_new = absl::GetFlag(FLAGS_max_new_tokens);
  if (max_new < 0) {
    return Fail("lm-generate", absl::InvalidArgumentError("--max-new-tokens must be >= 0"));
  }
  absl::StatusOr<LoadedModel> loaded = LoadModel(absl::GetFlag(FLAGS_model));
  if (!loaded.ok()) return Fail("lm-generate", loaded.status());
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer = TokenizerFor(loaded->files);
  if (!tokenizer.ok()) return Fail("lm-generate", tokenizer.status());
  const std::vector<int32_t> prompt = (*tokenizer)->Encode(absl::GetFlag(FLAGS_prompt));
  if (prompt.empty()) {
    return Fail("lm-generate", absl::InvalidArgumentError("--prompt must not be empty"));
  }
  uint64_t seed = absl::GetFlag(FLAGS_seed);
  if (seed == 0) seed = static_cast<uint64_t>(std::time(nullptr));
  std::mt19937_64 rng(seed);
  absl::StatusOr<std::vector<int32_t>> generated =
      Generate(loaded->model, **tokenizer, prompt, max_new, options, rng);
  if (!generated.ok()) return Fail("lm-generate", generated.status());
  std::cout << (*tokenizer)->Decode(*generated) << std::flush;
  return 0;
}

absl::StatusOr<double> PlayLanguageModel(const std::string& checkpoint_dir, int games,
                                         int first_seat, bool greedy, uint64_t seed,
                                         std::istream& in, std::ostream& out) {
  absl::StatusOr<LmCheckpoint> checkpoint = ReadLmCheckpoint(checkpoint_dir);
  if (!checkpoint.ok()) return checkpoint.status();
  absl::StatusOr<Transformer> model = Transformer::Create(checkpoint->config, /*seed=*/0);
  if (!model.ok()) return model.status();
  if (absl::Status s = model->LoadWeights(checkpoint->weights); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      checkpoint->tokenizer_path.empty() ? MakeByteTokenizer()
                                         : LoadTokenizer(checkpoint->tokenizer_path);
  if (!tokenizer.ok()) return tokenizer.status();
  absl::StatusOr<std::shared_ptr<const Game>> game =
      LoadGame(checkpoint->manifest.value("game", std::string()));
  if (!game.ok()) return game.status();
  absl::StatusOr<PromptStyle> style =
      ParsePromptStyle(checkpoint->manifest.value("prompt", std::string("compact")));
  if (!style.ok()) return style.status();
  const std::string end(AnswerEnd(*style));
  const SamplingOptions sampling{.temperature = greedy ? 0.0 : 1.0};
  constexpr int kMaxAnswerTokens = 32;
  std::mt19937_64 rng(seed);
  double total = 0;
  for (int g = 0; g < games; ++g) {
    const int human = (first_seat + g) % (*game)->NumPlayers();
    out << "\n=== game " << g + 1 << " of " << games << ": you are player " << human << " ===\n";
    absl::StatusOr<TextMatch> match = TextMatch::Start(*game, {.style = *style}, rng);
    if (!match.ok()) return match.status();
    while (!match->IsOver()) {
      const int player = match->CurrentPlayer();
      if (player == human) {
        out << match->Prompt() << "> " << std::flush;
        std::string line;
        while (true) {
          if (!std::getline(in, line)) return absl::CancelledError("input ended");
          while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
          const std::string answer = line.find('[') == std::string::npos ? "[" + line + "]" : line;
          if (ParseAnswer(match->rendering(), PromptStyle::kCompact, match->state(), player, answer)
                  .ok()) {
            match->Answer(*style == PromptStyle::kSpiral ? "\\boxed{" + answer + "}" : answer, rng)
                .IgnoreError();
            break;
          }
          out << "not a legal move here; type a move as the text shows it, e.g. [Bet]\n> ";
        }
        continue;
      }
      const std::string context =
          *style == PromptStyle::kCompact ? match->Transcript(player) : match->Prompt();
      absl::StatusOr<std::vector<int32_t>> generated = Generate(
          *model, **tokenizer, (*tokenizer)->Encode(context), kMaxAnswerTokens, sampling, rng, end);
      if (!generated.ok()) return generated.status();
      std::string text = (*tokenizer)->Decode(*generated);
      const size_t stop = text.find(end);
      const std::string answer = stop == std::string::npos ? "" : text.substr(0, stop);
      out << "model (player " << player << ") answers: " << absl::CEscape(text) << "\n";
      if (!match->Answer(answer, rng).ok()) out << "an invalid answer: the model forfeits\n";
    }
    const double r = match->Returns()[human];
    total += r;
    out << "result for you: " << r << "\n";
  }
  out << "\ntotal over " << games << " game(s): " << total << "\n";
  return total;
}

}  // namespace rally
