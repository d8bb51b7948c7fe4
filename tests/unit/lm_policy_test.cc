#include "common/lm/lm_policy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "common/eval/exploitability.h"
#include "common/eval/game_tree.h"
#include "common/eval/policy_json.h"
#include "common/games/kuhn_poker.h"
#include "common/games/registry.h"

namespace rally {
namespace {

TransformerConfig TinyConfig(int d_model = 32) {
  TransformerConfig c;
  c.layers = 2;
  c.d_model = d_model;
  c.heads = 4;
  c.kv_heads = 2;
  c.d_ff = 2 * d_model;
  c.vocab = kByteTokenizerVocab;
  c.max_seq_len = 4096;
  return c;
}

// A random model whose logits are of order one (Hugging Face's N(0, 0.02²) initialisation scaled
// up), so answers' probabilities differ visibly between moves.
Transformer RandomModel(const TransformerConfig& config, uint64_t seed) {
  Transformer model = *Transformer::Create(config, seed);
  torch::NoGradGuard no_grad;
  for (torch::Tensor& t : model.parameters()) t.mul_(8.0);
  return model;
}

struct Fixture {
  std::shared_ptr<const Game> game;
  const TextRendering* rendering;
  std::unique_ptr<Tokenizer> tokenizer = MakeByteTokenizer();
};

Fixture Load(const std::string& name) {
  Fixture f;
  f.game = *LoadGame(name);
  f.rendering = *FindTextRendering(name);
  return f;
}

std::vector<int32_t> Bytes(const std::string& text) {
  std::vector<int32_t> ids;
  for (unsigned char c : text) ids.push_back(c);
  return ids;
}

// The slow reference: one full forward per prefix of prompt + answer, each answer token scored by
// a log-softmax (divided by `temperature`) of the logits after the tokens before it.
double SlowAnswerLogProb(const Transformer& model, const std::vector<int32_t>& prompt,
                         const std::vector<int32_t>& answer, double temperature = 1.0) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> context(prompt.begin(), prompt.end());
  double sum = 0;
  for (int32_t token : answer) {
    int64_t n = static_cast<int64_t>(context.size());
    torch::Tensor tokens = torch::tensor(context, torch::kLong).view({1, n});
    torch::Tensor lengths = torch::tensor(std::vector<int64_t>{n}, torch::kLong);
    torch::Tensor logits = *model.Forward(tokens, lengths);
    torch::Tensor row = logits.index({0, n - 1}).to(torch::kDouble) / temperature;
    sum += torch::log_softmax(row, 0)[token].item<double>();
    context.push_back(token);
  }
  return sum;
}

TEST(LmPolicy, KuhnAnswersAreCanonicalTextThenNewline) {
  Fixture f = Load("kuhn_poker");
  Transformer model = RandomModel(TinyConfig(), 1);
  LmMoveScorer scorer = *LmMoveScorer::Create(&model, f.tokenizer.get(), f.game.get(), f.rendering,
                                              PromptStyle::kCompact);
  GameTree tree = *GameTree::Build(*f.game);
  const State& first = *tree.information_states()[0].state;
  std::vector<std::vector<int32_t>> answers = scorer.AnswerTokens(first);
  std::vector<int> legal = first.LegalActions();
  ASSERT_EQ(answers.size(), legal.size());
  for (size_t a = 0; a < legal.size(); ++a) {
    std::string text = f.rendering->MoveText(first, first.CurrentPlayer(), legal[a]) + "\n";
    EXPECT_EQ(answers[a], Bytes(text));
  }
  // Every Kuhn answer is one of the four words in brackets and a newline.
  for (const auto& info : tree.information_states()) {
    for (const auto& answer : scorer.AnswerTokens(*info.state)) {
      std::string text(answer.begin(), answer.end());
      EXPECT_TRUE(text == "[Check]\n" || text == "[Bet]\n" || text == "[Call]\n" ||
                  text == "[Fold]\n")
          << text;
    }
  }
}

TEST(LmPolicy, KuhnProbabilitiesMatchSlowReferenceAndSumToOne) {
  Fixture f = Load("kuhn_poker");
  Transformer model = RandomModel(TinyConfig(), 2);
  LmMoveScorer scorer = *LmMoveScorer::Create(&model, f.tokenizer.get(), f.game.get(), f.rendering,
                                              PromptStyle::kCompact);
  GameTree tree = *GameTree::Build(*f.game);
  ASSERT_EQ(tree.information_states().size(), 12u);
  for (const auto& info : tree.information_states()) {
    absl::StatusOr<MoveScores> scores = scorer.Score(*info.state);
    ASSERT_TRUE(scores.ok()) << scores.status();
    EXPECT_EQ(scores->actions, info.actions);
    std::string prompt = *CompactPrompt(*f.rendering, *f.game, *info.state, info.player);
    std::vector<int32_t> prompt_ids = Bytes(prompt);
    EXPECT_EQ(scores->prompt_tokens, static_cast<int>(prompt_ids.size()));
    double total = scores->invalid;
    for (size_t a = 0; a < info.actions.size(); ++a) {
      std::string answer = f.rendering->MoveText(*info.state, info.player, info.actions[a]) + "\n";
      double reference = SlowAnswerLogProb(model, prompt_ids, Bytes(answer));
      EXPECT_NEAR(scores->log_probs[a], reference, 1e-4) << info.key << " " << answer;
      EXPECT_NEAR(scores->probs[a], std::exp(reference), 1e-4 * std::exp(reference));
      total += scores->probs[a];
    }
    EXPECT_NEAR(total, 1.0, 1e-12) << info.key;
    EXPECT_GT(scores->invalid, 0.0);
  }
  absl::StatusOr<LmPolicyTable> table = ScoreTree(tree, scorer);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_TRUE(ValidateLmPolicyTable(tree, *table).ok());
}

TEST(LmPolicy, TemperatureScoresTheSampledDistribution) {
  Fixture f = Load("kuhn_poker");
  Transformer model = RandomModel(TinyConfig(), 3);
  SamplingOptions hot;
  hot.temperature = 0.5;
  LmMoveScorer scorer = *LmMoveScorer::Create(&model, f.tokenizer.get(), f.game.get(), f.rendering,
                                              PromptStyle::kCompact, hot);
  GameTree tree = *GameTree::Build(*f.game);
  const auto& info = tree.information_states()[5];
  MoveScores scores = *scorer.Score(*info.state);
  std::vector<int32_t> prompt =
      Bytes(*CompactPrompt(*f.rendering, *f.game, *info.state, info.player));
  for (size_t a = 0; a < info.actions.size(); ++a) {
    std::string answer = f.rendering->MoveText(*info.state, info.player, info.actions[a]) + "\n";
    EXPECT_NEAR(scores.log_probs[a], SlowAnswerLogProb(model, prompt, Bytes(answer), 0.5), 1e-3);
  }
  // Top-k keeping the whole vocabulary is the same distribution, through the renormalising path.
  SamplingOptions all_k = hot;
  all_k.top_k = kByteTokenizerVocab;
  LmMoveScorer all = *LmMoveScorer::Create(&model, f.tokenizer.get(), f.game.get(), f.rendering,
                                           PromptStyle::kCompact, all_k);
  MoveScores same = *all.Score(*info.state);
  for (size_t a = 0; a < info.actions.size(); ++a) {
    EXPECT_NEAR(same.log_probs[a], scores.log_probs[a], 1e-3);
  }
  SamplingOptions bad;
  bad.top_p = 0;
  EXPECT_FALSE(LmMoveScorer::Create(&model, f.tokenizer.get(), f.game.get(), f.rendering,
                                    PromptStyle::kCompact, bad)
                   .ok());
}

// Whether greedy decoding after `prompt` produces `answer`: each token the argmax of a full
// forward.
bool SlowIsGreedyPath(const Transformer& model, const std::vector<int32_t>& prompt,
                      const std::vector<int32_t>& answer) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> context(prompt.begin(), prompt.end());
  for (int32_t token : answer) {
    int64_t n = static_cast<int64_t>(context.size());
    torch::Tensor tokens = torch::tensor(context, torch::kLong).view({1, n});
    torch::Tensor lengths = torch::tensor(std::vector<int64_t>{n}, torch::kLong);
    torch::Tensor row = model.Forward(tokens, lengths)->index({0, n - 1});
    if (row.argmax().item<int64_t>() != token) return false;
    context.push_back(token);
  }
  return true;
}

