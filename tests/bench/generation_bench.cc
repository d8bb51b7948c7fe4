// generation_bench: what the language-model path costs per token against what the bare model can
// do, measured in the same run, for two model sizes (one LibTorch thread, fp32, CPU).
//
//   generation_bench [--rounds R] [--seconds S] [--steps N] [--models 2x128,4x256]
//                    [--only generation|training] [--json FILE]
//
// Generation. 64 client threads drive one GenerationWorker as actors do: each opens a sequence,
// plays `kTurns` text-game-like turns on it (append 30-100 prompt tokens, generate 4-16 tokens,
// sampled at temperature 1) and releases it, again and again, so requests join and leave the
// running batch between decode steps. Over a window of S seconds and at least 60 worker steps
// (after 40 steps of warm-up) it counts the generated tokens G and the appended (prefill) tokens
// P of the requests completed. The ceiling is the bare model doing the same kind of work, no
// worker and no threads: a Transformer with a KV cache of 64 sequences holding contexts drawn
// from the same turns; their turns' appended tokens prefilled (the fastest of one pass for all 64,
// passes of 8 and one pass each, in order of length: rate p, prefill tokens/s), then decode steps
// of one token for each of the 64 (rate d, generated tokens/s). The window's work takes the bare
// model G/d + P/p seconds, so the ceiling's generated tokens/s is G / (G/d + P/p), and the ratio is
// the measured generated tokens/s over it (the bare model's time for the work over the worker's).
// Goal: >= 0.7.
//
// Training. TokenPolicyLearner's step on batches of text-game episodes packed by tokens
// (learner.batch_tokens): SetBatch (building the batch from the trajectories), PrepareBatch, its
// loss (REINFORCE with importance weights and entropy), backward and Adam through the trainer's
// GuardedOptimiser. The ceiling is the bare step of the same model on the same token batches,
// already built: forward, the mean log-loss of the action tokens, backward, Adam. Both count the
// real tokens of the rows (prompt and action, not padding) per second. Goal: ratio >= 0.9.
//
// Every rate is given per wall-clock second and per CPU second of this process (all threads):
// on a machine shared with other work the second is the steadier; the first also counts this
// process's waiting (client wake-ups, locks). Medians over R rounds, each model's parts
// interleaved so that load hits a measure and its ceiling alike.
#include <prometheus/registry.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/config/job_config.h"
#include "common/lm/transformer.h"
#include "common/models/threads.h"
#include "common/rl/token_losses.h"
#include "services/actor/generation_worker.h"
#include "services/learner/token_policy_learner.h"
#include "services/learner/trainer.h"
#include "tests/bench/bench_util.h"

using namespace rally;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kClients = 64;  // client threads, KV-cache sequences and the bare batch
constexpr int kTurns = 3;     // turns per sequence
constexpr int kMinAppend = 30, kMaxAppend = 100;
constexpr int kMinNew = 4, kMaxNew = 16;
constexpr int kCapacity = 512;        // tokens per sequence (kTurns turns need at most 348)
constexpr int kBatchTokens = 4096;    // learner.batch_tokens
constexpr int32_t kAnswerEnd = '\n';  // the compact style's answer end, a byte token
constexpr int64_t kWarmupSteps = 40, kWindowSteps = 60;  // worker steps (see MeasureWorker)

int Uniform(int lo, int hi, std::mt19937_64& rng) {
  return std::uniform_int_distribution<int>(lo, hi)(rng);
}

// Wall-clock and CPU seconds (this process, all threads). On a machine shared with other work
// the CPU seconds are the steadier measure: they do not count the time other processes held the
// cores; the wall-clock seconds also count this process's waiting (clients, locks, wake-ups).
struct Span {
  double wall = 0, cpu = 0;
  Span& operator+=(const Span& o) {
    wall += o.wall;
    cpu += o.cpu;
    return *this;
  }
};

double ProcessCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}

