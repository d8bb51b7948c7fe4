#include "services/actor/generation_worker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <thread>

#include "common/games/registry.h"
#include "services/actor/text_selfplay.h"
#include "services/replay/validate.h"

namespace rally {
namespace {

TransformerConfig TinyConfig() {
  TransformerConfig c;
  c.layers = 2;
  c.d_model = 32;
  c.heads = 4;
  c.kv_heads = 2;
  c.d_ff = 48;
  c.vocab = 259;
  c.max_seq_len = 128;
  return c;
}

// A random model whose logits are of order one (Hugging Face's N(0, 0.02²) initialisation gives
// a nearly uniform policy, under which a test would see little of the model).
Transformer TinyModel(uint64_t seed, int max_seq_len = 128) {
  TransformerConfig config = TinyConfig();
  config.max_seq_len = max_seq_len;
  Transformer model = *Transformer::Create(config, seed);
  TensorSet weights = model.ExportWeights();
  for (NamedTensor& t : weights.tensors) {
    if (t.name.find("norm") != std::string::npos) continue;
    float* data = reinterpret_cast<float*>(t.data.data());
    const size_t n = t.data.size() / sizeof(float);
    std::mt19937_64 rng(seed * 7919 + n);
    std::normal_distribution<float> normal(0.0f, 0.3f);
    for (size_t i = 0; i < n; ++i) data[i] = normal(rng);
  }
  EXPECT_TRUE(model.LoadWeights(weights).ok());
  return model;
}

std::vector<int32_t> RandomTokens(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> token(0, 255);
  std::vector<int32_t> out(n);
  for (int32_t& t : out) t = token(rng);
  return out;
}

std::unique_ptr<GenerationWorker> MakeWorker(uint64_t model_seed,
                                             GenerationWorkerOptions options = {}) {
  absl::StatusOr<std::unique_ptr<GenerationWorker>> worker =
      GenerationWorker::Create(TinyModel(model_seed), options);
  EXPECT_TRUE(worker.ok()) << worker.status();
  return *std::move(worker);
}

GenerationRequest Request(int64_t sequence, std::vector<int32_t> append, uint64_t seed,
                          int max_new_tokens) {
  GenerationRequest r;
  r.sequence = sequence;
  r.append = std::move(append);
  r.seed = seed;
  r.max_new_tokens = max_new_tokens;
  return r;
}

// Generates `request` (its sequence replaced) on a fresh sequence of `worker`, alone.
GenerationResult Alone(GenerationWorker& worker, GenerationRequest request) {
  std::vector<int64_t> ids = *worker.Open(1, absl::Seconds(10));
  request.sequence = ids[0];
  absl::StatusOr<GenerationResult> result = worker.Generate(std::move(request));
  EXPECT_TRUE(result.ok()) << result.status();
  worker.Release(ids[0]);
  return *std::move(result);
}

void ExpectSameGeneration(const GenerationResult& a, const GenerationResult& b) {
  EXPECT_EQ(a.tokens, b.tokens);
  ASSERT_EQ(a.log_probs.size(), b.log_probs.size());
  for (size_t i = 0; i < a.log_probs.size(); ++i) EXPECT_NEAR(a.log_probs[i], b.log_probs[i], 1e-4);
}

// log softmax(logits / temperature) restricted to the top_k highest logits (all when 0), at each
// position of one full forward pass over `context`: row t is the distribution after token t.
std::vector<std::vector<double>> ReferenceLogProbs(const Transformer& model,
                                                   const std::vector<int32_t>& context,
                                                   double temperature, int top_k) {
  torch::Tensor tokens =
      torch::tensor(std::vector<int64_t>(context.begin(), context.end())).unsqueeze(0);
  torch::Tensor lengths = torch::tensor(std::vector<int64_t>{(int64_t)context.size()});
  torch::Tensor logits = model.Forward(tokens, lengths)->squeeze(0).to(torch::kDouble);
  std::vector<std::vector<double>> out;
  for (int64_t t = 0; t < logits.size(0); ++t) {
    std::vector<double> row(logits.size(1));
    for (size_t v = 0; v < row.size(); ++v) row[v] = logits[t][v].item<double>() / temperature;
    std::vector<double> sorted = row;
    std::sort(sorted.rbegin(), sorted.rend());
    const double cut = top_k > 0 ? sorted[top_k - 1] : -INFINITY;
    double sum = 0;
    for (double x : row) sum += x >= cut ? std::exp(x - sorted[0]) : 0;
    for (double& x : row) x = x >= cut ? x - sorted[0] - std::log(sum) : -INFINITY;
    out.push_back(row);
  }
  return out;
}

TEST(GenerationWorker, ConcurrentRequestsEqualEachAlone) {
  constexpr int kRequests = 6;
  constexpr int kNew = 12;
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < kRequests; ++i) {
    requests.push_back(Request(0, RandomTokens(3 + 5 * i, 40 + i), 100 + i, kNew));
  }
  std::vector<GenerationResult> alone;
  {
    std::unique_ptr<GenerationWorker> worker = MakeWorker(1);
    for (const GenerationRequest& r : requests) alone.push_back(Alone(*worker, r));
  }
  std::atomic<int> steps = 0;
  GenerationWorkerOptions options;
  options.after_step = [&](int64_t) { ++steps; };
  std::unique_ptr<GenerationWorker> worker = MakeWorker(1, options);
  std::vector<int64_t> ids = *worker->Open(kRequests, absl::Seconds(10));
  std::vector<std::future<absl::StatusOr<GenerationResult>>> futures;
  for (int i = 0; i < kRequests; ++i) {
    GenerationRequest r = requests[i];
    r.sequence = ids[i];
    futures.push_back(worker->Submit(std::move(r)));
  }
  for (int i = 0; i < kRequests; ++i) {
    absl::StatusOr<GenerationResult> result = futures[i].get();
    ASSERT_TRUE(result.ok()) << result.status();
    SCOPED_TRACE(i);
    ExpectSameGeneration(*result, alone[i]);
    EXPECT_EQ(result->tokens.size(), kNew);
    EXPECT_FALSE(result->stopped);
  }
  // They shared batches: one at a time would take kRequests * kNew steps.
  EXPECT_LT(steps.load(), 2 * kNew + 2);
}

TEST(GenerationWorker, LogProbsEqualTheFullForwardAcrossTurns) {
  const Transformer reference = TinyModel(3);
  for (auto [temperature, top_k] : {std::pair{1.0, 0}, std::pair{0.7, 5}}) {
    SCOPED_TRACE(temperature);
    std::unique_ptr<GenerationWorker> worker = MakeWorker(3);
    const int64_t seq = (*worker->Open(1, absl::Seconds(10)))[0];
    std::vector<int32_t> context;
    for (int turn = 0; turn < 3; ++turn) {
      GenerationRequest r = Request(seq, RandomTokens(4 + turn, 70 + turn), 9 + turn, 6);
      r.sampling.temperature = temperature;
      r.sampling.top_k = top_k;
      context.insert(context.end(), r.append.begin(), r.append.end());
      const size_t prompt = context.size();
      absl::StatusOr<GenerationResult> result = worker->Generate(r);
      ASSERT_TRUE(result.ok()) << result.status();
      ASSERT_EQ(result->tokens.size(), 6u);
      ASSERT_EQ(result->log_probs.size(), 6u);
      context.insert(context.end(), result->tokens.begin(), result->tokens.end());
      std::vector<std::vector<double>> ref =
          ReferenceLogProbs(reference, context, temperature, top_k);
      for (size_t k = 0; k < result->tokens.size(); ++k) {
        EXPECT_NEAR(result->log_probs[k], ref[prompt + k - 1][result->tokens[k]], 1e-4)
            << "turn " << turn << " token " << k;
      }
    }
  }
}

TEST(GenerationWorker, RequestJoiningMidwayDoesNotDisturbTheOthers) {
  const GenerationRequest long_request = Request(0, RandomTokens(9, 5), 11, 30);
  const GenerationRequest late_request = Request(0, RandomTokens(17, 6), 12, 8);
  GenerationResult long_alone, late_alone;
  {
    std::unique_ptr<GenerationWorker> worker = MakeWorker(4);
    long_alone = Alone(*worker, long_request);
    late_alone = Alone(*worker, late_request);
  }
  GenerationWorker* raw = nullptr;
  std::vector<int64_t> ids;
  std::future<absl::StatusOr<GenerationResult>> late;
  std::atomic<int> long_tokens_at_join = -1;
  GenerationWorkerOptions options;
  options.after_step = [&](int64_t step) {
    if (step != 5) return;
    GenerationRequest r = late_request;
    r.sequence = ids[1];
    late = raw->Submit(std::move(r));
    long_tokens_at_join = static_cast<int>(step) + 1;
  };
  std::unique_ptr<GenerationWorker> worker = MakeWorker(4, options);
  raw = worker.get();
  ids = *worker->Open(2, absl::Seconds(10));
  GenerationRequest r = long_request;
  r.sequence = ids[0];
  absl::StatusOr<GenerationResult> long_result = worker->Generate(std::move(r));
  ASSERT_TRUE(long_result.ok()) << long_result.status();
  ASSERT_EQ(long_tokens_at_join.load(), 6);  // it joined while the long one ran
  absl::StatusOr<GenerationResult> late_result = late.get();
  ASSERT_TRUE(late_result.ok()) << late_result.status();
  ExpectSameGeneration(*long_result, long_alone);
  ExpectSameGeneration(*late_result, late_alone);
}

TEST(GenerationWorker, StopsAtAStopTokenAndKeepsIt) {
  std::unique_ptr<GenerationWorker> worker = MakeWorker(5);
  GenerationRequest greedy = Request(0, RandomTokens(6, 8), 1, 10);
  greedy.sampling.temperature = 0;
  const GenerationResult full = Alone(*worker, greedy);
  ASSERT_EQ(full.tokens.size(), 10u);
  const int32_t stop = full.tokens[3];
  const size_t first =
      std::find(full.tokens.begin(), full.tokens.end(), stop) - full.tokens.begin();
  greedy.stop_tokens = {stop};
  const GenerationResult cut = Alone(*worker, greedy);
  EXPECT_TRUE(cut.stopped);
  EXPECT_EQ(cut.tokens, std::vector<int32_t>(full.tokens.begin(), full.tokens.begin() + first + 1));
  for (float lp : cut.log_probs) EXPECT_EQ(lp, 0.0f);  // greedy: drawn with probability 1
}

TEST(GenerationWorker, KvBoundMakesOpenWaitUntilASequenceEnds) {
  GenerationWorkerOptions options;
  options.sequence_capacity = 64;
  options.kv_cache_tokens = 130;  // two sequences
  std::unique_ptr<GenerationWorker> worker = MakeWorker(6, options);
  EXPECT_EQ(worker->slots(), 2);
  absl::StatusOr<std::vector<int64_t>> never = worker->Open(3, absl::Seconds(10));
  EXPECT_EQ(never.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(never.status().message().find("can never fit"), std::string::npos);

  std::vector<int64_t> ids = *worker->Open(2, absl::Seconds(10));
  EXPECT_EQ(worker->Open(1, absl::Milliseconds(50)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  // A request that would pass the sequence's capacity is refused at once.
  absl::StatusOr<GenerationResult> too_long =
      worker->Generate(Request(ids[0], RandomTokens(60, 1), 1, 5));
  EXPECT_EQ(too_long.status().code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(worker->Generate(Request(ids[0], RandomTokens(20, 1), 1, 5)).ok());

  std::atomic<bool> opened = false;
  absl::StatusOr<std::vector<int64_t>> waiter;
  std::thread thread([&] {
    waiter = worker->Open(1, absl::Seconds(30));
    opened = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(opened.load());
  worker->Release(ids[0]);
  thread.join();
  ASSERT_TRUE(waiter.ok()) << waiter.status();
  // The reused slot starts empty: the new sequence generates as on a fresh worker.
  const GenerationRequest r = Request(0, RandomTokens(7, 2), 3, 6);
  GenerationRequest on_reused = r;
  on_reused.sequence = (*waiter)[0];
  absl::StatusOr<GenerationResult> reused = worker->Generate(on_reused);
  ASSERT_TRUE(reused.ok()) << reused.status();
  std::unique_ptr<GenerationWorker> fresh = MakeWorker(6);
  ExpectSameGeneration(*reused, Alone(*fresh, r));
}

TEST(GenerationWorker, WeightSwapBetweenStepsShowsInTokenVersions) {
  const TensorSet second = TinyModel(8).ExportWeights();
  const Transformer first_reference = TinyModel(7);
  GenerationWorker* raw = nullptr;
  GenerationWorkerOptions options;
  options.initial_version = 1;
  options.after_step = [&](int64_t step) {
    if (step == 2) raw->PublishWeights(std::make_shared<TensorSet>(second), 2);
  };
  std::unique_ptr<GenerationWorker> worker = MakeWorker(7, options);
  raw = worker.get();
  const int64_t seq = (*worker->Open(1, absl::Seconds(10)))[0];
  const std::vector<int32_t> prompt = RandomTokens(5, 3);
  absl::StatusOr<GenerationResult> result = worker->Generate(Request(seq, prompt, 4, 8));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->versions, (std::vector<int64_t>{1, 1, 1, 2, 2, 2, 2, 2}));
  EXPECT_EQ(worker->version(), 2);
  // The tokens before the swap are the first model's.
  std::vector<int32_t> context = prompt;
  context.insert(context.end(), result->tokens.begin(), result->tokens.end());
  std::vector<std::vector<double>> ref = ReferenceLogProbs(first_reference, context, 1.0, 0);
  for (int k = 0; k < 3; ++k) {
    EXPECT_NEAR(result->log_probs[k], ref[prompt.size() + k - 1][result->tokens[k]], 1e-4);
  }
  // Weights that do not fit the model are not applied and the version stays.
  TensorSet bad = second;
  bad.tensors.pop_back();
  worker->PublishWeights(std::make_shared<TensorSet>(bad), 3);
  ASSERT_TRUE(worker->Generate(Request(seq, {1}, 5, 1)).ok());
  EXPECT_EQ(worker->version(), 2);
  EXPECT_FALSE(worker->last_weights_error().ok());
}

TEST(GenerationWorker, WaitForVersionReturnsWhenTheWeightsAreInUseOrFailedToLoad) {
  std::unique_ptr<GenerationWorker> worker = MakeWorker(7);
  const TensorSet good = TinyModel(8).ExportWeights();
  // Nothing published: the wait ends at its timeout.
  EXPECT_FALSE(worker->WaitForVersion(5, absl::Milliseconds(50)));
  // Publishing wakes the idle worker, which applies them with no request queued.
  worker->PublishWeights(std::make_shared<TensorSet>(good), 5);
  EXPECT_TRUE(worker->WaitForVersion(5, absl::Seconds(30)));
  EXPECT_EQ(worker->version(), 5);
  // Weights that do not load end the wait at once (well before its 30 s), false.
  TensorSet bad = good;
  bad.tensors.pop_back();
  worker->PublishWeights(std::make_shared<TensorSet>(bad), 6);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(worker->WaitForVersion(6, absl::Seconds(30)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_EQ(worker->version(), 5);
  EXPECT_FALSE(worker->last_weights_error().ok());
}

TEST(GenerationWorker, RefusesMalformedRequests) {
  std::unique_ptr<GenerationWorker> worker = MakeWorker(9);
  const int64_t seq = (*worker->Open(1, absl::Seconds(10)))[0];
  EXPECT_EQ(worker->Generate(Request(seq, {}, 1, 4)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(worker->Generate(Request(seq, {259}, 1, 4)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(worker->Generate(Request(seq + 100, {1}, 1, 4)).status().code(),
            absl::StatusCode::kInvalidArgument);
  GenerationRequest stop_text = Request(seq, {1}, 1, 4);
  stop_text.stop_string = "\n";  // no tokenizer given
  EXPECT_EQ(worker->Generate(stop_text).status().code(), absl::StatusCode::kInvalidArgument);
}

// A model whose next token depends only on the last one (attention and MLP outputs zeroed, so
// each layer passes its input through): after token a it puts nearly all mass on next[a].
Transformer ScriptedModel(const std::map<int32_t, int32_t>& next) {
  TransformerConfig config = TinyConfig();
  config.max_seq_len = 1024;
  Transformer model = TinyModel(11);
  TensorSet weights = model.ExportWeights();
  const std::vector<float>* embed = nullptr;
  std::vector<float> embedding;
  for (NamedTensor& t : weights.tensors) {
    if (t.name == "model.embed_tokens.weight") {
      embedding.resize(t.data.size() / sizeof(float));
      std::memcpy(embedding.data(), t.data.data(), t.data.size());
      embed = &embedding;
    }
  }
  const int d = config.d_model;
  for (NamedTensor& t : weights.tensors) {
    float* data = reinterpret_cast<float*>(t.data.data());
    const size_t n = t.data.size() / sizeof(float);
    if (t.name.find("o_proj") != std::string::npos ||
        t.name.find("down_proj") != std::string::npos) {
      std::fill(data, data + n, 0.0f);
    }
    if (t.name == "lm_head.weight") {
      for (size_t i = 0; i < n; ++i) data[i] *= 0.05f;
      for (auto [from, to] : next) {
        double norm = 0;
        for (int j = 0; j < d; ++j) norm += (*embed)[from * d + j] * (*embed)[from * d + j];
        for (int j = 0; j < d; ++j)
          data[to * d + j] = 8.0 * (*embed)[from * d + j] / std::sqrt(norm);
      }
    }
  }
  Transformer scripted = *Transformer::Create(config, 11);
  EXPECT_TRUE(scripted.LoadWeights(weights).ok());
  return scripted;
}

struct TextFixture {
  std::shared_ptr<const Game> game = *LoadGame("tictactoe");
  std::unique_ptr<Tokenizer> tokenizer = MakeByteTokenizer();
  std::unique_ptr<GenerationWorker> worker;

  explicit TextFixture(Transformer model) {
    GenerationWorkerOptions options;
    options.tokenizer = tokenizer.get();
    options.kv_cache_tokens = 4 * model.config().max_seq_len;
    worker = *GenerationWorker::Create(std::move(model), options);
  }
  // The last byte of every compact prompt of tictactoe (the model's cue to answer).
  int32_t PromptEnd() {
    std::mt19937_64 rng(1);
    TextMatch match = *TextMatch::Start(game, {}, rng);
    const std::string first = match.Prompt();
    EXPECT_TRUE(match.Answer("[0]", rng).ok());
    EXPECT_EQ(match.Prompt().back(), first.back());
    return static_cast<unsigned char>(first.back());
  }
};

void ExpectTurnsConsistent(const v1::Trajectory& trajectory) {
  for (const v1::Turn& turn : trajectory.turns()) {
    EXPECT_EQ(turn.behaviour_log_probs_size(), turn.action_tokens_size());
    EXPECT_GT(turn.action_tokens_size(), 0);
  }
}

TEST(TextSelfPlay, SelfPlayKeepsEachSeatsContextAndForfeitsAnIllegalMove) {
  TextFixture f(ScriptedModel({}));
  const int32_t end = f.PromptEnd();
  // Every answer is "[4]\n": legal for the first seat, illegal for the second.
  f = TextFixture(ScriptedModel({{end, '['}, {'[', '4'}, {'4', ']'}, {']', '\n'}}));
  TextEpisodeOptions options;
  options.max_new_tokens = 8;
  std::mt19937_64 rng(5);
  absl::StatusOr<v1::Trajectory> t = PlayTextEpisode(f.game, *f.tokenizer, *f.worker, options, rng);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(ValidateTrajectory(*f.game, *t).ok()) << ValidateTrajectory(*f.game, *t);
  ExpectTurnsConsistent(*t);
  EXPECT_EQ(t->game(), "tictactoe");
  EXPECT_EQ(t->opponent_id(), "latest");
  EXPECT_EQ(std::vector<int>(t->learning_seats().begin(), t->learning_seats().end()),
            (std::vector<int>{0, 1}));
  ASSERT_EQ(t->turns_size(), 2);
  EXPECT_EQ(t->turns(0).seat(), 0);
  EXPECT_EQ(t->turns(1).seat(), 1);
  const std::vector<int32_t> answer(t->turns(0).action_tokens().begin(),
                                    t->turns(0).action_tokens().end());
  EXPECT_EQ(f.tokenizer->Decode(answer), "[4]\n");
  // Each seat's context is its own rules and observation: the first seat's equals the text
  // TextMatch gives it.
  std::mt19937_64 match_rng(5);
  TextMatch match = *TextMatch::Start(f.game, {}, match_rng);
  const std::vector<int32_t> first_prompt = f.tokenizer->Encode(match.Prompt());
  EXPECT_EQ(std::vector<int32_t>(t->turns(0).observation_tokens().begin(),
                                 t->turns(0).observation_tokens().end()),
            first_prompt);
  ASSERT_TRUE(match.Answer("[4]", match_rng).ok());
  EXPECT_EQ(std::vector<int32_t>(t->turns(1).observation_tokens().begin(),
                                 t->turns(1).observation_tokens().end()),
            f.tokenizer->Encode(match.Transcript(1)));
  EXPECT_EQ(std::vector<float>(t->returns().begin(), t->returns().end()),
            (std::vector<float>{0.5f, -1.5f}));
  EXPECT_EQ(f.worker->free_slots(), f.worker->slots());  // both sequences released
}

TEST(TextSelfPlay, RandomOpponentSeatAndTheLearnersContextAcrossTurns) {
  TextFixture f(ScriptedModel({}));
  const int32_t end = f.PromptEnd();
  f = TextFixture(ScriptedModel({{end, '['}, {'[', '4'}, {'4', ']'}, {']', '\n'}}));
  TextEpisodeOptions options;
  options.opponent_seat = 1;
  std::mt19937_64 rng(6);
  absl::StatusOr<v1::Trajectory> t = PlayTextEpisode(f.game, *f.tokenizer, *f.worker, options, rng);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(ValidateTrajectory(*f.game, *t).ok()) << ValidateTrajectory(*f.game, *t);
  ExpectTurnsConsistent(*t);
  EXPECT_EQ(t->opponent_id(), "random");
  ASSERT_EQ(t->learning_seats_size(), 1);
  EXPECT_EQ(t->learning_seats(0), 0);
  // "[4]" again on its second turn is illegal (the random seat cannot win in one move).
  ASSERT_EQ(t->turns_size(), 2);
  const v1::Turn& first = t->turns(0);
  const v1::Turn& second = t->turns(1);
  // The second turn's context extends the first turn's context and answer.
  std::vector<int32_t> prefix(first.observation_tokens().begin(), first.observation_tokens().end());
  prefix.insert(prefix.end(), first.action_tokens().begin(), first.action_tokens().end());
  ASSERT_GT(second.observation_tokens_size(), static_cast<int>(prefix.size()));
  EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), second.observation_tokens().begin()));
  EXPECT_EQ(std::vector<float>(t->returns().begin(), t->returns().end()),
            (std::vector<float>{-1.5f, 0.5f}));
}

TEST(TextSelfPlay, UnparseableAnswerEndsTheGameWithTheForfeitReturns) {
  TextFixture f(ScriptedModel({}));
  const int32_t end = f.PromptEnd();
  f = TextFixture(ScriptedModel({{end, 'x'}, {'x', '\n'}}));  // answers "x"
  TextEpisodeOptions options;
  std::mt19937_64 rng(7);
  absl::StatusOr<v1::Trajectory> t = PlayTextEpisode(f.game, *f.tokenizer, *f.worker, options, rng);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(ValidateTrajectory(*f.game, *t).ok()) << ValidateTrajectory(*f.game, *t);
  ASSERT_EQ(t->turns_size(), 1);
  EXPECT_EQ(t->turns(0).action_tokens_size(), 2);
  EXPECT_EQ(std::vector<float>(t->returns().begin(), t->returns().end()),
            (std::vector<float>{-1.5f, 0.5f}));
  // An answer cut at max_new_tokens is invalid too.
  TextFixture g(TinyModel(12, 1024));
  options.max_new_tokens = 3;
  absl::StatusOr<v1::Trajectory> cut =
      PlayTextEpisode(g.game, *g.tokenizer, *g.worker, options, rng);
  ASSERT_TRUE(cut.ok()) << cut.status();
  ASSERT_EQ(cut->turns_size(), 1);
  EXPECT_EQ(cut->turns(0).action_tokens_size(), 3);
  EXPECT_EQ(std::vector<float>(cut->returns().begin(), cut->returns().end()),
            (std::vector<float>{-1.5f, 0.5f}));
}

TEST(TextSelfPlay, SpiralStyleGivesEachTurnAFreshPrompt) {
  // Every answer is "\\boxed{4}<|im_end|>" (258 in the byte tokenizer).
  TextFixture f(ScriptedModel({{'\n', '\\'},
                               {'\\', 'b'},
                               {'b', 'o'},
                               {'o', 'x'},
                               {'x', 'e'},
                               {'e', 'd'},
                               {'d', '{'},
                               {'{', '4'},
                               {'4', '}'},
                               {'}', 258}}));
  TextEpisodeOptions options;
  options.style = PromptStyle::kSpiral;
  std::mt19937_64 rng(8);
  absl::StatusOr<v1::Trajectory> t = PlayTextEpisode(f.game, *f.tokenizer, *f.worker, options, rng);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(ValidateTrajectory(*f.game, *t).ok()) << ValidateTrajectory(*f.game, *t);
  ASSERT_EQ(t->turns_size(), 2);
  EXPECT_EQ(t->turns(0).action_tokens_size(), 10);
  EXPECT_EQ(t->turns(0).action_tokens(9), 258u);
  std::mt19937_64 match_rng(8);
  TextMatchOptions match_options;
  match_options.style = PromptStyle::kSpiral;
  TextMatch match = *TextMatch::Start(f.game, match_options, match_rng);
  ASSERT_TRUE(match.Answer("\\boxed{4}", match_rng).ok());
  // The second seat's context is its own prompt only: spiral prompts are not appended.
  EXPECT_EQ(std::vector<int32_t>(t->turns(1).observation_tokens().begin(),
                                 t->turns(1).observation_tokens().end()),
            f.tokenizer->Encode(match.Prompt()));
  EXPECT_EQ(std::vector<float>(t->returns().begin(), t->returns().end()),
            (std::vector<float>{0.5f, -1.5f}));
  EXPECT_EQ(f.worker->free_slots(), f.worker->slots());
}

}  // namespace
}  // namespace rally
