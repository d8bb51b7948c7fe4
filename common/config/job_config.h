// The job spec: one YAML file per training job (configs/*.yaml). Every key is optional unless
// noted and has the default shown here; unknown keys, wrong types, out-of-range values and
// unknown games are errors that name the file, line and key.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rally {

struct GameConfig {
  std::string name;  // required; a registered game
};

struct PolicyConfig {
  std::vector<int> hidden = {128, 128};  // MLP hidden layer widths
};

struct ActorsConfig {
  int count = 1;                // actor processes
  int envs_per_actor = 64;      // environments each actor runs at once
  int threads = 2;              // environment-stepping threads per actor
  int max_batch = 64;           // inference batch cap B
  int batch_timeout_us = 1000;  // how long a partial batch waits for more requests
  // Share of episodes played against each fixed opponent (the policy in one seat, alternating);
  // the rest is self-play. Shares sum to at most 1.
  std::map<std::string, double> opponents;
};

struct ReplayConfig {
  std::string table = "selfplay";
  long capacity = 4096;  // items; the oldest are dropped when full (FIFO)
};

struct LearnerConfig {
  std::string algorithm = "reinforce_rae";
  int batch_episodes = 128;
  double learning_rate = 1e-3;
  double entropy_coef = 0.01;        // entropy bonus at step 0
  double entropy_coef_final = -1;    // < 0: constant entropy_coef
  long entropy_decay_steps = 0;      // linear decay from entropy_coef to entropy_coef_final
  double baseline_decay = 0.95;      // RAE: b <- decay * b + (1 - decay) * R
  double importance_weight_cap = 1;  // truncation rho_bar of pi/mu; 0 turns the correction off
  int publish_every_steps = 1;
  long checkpoint_every_steps = 500;
  std::string device = "auto";  // auto | cpu | cuda:N
};

struct EvaluationConfig {
  int games = 1000;  // per opponent per round, seats alternated
  double every_seconds = 10;
  bool greedy = false;  // argmax instead of sampling from the policy
  std::vector<std::string> opponents = {"random", "perfect"};
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
};

struct JobConfig {
  std::string source;  // file name the spec came from, for messages
  std::string name;
  long seed = 1;
  GameConfig game;
  PolicyConfig policy;
  ActorsConfig actors;
  ReplayConfig replay;
  LearnerConfig learner;
  EvaluationConfig evaluation;
  StopConfig stop;
  std::map<std::string, OpponentTarget> target;  // by opponent name
};

// Parses and validates a spec; `source` names it in messages (usually the file path).
absl::StatusOr<JobConfig> ParseJobConfig(const std::string& yaml_text, const std::string& source);
absl::StatusOr<JobConfig> LoadJobConfig(const std::string& path);

// Opponents the evaluator knows.
std::vector<std::string> KnownOpponents();

}  // namespace rally