class Stopwatch {
 public:
  Stopwatch() : wall_(Clock::now()), cpu_(ProcessCpuSeconds()) {}
  Span Elapsed() const {
    return {std::chrono::duration<double>(Clock::now() - wall_).count(),
            ProcessCpuSeconds() - cpu_};
  }

 private:
  Clock::time_point wall_;
  double cpu_;
};

// Tokens of the byte tokenizer other than the answer end.
std::vector<int32_t> RandomTokens(int n, std::mt19937_64& rng) {
  std::vector<int32_t> tokens(n);
  for (int32_t& t : tokens) {
    do {
      t = Uniform(0, kByteTokenizerVocab - 1, rng);
    } while (t == kAnswerEnd);
  }
  return tokens;
}

TransformerConfig Shape(int layers, int d_model) {
  TransformerConfig c;
  c.layers = layers;
  c.d_model = d_model;
  c.heads = 4;
  c.kv_heads = 2;
  c.d_ff = 4 * d_model;
  c.vocab = kByteTokenizerVocab;
  c.max_seq_len = kCapacity;
  c.tie_embeddings = true;
  return c;
}

int64_t ParameterCount(const TransformerConfig& config) {
  int64_t n = 0;
  for (const ExpectedTensor& t : ExpectedTensors(config)) {
    int64_t size = 1;
    for (int64_t d : t.shape) size *= d;
    n += size;
  }
  return n;
}