TEST(LmPolicy, GreedyScoresOneOnTheArgmaxPathOnly) {
  Fixture f = Load("kuhn_poker");
  Transformer model = RandomModel(TinyConfig(), 8);
  SamplingOptions greedy;
  greedy.temperature = 0;
  LmMoveScorer scorer = *LmMoveScorer::Create(&model, f.tokenizer.get(), f.game.get(), f.rendering,
                                              PromptStyle::kCompact, greedy);
  GameTree tree = *GameTree::Build(*f.game);
  for (const auto& info : tree.information_states()) {
    MoveScores scores = *scorer.Score(*info.state);
    std::vector<int32_t> prompt =
        Bytes(*CompactPrompt(*f.rendering, *f.game, *info.state, info.player));
    std::vector<std::vector<int32_t>> answers = scorer.AnswerTokens(*info.state);
    double total = scores.invalid;
    for (size_t a = 0; a < answers.size(); ++a) {
      EXPECT_EQ(scores.probs[a], SlowIsGreedyPath(model, prompt, answers[a]) ? 1.0 : 0.0);
      total += scores.probs[a];
    }
    EXPECT_EQ(total, 1.0);
  }
}

// The table of `policy`, which never forfeits.
absl::StatusOr<LmPolicyTable> TableOf(const GameTree& tree, const Policy& policy) {
  const Policy* one[] = {&policy};
  return MakeTreePolicyTable(tree, one);
}

