#include "common/lm/lm_policy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/eval/policy_json.h"
#include "common/games/policy_notation.h"

namespace rally {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

}  // namespace

absl::StatusOr<LmMoveScorer> LmMoveScorer::Create(const Transformer* model,
                                                  const Tokenizer* tokenizer, const Game* game,
                                                  const TextRendering* rendering, PromptStyle style,
                                                  SamplingOptions sampling) {
  if (model == nullptr || tokenizer == nullptr || game == nullptr || rendering == nullptr) {
    return absl::InvalidArgumentError("LmMoveScorer: model, tokenizer, game and rendering needed");
  }
  if (absl::Status s = ValidateSamplingOptions(sampling); !s.ok()) return s;
  if (tokenizer->VocabSize() > model->config().vocab) {
    return absl::InvalidArgumentError(
        absl::StrCat("LmMoveScorer: tokenizer vocabulary ", tokenizer->VocabSize(),
                     " is larger than the model's vocab ", model->config().vocab));
  }
  LmMoveScorer scorer;
  scorer.model_ = model;
  scorer.tokenizer_ = tokenizer;
  scorer.game_ = game;
  scorer.rendering_ = rendering;
  scorer.style_ = style;
  scorer.sampling_ = sampling;
  return scorer;
}

absl::StatusOr<std::string> LmMoveScorer::Prompt(const State& state) const {
  int player = state.CurrentPlayer();
  if (player < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("LmMoveScorer: not a decision node: ", state.ToString()));
  }
  if (style_ == PromptStyle::kSpiral) return SpiralPrompt(*rendering_, *game_, state, player);
  return CompactPrompt(*rendering_, *game_, state, player);
}

absl::StatusOr<std::vector<int32_t>> LmMoveScorer::PromptTokens(const State& state) const {
  absl::StatusOr<std::string> prompt = Prompt(state);
  if (!prompt.ok()) return prompt.status();
  return tokenizer_->Encode(*prompt);
}

std::vector<std::vector<int32_t>> LmMoveScorer::AnswerTokens(const State& state) const {
  int player = state.CurrentPlayer();
  std::vector<std::vector<int32_t>> answers;
  for (int action : state.LegalActions()) {
    std::string text = CanonicalAnswer(*rendering_, style_, state, player, action);
    text += AnswerEnd(style_);
    answers.push_back(tokenizer_->Encode(text));
  }
  return answers;
}