Transformer NewModel(const TransformerConfig& config) {
  absl::StatusOr<Transformer> model = Transformer::Create(config, /*seed=*/1);
  if (!model.ok()) {
    std::fprintf(stderr, "model: %s\n", model.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(model);
}

// ---------------------------------------------------------------------------------------------
// Generation through the worker.

// What the worker completed in the measured window.
struct WorkerFigures {
  int64_t generated = 0, prefilled = 0, steps = 0;
  Span time;
  double steps_inside = 0, steps_outside = 0;  // per request, over the whole run
};

struct Counters {
  std::atomic<int64_t> generated{0}, prefill{0}, steps{0};
  // Over the requests completed: worker steps from a Submit to the client holding the result,
  // and from there to the client's next Submit (where a batch's places go).
  std::atomic<int64_t> turns{0}, steps_inside{0}, steps_outside{0};
  std::atomic<bool> stop{false};
};

// One client: sequences of kTurns turns until told to stop.
void Client(GenerationWorker& worker, Counters& counters, uint64_t seed) {
  std::mt19937_64 rng(seed);
  int64_t returned = -1;  // the step count when the last result came back
  while (!counters.stop) {
    absl::StatusOr<std::vector<int64_t>> ids = worker.Open(1, absl::Seconds(60));
    if (!ids.ok()) return;
    for (int turn = 0; turn < kTurns && !counters.stop; ++turn) {
      GenerationRequest request;
      request.sequence = ids->front();
      request.append = RandomTokens(Uniform(kMinAppend, kMaxAppend, rng), rng);
      request.max_new_tokens = Uniform(kMinNew, kMaxNew, rng);
      request.seed = rng();
      const int64_t appended = static_cast<int64_t>(request.append.size());
      const int64_t submitted = counters.steps;
      absl::StatusOr<GenerationResult> result = worker.Generate(std::move(request));
      if (!result.ok()) {
        if (!counters.stop)
          std::fprintf(stderr, "generate: %s\n", result.status().ToString().c_str());
        return;
      }
      counters.generated += static_cast<int64_t>(result->tokens.size());
      counters.prefill += appended;
      if (returned >= 0) {
        ++counters.turns;
        counters.steps_outside += submitted - returned;
        returned = counters.steps;
        counters.steps_inside += returned - submitted;
      } else {
        returned = counters.steps;
      }
    }
    worker.Release(ids->front());
  }
}

// Waits until the worker has run `steps` steps in all.
void WaitForSteps(const Counters& counters, int64_t steps) {
  while (counters.steps < steps) std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

// The worker under kClients clients, over a window of `seconds` and at least kWindowSteps steps,
// after kWarmupSteps steps (the clients start together, and their turns drift apart over a few
// turns; the larger model's steps take ~0.1 s).
WorkerFigures MeasureWorker(const TransformerConfig& config, double seconds, uint64_t seed) {
  Counters counters;
  GenerationWorkerOptions options;
  options.max_batch = kClients;
  options.sequence_capacity = kCapacity;
  options.kv_cache_tokens = int64_t{kClients} * kCapacity;
  options.after_step = [&](int64_t) { ++counters.steps; };
  auto worker = GenerationWorker::Create(NewModel(config), options);
  if (!worker.ok()) std::exit(1);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back(Client, std::ref(**worker), std::ref(counters), seed * 1000 + i);
  }
  WaitForSteps(counters, kWarmupSteps);
  WorkerFigures f{
      .generated = -counters.generated, .prefilled = -counters.prefill, .steps = -counters.steps};
  const Stopwatch window;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  WaitForSteps(counters, kWarmupSteps + kWindowSteps);
  f.generated += counters.generated;
  f.prefilled += counters.prefill;
  f.steps += counters.steps;
  f.steps_inside =
      static_cast<double>(counters.steps_inside) / std::max<int64_t>(1, counters.turns);
  f.steps_outside =
      static_cast<double>(counters.steps_outside) / std::max<int64_t>(1, counters.turns);
  f.time = window.Elapsed();
  counters.stop = true;
  (*worker)->Stop();
  for (std::thread& c : clients) c.join();
  return f;
}

// ---------------------------------------------------------------------------------------------
// The bare model: batched prefill and decode steps of 64 sequences, no worker, no threads.

struct BareTurn {
  int context = 0;  // tokens cached before the turn: the sequence's earlier turns
  int append = 0;
  int generate = 0;
};

// A turn of a client's sequence, drawn as the clients draw them, at a uniformly chosen turn index.
BareTurn DrawTurn(std::mt19937_64& rng) {
  BareTurn t;
  const int index = Uniform(0, kTurns - 1, rng);
  for (int i = 0; i <= index; ++i) {
    t.append = Uniform(kMinAppend, kMaxAppend, rng);
    t.generate = Uniform(kMinNew, kMaxNew, rng);
    if (i < index) t.context += t.append + t.generate;
  }
  return t;
}

// The prefill groupings the bare model tries (sequences per Extend call, in order of appended
// length, so that a group pads little); the ceiling takes the fastest.
constexpr int kPrefillGroups[] = {kClients, 8, 1};

// Tokens the bare model prefilled and decoded, and the time each took (the prefill's at its
// fastest grouping, and at each).
struct BareFigures {
  int64_t prefilled = 0, decoded = 0;
  Span prefill, decode;
  std::vector<Span> prefill_by_group = std::vector<Span>(std::size(kPrefillGroups));
};

torch::Tensor ExtendOrDie(const Transformer& model, KvCache& cache,
                          const std::vector<SequenceChunk>& chunks) {
  absl::StatusOr<torch::Tensor> logits = model.Extend(cache, chunks);
  if (!logits.ok()) {
    std::fprintf(stderr, "extend: %s\n", logits.status().ToString().c_str());
    std::exit(1);
  }
  return *std::move(logits);
}

// The time to prefill `append[i]` onto slot i's cached context, `group` consecutive slots per
// call. The cache is left as it was.
Span PrefillTime(const Transformer& model, KvCache& cache,
                 const std::vector<std::vector<int32_t>>& append, int group) {
  std::vector<int> before(kClients);
  for (int i = 0; i < kClients; ++i) before[i] = cache.Length(i);
  const Stopwatch watch;
  for (int first = 0; first < kClients; first += group) {
    std::vector<SequenceChunk> chunks;
    for (int i = first; i < std::min(kClients, first + group); ++i)
      chunks.push_back({i, append[i]});
    ExtendOrDie(model, cache, chunks);
  }
  const Span time = watch.Elapsed();
  for (int i = 0; i < kClients; ++i) {
    if (!cache.Truncate(i, before[i]).ok()) std::exit(1);
  }
  return time;
}

// The time of `steps` decode steps of one token for each of the 64 slots, after `logits` (those
// that follow each slot's context).
Span DecodeTime(const Transformer& model, KvCache& cache, torch::Tensor logits, int steps) {
  std::vector<int32_t> next(kClients);
  std::vector<SequenceChunk> chunks(kClients);
  const Stopwatch watch;
  for (int s = 0; s < steps; ++s) {
    torch::Tensor ids = logits.argmax(-1).to(torch::kInt32).contiguous();
    std::copy_n(ids.data_ptr<int32_t>(), kClients, next.begin());
    for (int i = 0; i < kClients; ++i) chunks[i] = {i, std::span<const int32_t>(&next[i], 1)};
    logits = ExtendOrDie(model, cache, chunks);
  }
  return watch.Elapsed();
}

// `repeats` times: 64 sequences, each at a turn drawn as the clients draw them, get their earlier
// turns' context (not timed); then the turn's appended tokens are prefilled (the fastest of
// kPrefillGroups), and all 64 decode as many steps as the turns' mean answer length (every step
// a full batch, as the worker's running batch is at best).
BareFigures MeasureBare(const Transformer& model, int repeats, uint64_t seed) {
  std::mt19937_64 rng(seed);
  KvCache cache = *KvCache::Create(model.config(), kClients, kCapacity);
  BareFigures f;
  for (int r = 0; r < repeats; ++r) {
    std::vector<BareTurn> turns(kClients);
    for (BareTurn& t : turns) t = DrawTurn(rng);
    std::sort(turns.begin(), turns.end(),
              [](const BareTurn& a, const BareTurn& b) { return a.append < b.append; });
    std::vector<std::vector<int32_t>> context(kClients), append(kClients);
    std::vector<SequenceChunk> chunks;
    int steps = 0;
    for (int i = 0; i < kClients; ++i) {
      cache.Release(i);
      if (*cache.Allocate() != i) std::exit(1);
      context[i] = RandomTokens(std::max(1, turns[i].context), rng);
      append[i] = RandomTokens(turns[i].append, rng);
      f.prefilled += turns[i].append;
      steps += turns[i].generate;
      chunks.push_back({i, context[i]});
    }
    steps /= kClients;
    ExtendOrDie(model, cache, chunks);
    Span best{1e30, 1e30};
    for (size_t g = 0; g < std::size(kPrefillGroups); ++g) {
      const Span t = PrefillTime(model, cache, append, kPrefillGroups[g]);
      f.prefill_by_group[g] += t;
      best = {std::min(best.wall, t.wall), std::min(best.cpu, t.cpu)};
    }
    f.prefill += best;
    for (int i = 0; i < kClients; ++i) chunks[i].tokens = append[i];
    f.decode += DecodeTime(model, cache, ExtendOrDie(model, cache, chunks), steps);
    f.decoded += int64_t{steps} * kClients;
  }
  return f;
}

// ---------------------------------------------------------------------------------------------
// Training.

// A two-seat text-game episode: each seat plays kTurns turns on its own growing context; a turn
// records the seat's whole context before the answer and the answer, ending at the answer end.
v1::Trajectory TextEpisode(std::mt19937_64& rng) {
  v1::Trajectory e;
  e.set_game("tictactoe");
  e.set_opponent_id("latest");
  std::vector<int32_t> context[2];
  for (int turn = 0; turn < 2 * kTurns; ++turn) {
    const int seat = turn % 2;
    std::vector<int32_t> prompt = RandomTokens(Uniform(kMinAppend, kMaxAppend, rng), rng);
    context[seat].insert(context[seat].end(), prompt.begin(), prompt.end());
    std::vector<int32_t> answer = RandomTokens(Uniform(kMinNew, kMaxNew, rng) - 1, rng);
    answer.push_back(kAnswerEnd);
    v1::Turn* t = e.add_turns();
    t->set_seat(seat);
    for (int32_t id : context[seat]) t->add_observation_tokens(id);
    for (int32_t id : answer) {
      t->add_action_tokens(id);
      t->add_behaviour_log_probs(-5.5f);
    }
    context[seat].insert(context[seat].end(), answer.begin(), answer.end());
  }
  const float winner = std::uniform_int_distribution<int>(0, 1)(rng) == 0 ? 1.f : -1.f;
  e.add_returns(winner);
  e.add_returns(-winner);
  e.add_learning_seats(0);
  e.add_learning_seats(1);
  return e;
}

// `episodes` packed into batches by tokens, as the learner packs what the replay gives.
std::vector<std::vector<const v1::Trajectory*>> PackByTokens(
    const std::vector<v1::Trajectory>& episodes) {
  std::vector<std::vector<const v1::Trajectory*>> batches(1);
  TokenBudget budget(kBatchTokens);
  for (const v1::Trajectory& e : episodes) {
    if (!budget.Take(EpisodeTokens(e))) {
      batches.emplace_back();
      budget = TokenBudget(kBatchTokens);
      budget.Take(EpisodeTokens(e));
    }
    batches.back().push_back(&e);
  }
  if (budget.tokens() < kBatchTokens / 2 && batches.size() > 1) batches.pop_back();
  return batches;
}

JobConfig LearnerJob(const TransformerConfig& shape) {
  JobConfig config;
  config.seed = 1;
  config.game.name = "tictactoe";
  config.policy.kind = "transformer";
  config.policy.transformer = shape;
  config.policy.tokenizer = "byte";
  config.policy.prompt = "compact";
  config.learner.algorithm = "reinforce_rae";
  config.learner.learning_rate = 1e-4;
  config.learner.batch_tokens = kBatchTokens;
  return config;
}

int64_t RealTokens(const TokenBatch& batch) { return batch.lengths.sum().item<int64_t>(); }

// Tokens trained and the time they took.
struct TrainFigures {
  int64_t tokens = 0;
  Span time;
};

// `steps` learner steps (after an untimed one), cycling through `batches`.
TrainFigures LearnerTraining(const TransformerConfig& shape,
                             const std::vector<std::vector<const v1::Trajectory*>>& batches,
                             int steps) {
  auto learner = TokenPolicyLearner::Create(LearnerJob(shape), torch::kCPU);
  if (!learner.ok()) {
    std::fprintf(stderr, "learner: %s\n", learner.status().ToString().c_str());
    std::exit(1);
  }
  prometheus::Registry registry;
  TrainerMetrics metrics(registry);
  torch::optim::Adam adam((*learner)->Parameters(), torch::optim::AdamOptions(1e-4));
  GuardedOptimiser guard((*learner)->Parameters(), adam, nullptr, metrics);
  LossOptions options;
  options.entropy_coef = 0.01;
  (*learner)->Begin();
  TrainFigures f;
  std::optional<Stopwatch> watch;
  for (int i = -1; i < steps; ++i) {
    if (i == 0) watch.emplace();
    if (!(*learner)->SetBatch(batches[(i + 1) % batches.size()]).ok()) std::exit(1);
    (*learner)->PrepareBatch();
    auto outcome = guard.Update((*learner)->Loss(options).loss);
    if (!outcome.ok() || *outcome != GuardedOptimiser::Outcome::kApplied) std::exit(1);
    (*learner)->AfterUpdate();
    (*learner)->AfterStep(i + 2);
    if (i >= 0) f.tokens += RealTokens((*learner)->batch());
  }
  f.time = watch->Elapsed();
  return f;
}

// The bare step: forward, mean negative log-likelihood of the action tokens, backward, Adam.
void BareTrainStep(const Transformer& model, torch::optim::Adam& adam, const TokenBatch& batch) {
  adam.zero_grad();
  torch::Tensor logits = *model.Forward(batch.tokens, batch.lengths);
  const int64_t t = batch.tokens.size(1);
  torch::Tensor log_probs = torch::log_softmax(logits.narrow(1, 0, t - 1), -1)
                                .gather(-1, batch.tokens.narrow(1, 1, t - 1).unsqueeze(-1))
                                .squeeze(-1);
  torch::Tensor mask = batch.action_mask.narrow(1, 1, t - 1);
  (-(log_probs * mask).sum() / mask.sum()).backward();
  adam.step();
}

// The same for the bare step on the batches already built.
TrainFigures BareTraining(const TransformerConfig& shape, const std::vector<TokenBatch>& batches,
                          int steps) {
  Transformer model = NewModel(shape);
  torch::optim::Adam adam(model.parameters(), torch::optim::AdamOptions(1e-4));
  TrainFigures f;
  std::optional<Stopwatch> watch;
  for (int i = -1; i < steps; ++i) {
    if (i == 0) watch.emplace();
    const TokenBatch& batch = batches[(i + 1) % batches.size()];
    BareTrainStep(model, adam, batch);
    if (i >= 0) f.tokens += RealTokens(batch);
  }
  f.time = watch->Elapsed();
  return f;
}

std::vector<TokenBatch> BuildBatches(
    const std::vector<std::vector<const v1::Trajectory*>>& batches) {
  RoleBaselines baselines(0.95);
  TokenBatchOptions options;
  options.answer_ended = [](const v1::Turn& t) {
    return t.action_tokens(t.action_tokens_size() - 1) == static_cast<uint32_t>(kAnswerEnd);
  };
  options.vocab = kByteTokenizerVocab;
  options.max_seq_len = kCapacity;
  std::vector<TokenBatch> built;
  for (const auto& episodes : batches)
    built.push_back(*BuildTokenBatch(episodes, baselines, options));
  return built;
}

// ---------------------------------------------------------------------------------------------

int FlagInt(int argc, char** argv, const std::string& name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

// One round's figures of one model: rates in tokens per wall-clock second and per CPU second.
struct Rates {
  double wall = 0, cpu = 0;
};
Rates PerSecond(double tokens, const Span& time) { return {tokens / time.wall, tokens / time.cpu}; }
Rates Ratio(const Rates& a, const Rates& b) { return {a.wall / b.wall, a.cpu / b.cpu}; }

struct Round {
  Rates generated, prefilled, ceiling, generation_ratio;
  double decode_batch = 0;
  Rates bare_decode, bare_prefill;
  Rates learner, bare_train, training_ratio;
};

void MeasureGeneration(const TransformerConfig& shape, const Transformer& bare_model,
                       double seconds, uint64_t seed, Round& round) {
  const WorkerFigures w = MeasureWorker(shape, seconds, seed);
  const BareFigures b = MeasureBare(bare_model, 2, seed);
  round.generated = PerSecond(w.generated, w.time);
  round.prefilled = PerSecond(w.prefilled, w.time);
  round.decode_batch = w.steps > 0 ? static_cast<double>(w.generated) / w.steps : 0;
  round.bare_decode = PerSecond(b.decoded, b.decode);
  round.bare_prefill = PerSecond(b.prefilled, b.prefill);
  // The bare model's time for the window's work: its generated and its prefilled tokens.
  auto bare_time = [&](double Span::*clock) {
    return w.generated * (b.decode.*clock / b.decoded) +
           w.prefilled * (b.prefill.*clock / b.prefilled);
  };
  const Span bare{bare_time(&Span::wall), bare_time(&Span::cpu)};
  round.ceiling = PerSecond(w.generated, bare);
  round.generation_ratio = Ratio(round.generated, round.ceiling);
  std::printf(
      "  round %llu: worker %.0f generated/cpu-s, %.0f prefilled/cpu-s, batch %.1f; bare "
      "prefill/cpu-s",
      static_cast<unsigned long long>(seed), round.generated.cpu, round.prefilled.cpu,
      round.decode_batch);
  for (size_t g = 0; g < std::size(kPrefillGroups); ++g) {
    std::printf(" %.0f (by %d)", b.prefilled / b.prefill_by_group[g].cpu, kPrefillGroups[g]);
  }
  std::printf(", decode/cpu-s %.0f; steps per request in the worker %.1f, at the client %.1f\n",
              round.bare_decode.cpu, w.steps_inside, w.steps_outside);
}

void MeasureTraining(const TransformerConfig& shape,
                     const std::vector<std::vector<const v1::Trajectory*>>& episode_batches,
                     const std::vector<TokenBatch>& token_batches, int steps, Round& round) {
  const TrainFigures l = LearnerTraining(shape, episode_batches, steps);
  const TrainFigures b = BareTraining(shape, token_batches, steps);
  round.learner = PerSecond(l.tokens, l.time);
  round.bare_train = PerSecond(b.tokens, b.time);
  round.training_ratio = Ratio(round.learner, round.bare_train);
}

// The median over rounds of each figure.
Round Medians(const std::vector<Round>& rounds) {
  auto median = [&](Rates Round::*field) {
    std::vector<double> wall, cpu;
    for (const Round& r : rounds) {
      wall.push_back((r.*field).wall);
      cpu.push_back((r.*field).cpu);
    }
    return Rates{bench::Median(wall), bench::Median(cpu)};
  };
  Round m;
  for (Rates Round::*field : {&Round::generated, &Round::prefilled, &Round::ceiling,
                              &Round::generation_ratio, &Round::bare_decode, &Round::bare_prefill,
                              &Round::learner, &Round::bare_train, &Round::training_ratio}) {
    m.*field = median(field);
  }
  std::vector<double> batch;
  for (const Round& r : rounds) batch.push_back(r.decode_batch);
  m.decode_batch = bench::Median(batch);
  return m;
}

nlohmann::json ToJson(const Rates& r) { return {{"wall", r.wall}, {"cpu", r.cpu}}; }

nlohmann::json ToJson(const Round& m) {
  return {{"generated_tokens_s", ToJson(m.generated)},
          {"prefill_tokens_s", ToJson(m.prefilled)},
          {"mean_decode_batch", m.decode_batch},
          {"bare_decode_tokens_s", ToJson(m.bare_decode)},
          {"bare_prefill_tokens_s", ToJson(m.bare_prefill)},
          {"ceiling_generated_tokens_s", ToJson(m.ceiling)},
          {"generation_ratio", ToJson(m.generation_ratio)},
          {"learner_tokens_s", ToJson(m.learner)},
          {"bare_train_tokens_s", ToJson(m.bare_train)},
          {"training_ratio", ToJson(m.training_ratio)}};
}

// The models of `--models L1xW1,L2xW2` (layers x width); by default 2x128 and 4x256.
std::vector<std::pair<int, int>> Models(int argc, char** argv) {
  std::string list = "2x128,4x256";
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--models") list = argv[i + 1];
  }
  std::vector<std::pair<int, int>> models;
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    int layers = 0, width = 0;
    if (std::sscanf(item.c_str(), "%dx%d", &layers, &width) != 2) {
      std::fprintf(stderr, "--models: '%s' is not LAYERSxWIDTH\n", item.c_str());
      std::exit(2);
    }
    models.emplace_back(layers, width);
  }
  return models;
}

// `--only generation|training`: one part; both by default.
std::string Only(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--only") return argv[i + 1];
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = FlagInt(argc, argv, "rounds", 3);
  const int seconds = FlagInt(argc, argv, "seconds", 2);
  const int steps = FlagInt(argc, argv, "steps", 2);
  const std::string only = Only(argc, argv);
  SetComputeThreads(1);
  torch::manual_seed(1);
  const std::string load_before = LoadAverage();

  std::mt19937_64 rng(5);
  std::vector<v1::Trajectory> episodes;
  for (int i = 0; i < 64; ++i) episodes.push_back(TextEpisode(rng));
  const auto episode_batches = PackByTokens(episodes);
  const std::vector<TokenBatch> token_batches = BuildBatches(episode_batches);

  std::printf(
      "generation_bench: %d clients x %d turns (append %d-%d, generate %d-%d tokens), %d s "
      "windows; training batches of <= %d tokens; %d rounds, 1 LibTorch thread, BLAS %s\n",
      kClients, kTurns, kMinAppend, kMaxAppend, kMinNew, kMaxNew, seconds, kBatchTokens, rounds,
      BlasLibrary().c_str());
  std::printf("load average before: %s\n", load_before.c_str());
  std::printf("%-9s %6s %-4s | %8s %9s %5s %9s %9s %8s %6s | %8s %8s %6s\n", "model", "params",
              "per", "gen/s", "prefill/s", "batch", "bare dec", "bare pre", "ceiling", "ratio",
              "learn/s", "bare/s", "ratio");
  nlohmann::json runs = nlohmann::json::array();
  for (auto [layers, width] : Models(argc, argv)) {
    const TransformerConfig shape = Shape(layers, width);
    const Transformer bare_model = NewModel(shape);
    std::vector<Round> all(rounds);
    // Interleaved, so that load on the machine hits each measure and its ceiling alike.
    for (int r = 0; r < rounds; ++r) {
      if (only != "training") MeasureGeneration(shape, bare_model, seconds, r + 1, all[r]);
      if (only != "generation") {
        MeasureTraining(shape, episode_batches, token_batches, steps, all[r]);
      }
    }
    const Round m = Medians(all);
    const std::string name = std::to_string(layers) + "x" + std::to_string(width);
    const int64_t params = ParameterCount(shape);
    for (double Rates::*clock : {&Rates::wall, &Rates::cpu}) {
      std::printf(
          "%-9s %5.1fM %-4s | %8.0f %9.0f %5.1f %9.0f %9.0f %8.0f %6.3f | %8.0f %8.0f %6.3f\n",
          name.c_str(), params / 1e6, clock == &Rates::wall ? "wall" : "cpu", m.generated.*clock,
          m.prefilled.*clock, m.decode_batch, m.bare_decode.*clock, m.bare_prefill.*clock,
          m.ceiling.*clock, m.generation_ratio.*clock, m.learner.*clock, m.bare_train.*clock,
          m.training_ratio.*clock);
    }
    nlohmann::json run = ToJson(m);
    run.update({{"model", name}, {"layers", layers}, {"d_model", width}, {"parameters", params}});
    runs.push_back(run);
  }
  const std::string load_after = LoadAverage();
  std::printf(
      "per wall: tokens per wall-clock second; per cpu: per CPU second of this process (all its "
      "threads).\nbatch: generated tokens per worker step. ceiling: the generated tokens/s of "
      "the bare model doing the same prefill and decode work. Goals: generation ratio >= 0.7, "
      "training ratio >= 0.9\n");
  std::printf("load average after: %s\n", load_after.c_str());
  nlohmann::json out = {{"generation_goal_ratio", 0.7},
                        {"training_goal_ratio", 0.9},
                        {"clients", kClients},
                        {"turns", kTurns},
                        {"batch_tokens", kBatchTokens},
                        {"rounds", rounds},
                        {"blas", BlasLibrary()},
                        {"load_average_before", load_before},
                        {"load_average_after", load_after},
                        {"runs", runs}};
  if (std::string path = bench::JsonPath(argc, argv); !path.empty()) bench::WriteJson(path, out);
  return 0;
}