TEST(LmPolicy, ZeroInvalidMassMatchesExistingEvaluator) {
  Fixture f = Load("kuhn_poker");
  GameTree tree = *GameTree::Build(*f.game);
  TabularPolicy policy;
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0.05, 1.0);
  for (const auto& info : tree.information_states()) {
    double p = u(rng);
    policy.Set(info.key, {{info.actions[0], p}, {info.actions[1], 1 - p}});
  }
  LmPolicyTable table = *TableOf(tree, policy);
  std::vector<double> expected = *ExpectedReturns(tree, policy);
  std::vector<double> got = *ExpectedReturns(tree, table);
  EXPECT_NEAR(got[0], expected[0], 1e-12);
  EXPECT_NEAR(got[1], expected[1], 1e-12);
  EXPECT_NEAR(*ForfeitExploitability(tree, table), *Exploitability(tree, policy), 1e-12);
  for (int p = 0; p < 2; ++p) {
    BestResponse a = *ComputeBestResponse(tree, p, table);
    BestResponse b = *ComputeBestResponse(tree, p, policy);
    EXPECT_NEAR(a.value, b.value, 1e-12);
    EXPECT_EQ(a.actions, b.actions);
  }
  InvalidAnswerRate rate = *ComputeInvalidAnswerRate(tree, table);
  EXPECT_EQ(rate.per_game, 0.0);
  EXPECT_EQ(rate.max, 0.0);
}

// Kuhn's information states of player 0's first decision are the bare cards.
bool IsFirstDecision(const GameTree::InformationState& info) {
  return info.player == 0 && info.depth == 0;
}