double LmMoveScorer::TokenLogProb(const torch::Tensor& row, int32_t token) const {
  if (sampling_.temperature > 0 && sampling_.top_k == 0 && sampling_.top_p == 1.0) {
    torch::Tensor scaled = row.to(torch::kDouble) / sampling_.temperature;
    return torch::log_softmax(scaled, 0)[token].item<double>();
  }
  // The tokens the sampler keeps; the token's probability renormalised over them, in double.
  torch::Tensor contiguous = row.to(torch::kFloat).contiguous();
  std::span<const float> logits(contiguous.data_ptr<float>(), contiguous.numel());
  std::vector<int64_t> ids;
  if (sampling_.temperature > 0 && sampling_.top_p == 1.0) {
    // Top-k alone: the k highest logits, ties to the lower id, chosen here rather than read from
    // SamplingDistribution, whose float probabilities can underflow to 0 for kept tokens.
    std::vector<int64_t> order(logits.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
    order.resize(std::min<size_t>(order.size(), sampling_.top_k));
    ids = std::move(order);
  } else {
    for (const TokenProbability& t : SamplingDistribution(logits, sampling_)) {
      ids.push_back(t.token);
    }
  }
  if (std::find(ids.begin(), ids.end(), token) == ids.end()) return kNegInf;
  if (sampling_.temperature == 0 || ids.size() == 1) return 0.0;  // drawn with probability 1
  torch::Tensor scaled = row.to(torch::kDouble) / sampling_.temperature;
  torch::Tensor norm = torch::logsumexp(scaled.index({torch::tensor(ids, torch::kLong)}), 0);
  return (scaled[token] - norm).item<double>();
}

double LmMoveScorer::AnswerLogProb(const torch::Tensor& first_row, const torch::Tensor& rest_rows,
                                   const std::vector<int32_t>& answer) const {
  double sum = TokenLogProb(first_row, answer[0]);
  for (size_t i = 1; i < answer.size() && sum != kNegInf; ++i) {
    sum += TokenLogProb(rest_rows[i - 1], answer[i]);
  }
  return sum;
}

absl::StatusOr<MoveScores> LmMoveScorer::Score(const State& state) const {
  absl::StatusOr<std::vector<int32_t>> prompt = PromptTokens(state);
  if (!prompt.ok()) return prompt.status();
  std::vector<std::vector<int32_t>> answers = AnswerTokens(state);
  MoveScores scores;
  scores.actions = state.LegalActions();
  scores.prompt_tokens = static_cast<int>(prompt->size());
  size_t longest = 0;
  for (const auto& a : answers) {
    if (a.empty()) return absl::InternalError("LmMoveScorer: an answer encoded to no tokens");
    longest = std::max(longest, a.size());
  }
  int capacity = static_cast<int>(prompt->size() + longest);
  if (prompt->empty() || capacity > model_->config().max_seq_len) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LmMoveScorer: prompt of ", prompt->size(), " tokens plus an answer of ", longest,
        " does not fit max_seq_len ", model_->config().max_seq_len, " at ", state.ToString()));
  }
  absl::StatusOr<KvCache> cache = KvCache::Create(model_->config(), 1, capacity, model_->device());
  if (!cache.ok()) return cache.status();
  absl::StatusOr<int> slot = cache->Allocate();
  if (!slot.ok()) return slot.status();
  SequenceChunk prefill{*slot, *prompt};
  absl::StatusOr<torch::Tensor> first = model_->Extend(*cache, {&prefill, 1});
  if (!first.ok()) return first.status();
  torch::Tensor first_row = first->index({0}).to(torch::kCPU);
  double total = 0;
  for (const std::vector<int32_t>& answer : answers) {
    torch::Tensor rest;
    if (answer.size() > 1) {
      SequenceChunk chunk{*slot, std::span<const int32_t>(answer.data(), answer.size() - 1)};
      absl::StatusOr<torch::Tensor> logits =
          model_->Extend(*cache, {&chunk, 1}, Transformer::Logits::kAll);
      if (!logits.ok()) return logits.status();
      rest = logits->index({0}).to(torch::kCPU);
      if (absl::Status s = cache->Truncate(*slot, scores.prompt_tokens); !s.ok()) return s;
    }
    double log_prob = AnswerLogProb(first_row, rest, answer);
    scores.log_probs.push_back(log_prob);
    scores.probs.push_back(std::exp(log_prob));
    total += scores.probs.back();
  }
  scores.invalid = std::max(0.0, 1.0 - total);
  return scores;
}

absl::StatusOr<LmPolicyTable> ScoreTree(const GameTree& tree, const LmMoveScorer& scorer) {
  LmPolicyTable table;
  for (const GameTree::InformationState& info : tree.information_states()) {
    absl::StatusOr<MoveScores> scores = scorer.Score(*info.state);
    if (!scores.ok()) {
      return absl::Status(scores.status().code(), absl::StrCat("information state '", info.key,
                                                               "': ", scores.status().message()));
    }
    if (scores->actions != info.actions) {
      return absl::InternalError(
          absl::StrCat("information state '", info.key, "': legal actions differ from the tree's"));
    }
    table.probs.push_back(std::move(scores->probs));
    table.forfeit.push_back(scores->invalid);
  }
  return table;
}

absl::StatusOr<TabularPolicy> ScoreInformationStates(const Game& game, const LmMoveScorer& scorer,
                                                     const TabularPolicy::KeyFunction& key) {
  absl::StatusOr<std::vector<InformationStateEntry>> states = CollectInformationStates(game, key);
  if (!states.ok()) return states.status();
  TabularPolicy policy(key);
  for (const InformationStateEntry& entry : *states) {
    absl::StatusOr<MoveScores> scores = scorer.Score(*entry.state);
    if (!scores.ok()) {
      return absl::Status(scores.status().code(), absl::StrCat("information state '", entry.key,
                                                               "': ", scores.status().message()));
    }
    ActionsAndProbs probs;
    for (size_t a = 0; a < scores->actions.size(); ++a) {
      probs.emplace_back(scores->actions[a], scores->probs[a]);
    }
    policy.Set(entry.key, std::move(probs), scores->invalid);
  }
  return policy;
}

