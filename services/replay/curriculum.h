// The curriculum: decides what an actor plays next (task, opponent, learner seat) from the
// outcomes of the episodes actors report.
//
// Statistics. Each (task, opponent) pair keeps its last `window` reported episodes; older ones
// stop counting. From them come, per seat and over all seats: wins, draws, losses and the mean
// return of the learner's seat.
//
// Opponents. "latest" is the learning policy itself; every other opponent id comes from the
// opponent pool, which the learner fills as it publishes snapshots (AddSnapshot, SetPool). Ids are
// opaque: a pool may hold snapshots ("snapshot-120") and fixed opponents ("random") alike.
// NextTask picks "latest" with probability `self_play_share`, else by `opponent_selection`:
//   "latest"   always the learning policy;
//   "uniform"  uniform over the pool (fictitious self-play);
//   "pfsp"     prioritised fictitious self-play: opponent o gets weight f(x_o), where x_o is the
//              learner's win rate against o on the chosen task (draws count half, as in
//              AlphaStar; `prior_win_rate` when there are no games), and f is
//              "hard":     f(x) = (1 - x)^p  (p = pfsp_exponent; favours opponents that win), or
//              "variance": f(x) = x (1 - x)  (favours even matches).
//              When every weight is 0 the pick is uniform over the pool.
// With an empty pool, "uniform" and "pfsp" play "latest".
//
// Tasks. Tasks are registered with AddTask; until the first is, the only task is "" (the game's
// default variant), and the first AddTask of another id replaces it (and its statistics). A task's
// success rate s is its wins / games over the windows of all its opponents (`prior_success_rate`
// when there are none), and NextTask picks task t with probability
//   P(t) = task_floor / N + (1 - task_floor) * s_t (1 - s_t) / sum_u s_u (1 - s_u)
// (uniform when every s (1 - s) is 0): tasks always or never solved teach little, and the floor
// keeps any from starving. Then the opponent is picked for that task, then the learner's seat,
// uniformly over `num_seats`.
//
// Errors. Options are checked by Create (INVALID_ARGUMENT). ReportOutcome refuses, with
// INVALID_ARGUMENT, an unknown task, an opponent that is neither "latest" nor in the pool (an
// opponent removed from the pool by SetPool loses its statistics, and outcomes reported for it
// afterwards are refused), a seat outside [0, num_seats), and a return that is NaN or infinite.
//
// Thread safety: every method may be called concurrently; one lock guards all state.
// Determinism: draws come from one generator seeded with `seed`, so one thread making the same
// calls gets the same answers.
// Complexity: NextTask O(tasks + pool); ReportOutcome O(log(tasks + pool)); Stats
// O(tasks * (pool + 1) * window).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace rally {

// The opponent id of the learning policy itself.
inline constexpr char kLatestOpponent[] = "latest";

enum class Outcome { kWin, kDraw, kLoss };

struct CurriculumOptions {
  // Episodes kept per (task, opponent).
  int64_t window = 200;
  // "latest", "uniform" or "pfsp".
  std::string opponent_selection = "pfsp";
  // PFSP's f: "hard" or "variance"; and the exponent p of "hard".
  std::string pfsp_weighting = "hard";
  double pfsp_exponent = 2.0;
  // Probability of playing "latest" whatever opponent_selection says.
  double self_play_share = 0.0;
  // x for an opponent the learner has no games against on a task.
  double prior_win_rate = 0.5;
  // The floor mixed into task selection, in [0, 1].
  double task_floor = 0.1;
  // s for a task with no games; 0.5 gives it the largest learnability, so it is tried early.
  double prior_success_rate = 0.5;
  // Seats of the game; the learner's seat is drawn uniformly from them.
  int num_seats = 2;
  uint64_t seed = 1;

  absl::Status Validate() const;
};

// What an actor plays next.
struct CurriculumAssignment {
  std::string task_id;
  std::string opponent_id;
  int learner_seat = 0;
};

// Counts over a window, or its part played from one seat.
struct OutcomeCounts {
  int64_t games = 0;
  int64_t wins = 0;
  int64_t draws = 0;
  int64_t losses = 0;
  double mean_return = 0.0;
};

struct OpponentStats {
  std::string opponent_id;
  OutcomeCounts total;
  std::vector<OutcomeCounts> by_seat;  // indexed by the learner's seat
  double win_rate = 0.0;               // x, as PFSP uses it
  double probability = 0.0;            // P(opponent | task)
};

struct TaskStats {
  std::string task_id;
  OutcomeCounts total;
  double success_rate = 0.0;
  double learnability = 0.0;
  double probability = 0.0;              // P(task)
  std::vector<OpponentStats> opponents;  // "latest" first, then the pool in order
};

struct CurriculumStats {
  std::vector<TaskStats> tasks;  // in registration order
  std::vector<std::string> opponent_pool;
};

// Absolute Zero's proposer reward for a task solved at rate s: 1 - s if 0 < s < 1, else 0.
double ProposerReward(double success_rate);
// Learnability s (1 - s) of a success rate.
double Learnability(double success_rate);
// PFSP's f(x) for `weighting` ("hard" or "variance") with exponent p (used by "hard").
double PfspWeight(const std::string& weighting, double win_rate, double exponent);

class Curriculum {
 public:
  static absl::StatusOr<std::unique_ptr<Curriculum>> Create(CurriculumOptions options);

  // Registers a task (game variant). Registering a present task is a no-op.
  absl::Status AddTask(const std::string& task_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Appends an opponent to the pool (a no-op when present). INVALID_ARGUMENT for "" or "latest".
  absl::Status AddSnapshot(const std::string& opponent_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Replaces the pool; opponents no longer in it lose their statistics. Duplicates are dropped.
  absl::Status SetPool(const std::vector<std::string>& opponent_ids) ABSL_LOCKS_EXCLUDED(mu_);

  CurriculumAssignment NextTask() ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ReportOutcome(const std::string& task_id, const std::string& opponent_id,
                             int learner_seat, double learner_return, Outcome outcome)
      ABSL_LOCKS_EXCLUDED(mu_);

  CurriculumStats Stats() const ABSL_LOCKS_EXCLUDED(mu_);
  const CurriculumOptions& options() const { return options_; }

 private:
  // One reported episode.
  struct Episode {
    int seat = 0;
    Outcome outcome = Outcome::kWin;
    double learner_return = 0.0;
  };
  // The last `window` episodes of one (task, opponent), with their outcome counts kept in step.
  struct Window {
    std::deque<Episode> episodes;
    int64_t wins = 0;
    int64_t draws = 0;
    int64_t losses = 0;
    int64_t games() const { return static_cast<int64_t>(episodes.size()); }
  };
  struct Task {
    std::map<std::string, Window> by_opponent;  // only opponents with games
  };

  explicit Curriculum(CurriculumOptions options);

  // P(task) in task_order_, and P(opponent | task) over "latest" then pool_.
  std::vector<double> TaskProbabilitiesLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<double> OpponentProbabilitiesLocked(const Task& task) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  double SuccessRateLocked(const Task& task) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  double WinRateLocked(const Task& task, const std::string& opponent_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  size_t SampleLocked(const std::vector<double>& probabilities) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CurriculumOptions options_;
  mutable absl::Mutex mu_;
  // Tasks in registration order; tasks_ holds the same keys. While default_task_ is true the only
  // task is "", which the first AddTask replaces.
  std::vector<std::string> task_order_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool default_task_ ABSL_GUARDED_BY(mu_) = true;
  // The opponent pool in the order given; pool_set_ holds the same ids. Never holds "latest".
  std::vector<std::string> pool_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> pool_set_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rally