TEST(LmPolicy, CertainForfeitAtTheFirstDecisionIsHandComputed) {
  Fixture f = Load("kuhn_poker");
  GameTree tree = *GameTree::Build(*f.game);
  LmPolicyTable table = *TableOf(tree, UniformPolicy());
  for (size_t i = 0; i < table.probs.size(); ++i) {
    // Player 0 forfeits at its first decision, player 1 at all of its own.
    if (IsFirstDecision(tree.information_states()[i]) || tree.information_states()[i].player == 1) {
      for (double& p : table.probs[i]) p = 0;
      table.forfeit[i] = 1;
    }
  }
  std::vector<double> v = *ExpectedReturns(tree, table);
  EXPECT_DOUBLE_EQ(v[0], -1.5);
  EXPECT_DOUBLE_EQ(v[1], 0.5);
  // Player 0 responding plays on and player 1 forfeits: +0.5. Player 1 never gets to move: +0.5.
  EXPECT_DOUBLE_EQ(ComputeBestResponse(tree, 0, table)->value, 0.5);
  EXPECT_DOUBLE_EQ(ComputeBestResponse(tree, 1, table)->value, 0.5);
  EXPECT_DOUBLE_EQ(*NashConv(tree, table), 2.0);
  EXPECT_DOUBLE_EQ(*ForfeitExploitability(tree, table), 1.0);
  InvalidAnswerRate rate = *ComputeInvalidAnswerRate(tree, table);
  EXPECT_DOUBLE_EQ(rate.per_game, 1.0);
  EXPECT_DOUBLE_EQ(rate.per_decision, 1.0);
  EXPECT_DOUBLE_EQ(rate.max, 1.0);
}

TEST(LmPolicy, PartialForfeitMatchesForfeitAdjustedValues) {
  Fixture f = Load("kuhn_poker");
  GameTree tree = *GameTree::Build(*f.game);
  UniformPolicy uniform;
  LmPolicyTable table = *TableOf(tree, uniform);
  const double q = 0.5;
  for (size_t i = 0; i < table.probs.size(); ++i) {
    if (!IsFirstDecision(tree.information_states()[i])) continue;
    for (double& p : table.probs[i]) p *= 1 - q;
    table.forfeit[i] = q;
  }
  // Player 0 forfeits with probability q before anything else and otherwise plays uniformly.
  std::vector<double> u = *ExpectedReturns(tree, uniform);
  std::vector<double> v = *ExpectedReturns(tree, table);
  EXPECT_NEAR(v[0], q * -1.5 + (1 - q) * u[0], 1e-12);
  EXPECT_NEAR(v[1], q * 0.5 + (1 - q) * u[1], 1e-12);
  // Player 0's best response never forfeits and faces the uniform player 1; player 1's faces the
  // uniform continuation with probability 1 - q and wins 0.5 otherwise.
  double br0 = ComputeBestResponse(tree, 0, uniform)->value;
  double br1 = ComputeBestResponse(tree, 1, uniform)->value;
  EXPECT_NEAR(ComputeBestResponse(tree, 0, table)->value, br0, 1e-12);
  EXPECT_NEAR(ComputeBestResponse(tree, 1, table)->value, q * 0.5 + (1 - q) * br1, 1e-12);
  double nash_conv = (br0 - v[0]) + (q * 0.5 + (1 - q) * br1 - v[1]);
  EXPECT_NEAR(*NashConv(tree, table), nash_conv, 1e-12);
  EXPECT_NEAR(*ForfeitExploitability(tree, table), nash_conv / 2, 1e-12);
  // Reach of decision nodes: player 0's first (1), player 1's (1 - q), player 0's second, after
  // check then bet ((1 - q) / 2 * 1 / 2).
  InvalidAnswerRate rate = *ComputeInvalidAnswerRate(tree, table);
  EXPECT_NEAR(rate.per_game, q, 1e-12);
  EXPECT_NEAR(rate.per_decision, q / (1 + (1 - q) + (1 - q) / 4), 1e-12);
  EXPECT_DOUBLE_EQ(rate.max, q);
}