absl::StatusOr<SamplingOptions> CheckpointSampling(const LmCheckpoint& checkpoint) {
  const nlohmann::json& manifest = checkpoint.manifest;
  const std::string where = checkpoint.dir + "/manifest.json: ";
  SamplingOptions sampling{.temperature = 1.0, .top_k = 0, .top_p = 1.0};
  for (auto [key, field] :
       {std::pair{"temperature", &sampling.temperature}, std::pair{"top_p", &sampling.top_p}}) {
    if (!manifest.contains(key)) continue;
    if (!manifest[key].is_number()) {
      return absl::DataLossError(absl::StrCat(where, key, ": not a number"));
    }
    *field = manifest[key].get<double>();
  }
  if (manifest.contains("top_k")) {
    if (!manifest["top_k"].is_number_integer() || manifest["top_k"].get<int64_t>() < 0 ||
        manifest["top_k"].get<int64_t>() > (1 << 30)) {
      return absl::DataLossError(absl::StrCat(where, "top_k: not an integer from 0 to 2^30"));
    }
    sampling.top_k = manifest["top_k"].get<int>();
  }
  if (absl::Status s = ValidateSamplingOptions(sampling); !s.ok()) {
    return absl::DataLossError(absl::StrCat(where, s.message()));
  }
  return sampling;
}

namespace {

// ExportLmPolicy once the checkpoint's model and tokenizer are loaded; may throw c10::Error.
absl::StatusOr<nlohmann::json> ExportLoadedLmPolicy(const LmMoveScorer& scorer, const Game& game,
                                                    const PolicyNotation& notation) {
  absl::StatusOr<TabularPolicy> policy = ScoreInformationStates(game, scorer, notation.key);
  if (!policy.ok()) return policy.status();
  absl::StatusOr<GameTree> tree = GameTree::Build(game);
  if (!tree.ok()) return tree.status();
  const Policy* one[] = {&*policy};
  absl::StatusOr<TreePolicyTable> table = MakeTreePolicyTable(*tree, one);
  if (!table.ok()) return table.status();
  absl::StatusOr<ForfeitRate> rate = ComputeForfeitRate(*tree, *table);
  if (!rate.ok()) return rate.status();
  return PolicyToJson(game.Name(), *policy, &*rate);
}

}  // namespace

absl::StatusOr<nlohmann::json> ExportLmPolicy(const LmCheckpoint& checkpoint, const Game& game) {
  absl::StatusOr<PolicyNotation> notation = GetPolicyNotation(game.Name());
  if (!notation.ok()) return notation.status();
  absl::StatusOr<const TextRendering*> rendering = FindTextRendering(game.Name());
  if (!rendering.ok()) return rendering.status();
  absl::StatusOr<PromptStyle> style =
      ParsePromptStyle(checkpoint.manifest.value("prompt", std::string("compact")));
  if (!style.ok()) return style.status();
  absl::StatusOr<SamplingOptions> sampling = CheckpointSampling(checkpoint);
  if (!sampling.ok()) return sampling.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      checkpoint.tokenizer_path.empty() ? MakeByteTokenizer()
                                        : LoadTokenizer(checkpoint.tokenizer_path);
  if (!tokenizer.ok()) return tokenizer.status();
  try {
    absl::StatusOr<Transformer> model = Transformer::Create(checkpoint.config, /*seed=*/0);
    if (!model.ok()) return model.status();
    if (absl::Status s = model->LoadWeights(checkpoint.weights); !s.ok()) {
      return absl::DataLossError(
          absl::StrCat(checkpoint.dir, "/weights.safetensors: ", s.message()));
    }
    absl::StatusOr<LmMoveScorer> scorer =
        LmMoveScorer::Create(&*model, tokenizer->get(), &game, *rendering, *style, *sampling);
    if (!scorer.ok()) return scorer.status();
    return ExportLoadedLmPolicy(*scorer, game, *notation);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat(checkpoint.dir, ": the model failed: ", e.what_without_backtrace()));
  }
}

absl::Status ValidateLmPolicyTable(const GameTree& tree, const LmPolicyTable& table) {
  if (tree.num_players() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the forfeit rule needs a two-player game, not one of ", tree.num_players(), " players"));
  }
  return ValidateTreePolicyTable(tree, table);
}

absl::StatusOr<double> ForfeitExploitability(const GameTree& tree, const LmPolicyTable& table) {
  if (absl::Status s = ValidateLmPolicyTable(tree, table); !s.ok()) return s;
  return Exploitability(tree, table, ForfeitReturns{});
}

absl::StatusOr<InvalidAnswerRate> ComputeInvalidAnswerRate(const GameTree& tree,
                                                           const LmPolicyTable& table) {
  if (absl::Status s = ValidateLmPolicyTable(tree, table); !s.ok()) return s;
  return ComputeForfeitRate(tree, table);
}

}  // namespace rally
