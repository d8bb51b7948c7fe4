// The job spec: one YAML file per training job (configs/*.yaml). Every key is optional unless
// noted and has the default shown here; unknown keys, wrong types, out-of-range values and
// unknown games are errors that name the file, line and key.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/games/game.h"
#include "common/lm/model_config.h"

namespace rally {

struct GameConfig {
  std::string name;       // required; a registered game
  GameParameters params;  // over the game's defaults (`game: {name: N, params: {key: value}}`)
};

// The policy the job trains (docs/lm.md for language models).
struct PolicyConfig {
  std::string kind = "mlp";              // mlp | transformer
  std::vector<int> hidden = {128, 128};  // mlp: hidden layer widths
  // transformer: a decoder-only language model that plays the game as text
  // (common/games/text_game.h). Its shape comes from the keys of TransformerConfig (layers,
  // d_model, heads, kv_heads, head_dim, d_ff, vocab, max_seq_len, rope_theta, rms_norm_eps,
  // tie_embeddings, qk_norm, attention_bias), or from a Hugging Face directory `from`, whose
  // weights then start the training (no size keys beside it).
  TransformerConfig transformer;
  std::string from;
  // "byte" (common/lm/tokenizer.h's byte tokenizer, 259 ids), "game" (the byte tokenizer plus one
  // token per canonical answer of the game, common/lm/game_tokenizer.h; needs `vocab`) or a
  // tokenizer.json file; default: `from`'s tokenizer.json when it has one, else "byte".
  std::string tokenizer;
  std::string prompt = "compact";  // compact | spiral (common/games/text_game.h)
  // Sampling of the behaviour policy: temperature (0: greedy), nucleus top_p (1: off), top_k (0:
  // off); each turn's answer is at most max_new_tokens tokens, then cut (an invalid answer).
  double temperature = 1.0;
  double top_p = 1.0;
  int top_k = 0;
  int max_new_tokens = 16;
  // Answers after which an unfinished text game is a draw; 0: only the game's own limit.
  int max_turns = 0;
  bool is_transformer() const { return kind == "transformer"; }
};

struct ActorsConfig {
  int count = 1;                // actor processes
  int envs_per_actor = 64;      // environments each actor runs at once
  int threads = 2;              // environment-stepping threads per actor
  int max_batch = 64;           // inference batch cap B
  int batch_timeout_us = 1000;  // how long a partial batch waits for more requests
  // policy.kind transformer: the inference worker's KV cache holds at most this many tokens over
  // all the sequences it generates for (its memory bound); 0: envs_per_actor x max_seq_len.
  long kv_cache_tokens = 0;
  // Share of episodes played against each fixed opponent (the policy in one seat, alternating);
  // the rest is self-play. Shares sum to at most 1. Any opponent but "random" breaks the
  // self-play rule (IsSelfPlayOpponent): allowed, with a warning.
  std::map<std::string, double> opponents;
};

// One replay table (Reverb's semantics; docs/replay.md).
struct ReplayTableConfig {
  std::string name = "selfplay";
  std::string sampler = "fifo";  // fifo | lifo | uniform | prioritized | max_heap | min_heap
  std::string remover = "fifo";
  long max_size = 4096;                       // items
  long max_bytes = 1L << 30;                  // serialized trajectory bytes
  int max_times_sampled = 1;                  // 0: unlimited
  double priority_exponent = 1.0;             // prioritized: P ~ priority^exponent
  double importance_sampling_exponent = 1.0;  // beta of the IS weights returned with samples
  long max_staleness = 0;                     // policy versions; 0: no bound
  // Rate limiter: "queue" (each item sampled once, inserts wait while max_size are held),
  // "min_size" (sample once min_size_to_sample items are held), or "ratio" (Reverb's
  // SampleToInsertRatio: samples_per_insert with an error buffer).
  std::string rate_limiter = "queue";
  double samples_per_insert = 1.0;
  long min_size_to_sample = 1;
  double error_buffer = 100;
};

struct ReplayConfig {
  std::vector<ReplayTableConfig> tables = {ReplayTableConfig()};
  std::string fsync = "every_batch";  // every_batch | interval | never
  int fsync_interval_ms = 100;
  double snapshot_every_seconds = 30;
};

// A value annealed linearly from `initial` to `final_value` over `decay_steps` learner steps, then
// held; constant `initial` when final_value < 0 or decay_steps is 0.
struct LinearSchedule {
  double initial = 0;
  double final_value = -1;
  long decay_steps = 0;
  double At(long step) const;
};

struct LearnerConfig {
  // reinforce_rae | ppo | vtrace. For policy.kind transformer, vtrace is V-trace per turn (a
  // turn's answer is one action, its importance weight the product of its tokens') with a value
  // head the learner keeps on the model's last prompt token (docs/lm.md, "Value baseline and
  // magnet"); value_coef, discount, vtrace_lambda and vtrace_c_bar apply as for an MLP.
  std::string algorithm = "reinforce_rae";
  std::string table;  // replay table to sample; default: the first table
  int batch_episodes = 128;
  // policy.kind transformer: a batch is packed by tokens (prompt and generated) rather than by
  // episodes: whole episodes are added until the next would pass this many tokens.
  long batch_tokens = 8192;
  // policy.kind transformer: whether an answer cut at policy.max_new_tokens before its end is left
  // out of the loss (SPIRAL's choice, for long reasoning cut by its budget) or trained on like
  // any other forfeit. A model trained from scratch with a short budget needs false: otherwise
  // rambling past the budget is a forfeit that no gradient ever pushes down.
  bool mask_cut_answers = true;
  int epochs_per_batch = 1;  // optimiser steps on each sampled batch
  // What a seat's episode is worth to the learner: "return", the game's return; "win", 1 for a
  // positive return and 0 otherwise (the win rate: a draw is worth no more than a loss).
  std::string objective = "return";
  double learning_rate = 1e-3;
  double learning_rate_final = -1;     // < 0: constant learning_rate
  long learning_rate_decay_steps = 0;  // linear decay from learning_rate to learning_rate_final
  double entropy_coef = 0.01;          // entropy bonus at step 0
  double entropy_coef_final = -1;      // < 0: constant entropy_coef
  long entropy_decay_steps = 0;        // linear decay from entropy_coef to entropy_coef_final
  double baseline_decay = 0.95;        // RAE: b <- decay * b + (1 - decay) * R
  double importance_weight_cap = 1;    // truncation rho_bar of pi/mu; 0 turns the correction off
  double clip_epsilon = 0.2;           // ppo: r clipped to [1 - eps, 1 + eps]
  double value_coef = 0.5;             // vtrace: weight of the value loss
  double discount = 1.0;               // vtrace: gamma, in (0, 1]
  double vtrace_lambda = 1.0;          // vtrace: c_t = lambda * min(c_bar, pi/mu), in [0, 1]
  double vtrace_c_bar = 1.0;           // vtrace: trace truncation c_bar; 0 turns it off
  double kl_coef = 0;                  // weight of KL(pi || reference policy)
  long kl_reference_update_steps = 0;  // 0: the step-0 policy stays the reference; N: every N
  double magnet_coef = 0;              // magnetic mirror descent: weight of KL(pi || magnet)
  double magnet_coef_final = -1;       // < 0: constant magnet_coef
  long magnet_decay_steps = 0;         // linear decay from magnet_coef to magnet_coef_final
  // uniform (over legal actions) | ema (of the parameters). A transformer's magnet is uniform
  // over the legal moves' answers, at the answer's first token, and needs policy.tokenizer game
  // (each answer one token).
  std::string magnet = "uniform";
  double magnet_ema_decay = 0.99;  // ema: magnet <- decay * magnet + (1 - decay) * policy
  int publish_every_steps = 1;
  long checkpoint_every_steps = 500;
  int keep_checkpoints = 3;  // the newest N stay on disk
  // Snapshot pool of the weight service (opponents for curriculum.opponent_selection uniform or
  // pfsp): every m-th published version is kept, the newest snapshot_pool_size of them.
  long snapshot_every_versions = 0;  // 0: no pool
  int snapshot_pool_size = 20;
  std::string device = "auto";  // auto | cpu | cuda:N