TEST(LmPolicy, ValidationRejectsBadTables) {
  Fixture f = Load("kuhn_poker");
  GameTree tree = *GameTree::Build(*f.game);
  LmPolicyTable table = *TableOf(tree, UniformPolicy());
  table.forfeit[3] = 0.25;  // sums to 1.25
  absl::Status s = ValidateLmPolicyTable(tree, table);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(tree.information_states()[3].key), std::string::npos) << s;
  table.forfeit.pop_back();
  EXPECT_FALSE(NashConv(tree, table).ok());
}

TEST(LmPolicy, TicTacToeScorerHandlesRandomGames) {
  Fixture f = Load("tictactoe");
  Transformer model = RandomModel(TinyConfig(), 4);
  LmMoveScorer scorer = *LmMoveScorer::Create(&model, f.tokenizer.get(), f.game.get(), f.rendering,
                                              PromptStyle::kCompact);
  std::mt19937_64 rng(11);
  int checked_against_reference = 0;
  for (int g = 0; g < 3; ++g) {
    std::unique_ptr<State> state = f.game->NewInitialState();
    while (state->CurrentPlayer() >= 0) {
      absl::StatusOr<MoveScores> scores = scorer.Score(*state);
      ASSERT_TRUE(scores.ok()) << scores.status();
      std::vector<int> legal = state->LegalActions();
      EXPECT_EQ(scores->actions, legal);
      double total = scores->invalid;
      for (double p : scores->probs) total += p;
      EXPECT_NEAR(total, 1.0, 1e-12);
      std::vector<std::vector<int32_t>> answers = scorer.AnswerTokens(*state);
      for (size_t a = 0; a < legal.size(); ++a) {
        EXPECT_EQ(answers[a], Bytes("[" + std::to_string(legal[a]) + "]\n"));
      }
      if (g == 0 && legal.size() % 3 == 0) {  // a few positions against the slow reference
        std::vector<int32_t> prompt =
            Bytes(*CompactPrompt(*f.rendering, *f.game, *state, state->CurrentPlayer()));
        EXPECT_NEAR(scores->log_probs[0], SlowAnswerLogProb(model, prompt, answers[0]), 1e-4);
        ++checked_against_reference;
      }
      state->ApplyAction(legal[std::uniform_int_distribution<size_t>(0, legal.size() - 1)(rng)]);
    }
  }
  EXPECT_GT(checked_against_reference, 0);
}

TEST(LmPolicy, RefusesContextsLongerThanTheModel) {
  Fixture f = Load("kuhn_poker");
  TransformerConfig config = TinyConfig();
  config.max_seq_len = 16;
  Transformer model = RandomModel(config, 5);
  LmMoveScorer scorer = *LmMoveScorer::Create(&model, f.tokenizer.get(), f.game.get(), f.rendering,
                                              PromptStyle::kCompact);
  GameTree tree = *GameTree::Build(*f.game);
  absl::StatusOr<LmPolicyTable> table = ScoreTree(tree, scorer);
  EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(table.status().message().find("max_seq_len"), std::string::npos) << table.status();
}

// A transformer checkpoint step-3 of `model` under `dir`, written with lm_checkpoint.h's writer,
// its manifest holding `fields` beside the model's.
std::string WriteCheckpoint(const Transformer& model, const std::filesystem::path& dir,
                            nlohmann::json fields) {
  fields.update(LmManifestFields(model.config(), /*tokenizer_json=*/""));
  fields["policy_version"] = 3;
  fields["job_id"] = "job-export";
  absl::Status written = WriteLmCheckpointDirectory(
      dir.string(), "step-3", std::move(fields),
      {{"weights.safetensors", EncodeSafetensors(model.ExportWeights())}}, "");
  EXPECT_TRUE(written.ok()) << written;
  return (dir / "step-3").string();
}

