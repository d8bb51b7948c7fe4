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
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

// Greedy or sampled continuation of `prompt`, through the KV cache; stops after `max_new` tokens
// or at an end-of-text token (<|endoftext|> or <|im_end|>), which is not returned.
absl::StatusOr<std::vector<int32_t>> Generate(const Transformer& model, const Tokenizer& tokenizer,
                                              const std::vector<int32_t>& prompt, int max_new,
                                              const SamplingOptions& options, uint64_t seed) {
  std::vector<int32_t> stops;
  for (const char* end : {"<|endoftext|>", "<|im_end|>"}) {
    if (auto id = tokenizer.SpecialTokenId(end)) stops.push_back(*id);
  }
  const int capacity = static_cast<int>(prompt.size()) + max_new;
  absl::StatusOr<KvCache> cache = KvCache::Create(model.config(), 1, capacity);
  if (!cache.ok()) return cache.status();
  const int slot = *cache->Allocate();
  std::mt19937_64 rng(seed);
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
  absl::StatusOr<std::vector<int32_t>> generated =
      Generate(loaded->model, **tokenizer, prompt, max_new, options, seed);
  if (!generated.ok()) return Fail("lm-generate", generated.status());
  std::cout << (*tokenizer)->Decode(*generated) << std::flush;
  return 0;
}

}  // namespace rally