  LinearSchedule learning_rate_schedule() const {
    return {learning_rate, learning_rate_final, learning_rate_decay_steps};
  }
  LinearSchedule entropy_coef_schedule() const {
    return {entropy_coef, entropy_coef_final, entropy_decay_steps};
  }
  LinearSchedule magnet_coef_schedule() const {
    return {magnet_coef, magnet_coef_final, magnet_decay_steps};
  }
};

struct EvaluationConfig {
  int games = 1000;  // per opponent per round, seats alternated
  double every_seconds = 10;
  bool greedy = false;  // argmax instead of sampling from the policy
  std::vector<std::string> opponents = {"random", "perfect"};
  // > 0: each round the policy also plays this many games against every snapshot in the
  // learner's pool, and Elo ratings are fitted over the job's league (its evaluated versions,
  // the snapshots and the fixed opponents; "random" rated 0 when it plays).
  int league_games = 0;
};

// What actors play next (docs/replay.md): opponent selection over the snapshot pool and task
// selection by learnability. Served by rally-replay's CurriculumService.
struct CurriculumConfig {
  long window = 200;                          // episodes kept per (task, opponent)
  std::string opponent_selection = "latest";  // latest | uniform | pfsp
  std::string pfsp_weighting = "hard";        // hard: (1 - x)^p | variance: x (1 - x)
  double pfsp_exponent = 2.0;
  double self_play_share = 0.0;  // chance of the latest policy whatever the mode says
  double prior_win_rate = 0.5;
  double task_floor = 0.1;
  double prior_success_rate = 0.5;
  std::vector<std::string> tasks;  // game variants; empty: the default game only
};

struct StopConfig {
  double max_wall_seconds = 900;  // 0: no limit
  long max_learner_steps = 0;     // 0: no limit
};

// Target against one opponent; the job succeeds when every opponent's target holds in one
// evaluation round.
struct OpponentTarget {
  std::optional<long> max_losses;
  std::optional<double> min_win_rate;
  std::optional<double> max_exploitability;  // for the exact "best_response" evaluation
};

struct JobConfig {
  std::string source;  // file name the spec came from, for messages
  // DESIGN.md, "Self-play rule": true when every training opponent comes from the job itself
  // (the policy, its snapshots, uniform random play); false when actors.opponents gives a share
  // to a solver, a heuristic or any other evaluation opponent. Such a job still runs, but its
  // result is not a self-play result: `rally run` reports `"self_play": false`.
  bool self_play = true;
  // Problems that do not stop the job, one per line, each naming the file, line and key (as
  // errors do). ParseJobConfig fills them; callers show them to the user.
  std::vector<std::string> warnings;
  std::string name;
  long seed = 1;
  GameConfig game;
  PolicyConfig policy;
  ActorsConfig actors;
  ReplayConfig replay;
  LearnerConfig learner;
  EvaluationConfig evaluation;
  CurriculumConfig curriculum;
  StopConfig stop;
  std::map<std::string, OpponentTarget> target;  // by opponent name
};

// The self-play rule for one fixed training opponent (actors.opponents): only uniform random play
// comes from no one outside the job. "perfect" (an exact solver), "alpha_beta_D" (search with a
// hand-written evaluation), "trader" (a hand-written heuristic) and every other opponent are held
// out for evaluation.
bool IsSelfPlayOpponent(const std::string& name);

// Parses and validates a spec; `source` names it in messages (usually the file path).
absl::StatusOr<JobConfig> ParseJobConfig(const std::string& yaml_text, const std::string& source);
absl::StatusOr<JobConfig> LoadJobConfig(const std::string& path);

}  // namespace rally