// What `rally evaluate-policy` computes of an exported document (services/cli/policy_commands.cc),
// after a trip through its text.
struct ExportedFigures {
  double nash_conv = 0;
  std::vector<double> worst_case;
  TabularPolicy policy;
};
ExportedFigures EvaluateExported(const GameTree& tree, const nlohmann::json& document) {
  absl::StatusOr<TabularPolicy> policy = PolicyFromJson(nlohmann::json::parse(document.dump()));
  EXPECT_TRUE(policy.ok()) << policy.status();
  const Policy* one[] = {&*policy};
  TreePolicyTable table = *MakeTreePolicyTable(tree, one);
  return {*NashConv(tree, table), *WorstCaseReturns(tree, table), *std::move(policy)};
}

// Each state's probabilities and invalid mass in `exported` are those of `direct`, relatively
// (a random model gives its moves tiny probabilities, so an absolute bound would check nothing).
void ExpectSameProbabilities(const GameTree& tree, const TabularPolicy& exported,
                             const LmPolicyTable& direct) {
  const auto& infosets = tree.information_states();
  for (size_t i = 0; i < infosets.size(); ++i) {
    const std::string key = KuhnPolicyKey(*infosets[i].state);
    EXPECT_NEAR(exported.Forfeit(key), direct.forfeit[i], 1e-12) << key;
    const ActionsAndProbs* probs = exported.Find(key);
    ASSERT_NE(probs, nullptr) << key;
    ASSERT_EQ(probs->size(), direct.probs[i].size()) << key;
    for (size_t a = 0; a < probs->size(); ++a) {
      EXPECT_GT(direct.probs[i][a], 0.0) << key;
      EXPECT_NEAR((*probs)[a].second, direct.probs[i][a], 1e-9 * direct.probs[i][a]) << key;
    }
  }
}

TEST(LmPolicyExport, CheckpointExportEvaluatesAsTheBestResponseRound) {
  Fixture f = Load("kuhn_poker");
  Transformer model = RandomModel(TinyConfig(), 9);
  const std::filesystem::path dir =
      std::filesystem::path(testing::TempDir()) / "lm_policy_export_test";
  std::filesystem::remove_all(dir);
  const std::string step =
      WriteCheckpoint(model, dir, {{"game", "kuhn_poker"}, {"prompt", "compact"}});
  absl::StatusOr<LmCheckpoint> checkpoint = ReadLmCheckpoint(step);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  absl::StatusOr<nlohmann::json> document = ExportLmPolicy(*checkpoint, *f.game);
  ASSERT_TRUE(document.ok()) << document.status();
  EXPECT_EQ((*document)["game"], "kuhn_poker");
  EXPECT_EQ((*document)["policy"].size(), 12u);

  // The evaluator's best_response round on the same weights: the job's sampling (temperature 1,
  // what the manifest implies when it records none), every information state scored directly.
  GameTree tree = *GameTree::Build(*f.game);
  LmMoveScorer scorer = *LmMoveScorer::Create(&model, f.tokenizer.get(), f.game.get(), f.rendering,
                                              PromptStyle::kCompact);
  LmPolicyTable direct = *ScoreTree(tree, scorer);
  ExportedFigures exported = EvaluateExported(tree, *document);
  EXPECT_NEAR(exported.nash_conv / 2, *ForfeitExploitability(tree, direct), 1e-9);
  std::vector<double> worst = *WorstCaseReturns(tree, direct);
  EXPECT_NEAR(exported.worst_case[0], worst[0], 1e-9);
  EXPECT_NEAR(exported.worst_case[1], worst[1], 1e-9);
  ExpectSameProbabilities(tree, exported.policy, direct);
  InvalidAnswerRate rate = *ComputeInvalidAnswerRate(tree, direct);
  const nlohmann::json& written = (*document)["invalid_answer_rate"];
  EXPECT_NEAR(written["per_decision"].get<double>(), rate.per_decision, 1e-12);
  EXPECT_NEAR(written["per_game"].get<double>(), rate.per_game, 1e-12);
  EXPECT_NEAR(written["max"].get<double>(), rate.max, 1e-12);
  std::filesystem::remove_all(dir);
}

TEST(LmPolicyExport, UsesTheSamplingAndPromptTheManifestRecords) {
  Fixture f = Load("kuhn_poker");
  Transformer model = RandomModel(TinyConfig(), 10);
  const std::filesystem::path dir =
      std::filesystem::path(testing::TempDir()) / "lm_policy_export_sampling_test";
  std::filesystem::remove_all(dir);
  const std::string step = WriteCheckpoint(
      model, dir, {{"game", "kuhn_poker"}, {"prompt", "spiral"}, {"temperature", 0.5}});
  LmCheckpoint checkpoint = *ReadLmCheckpoint(step);
  EXPECT_EQ(CheckpointSampling(checkpoint)->temperature, 0.5);
  absl::StatusOr<nlohmann::json> document = ExportLmPolicy(checkpoint, *f.game);
  ASSERT_TRUE(document.ok()) << document.status();
  SamplingOptions hot;
  hot.temperature = 0.5;
  LmMoveScorer scorer = *LmMoveScorer::Create(&model, f.tokenizer.get(), f.game.get(), f.rendering,
                                              PromptStyle::kSpiral, hot);
  GameTree tree = *GameTree::Build(*f.game);
  LmPolicyTable direct = *ScoreTree(tree, scorer);
  ExportedFigures exported = EvaluateExported(tree, *document);
  EXPECT_NEAR(exported.nash_conv / 2, *ForfeitExploitability(tree, direct), 1e-9);
  ExpectSameProbabilities(tree, exported.policy, direct);
  // Not the temperature-1, compact-prompt policy: the manifest's settings were used.
  LmMoveScorer plain = *LmMoveScorer::Create(&model, f.tokenizer.get(), f.game.get(), f.rendering,
                                             PromptStyle::kCompact);
  LmPolicyTable other = *ScoreTree(tree, plain);
  EXPECT_GT(std::abs(std::log(other.probs[0][0]) - std::log(direct.probs[0][0])), 1.0);

  checkpoint.manifest["top_p"] = "high";
  absl::StatusOr<SamplingOptions> bad = CheckpointSampling(checkpoint);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(bad.status().message().find("top_p"), std::string::npos) << bad.status();
  EXPECT_NE(bad.status().message().find("manifest.json"), std::string::npos) << bad.status();
  std::filesystem::remove_all(dir);
}

// Wall time to score every information state with a 2-layer width-64 model on one thread:
// Kuhn (12) and, when RALLY_LM_POLICY_TIMING is set, TicTacToe (4,520 positions).
TEST(LmPolicy, ScoringWallTime) {
  int threads = torch::get_num_threads();
  torch::set_num_threads(1);
  Transformer model = RandomModel(TinyConfig(64), 6);
  std::vector<std::string> games = {"kuhn_poker"};
  if (std::getenv("RALLY_LM_POLICY_TIMING") != nullptr) games.push_back("tictactoe");
  for (const std::string& name : games) {
    Fixture f = Load(name);
    LmMoveScorer scorer = *LmMoveScorer::Create(&model, f.tokenizer.get(), f.game.get(),
                                                f.rendering, PromptStyle::kCompact);
    GameTree tree = *GameTree::Build(*f.game);
    auto start = std::chrono::steady_clock::now();
    absl::StatusOr<LmPolicyTable> table = ScoreTree(tree, scorer);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(table.ok()) << table.status();
    InvalidAnswerRate rate = *ComputeInvalidAnswerRate(tree, *table);
    std::printf("%s: %zu information states scored in %.3f s; invalid rate per decision %.4f\n",
                name.c_str(), tree.information_states().size(), seconds, rate.per_decision);
  }
  torch::set_num_threads(threads);
}

}  // namespace
}  // namespace rally
