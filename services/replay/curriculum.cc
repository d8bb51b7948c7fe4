#include "services/replay/curriculum.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"

namespace rally {
namespace {

bool InUnitInterval(double v) { return std::isfinite(v) && v >= 0.0 && v <= 1.0; }

absl::Status OutOfUnitInterval(const char* name, double v) {
  return absl::InvalidArgumentError(
      absl::StrCat("curriculum ", name, " must be in [0, 1], got ", v));
}

// Probabilities proportional to `weights`, or uniform when they sum to 0.
std::vector<double> Normalised(std::vector<double> weights) {
  double sum = std::accumulate(weights.begin(), weights.end(), 0.0);
  for (double& w : weights) w = sum > 0.0 ? w / sum : 1.0 / static_cast<double>(weights.size());
  return weights;
}

void Count(OutcomeCounts& counts, Outcome outcome, double learner_return) {
  ++counts.games;
  switch (outcome) {
    case Outcome::kWin:
      ++counts.wins;
      break;
    case Outcome::kDraw:
      ++counts.draws;
      break;
    case Outcome::kLoss:
      ++counts.losses;
      break;
  }
  // Running mean: no separate sum to grow large.
  counts.mean_return += (learner_return - counts.mean_return) / static_cast<double>(counts.games);
}

}  // namespace

absl::Status CurriculumOptions::Validate() const {
  if (window < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("curriculum window must be at least 1 episode, got ", window));
  }
  if (opponent_selection != "latest" && opponent_selection != "uniform" &&
      opponent_selection != "pfsp") {
    return absl::InvalidArgumentError(absl::StrCat("curriculum opponent_selection '",
                                                   opponent_selection,
                                                   "' is not one of latest, uniform, pfsp"));
  }
  if (pfsp_weighting != "hard" && pfsp_weighting != "variance") {
    return absl::InvalidArgumentError(absl::StrCat("curriculum pfsp_weighting '", pfsp_weighting,
                                                   "' is not one of hard, variance"));
  }
  if (!std::isfinite(pfsp_exponent) || pfsp_exponent <= 0.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("curriculum pfsp_exponent must be positive, got ", pfsp_exponent));
  }
  if (!InUnitInterval(self_play_share))
    return OutOfUnitInterval("self_play_share", self_play_share);
  if (!InUnitInterval(prior_win_rate)) return OutOfUnitInterval("prior_win_rate", prior_win_rate);
  if (!InUnitInterval(task_floor)) return OutOfUnitInterval("task_floor", task_floor);
  if (!InUnitInterval(prior_success_rate)) {
    return OutOfUnitInterval("prior_success_rate", prior_success_rate);
  }
  if (num_seats < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("curriculum num_seats must be at least 1, got ", num_seats));
  }
  return absl::OkStatus();
}

double ProposerReward(double success_rate) {
  return success_rate > 0.0 && success_rate < 1.0 ? 1.0 - success_rate : 0.0;
}

double Learnability(double success_rate) { return success_rate * (1.0 - success_rate); }

double PfspWeight(const std::string& weighting, double win_rate, double exponent) {
  if (weighting == "variance") return win_rate * (1.0 - win_rate);
  return std::pow(1.0 - win_rate, exponent);
}

absl::StatusOr<std::unique_ptr<Curriculum>> Curriculum::Create(CurriculumOptions options) {
  if (absl::Status s = options.Validate(); !s.ok()) return s;
  return std::unique_ptr<Curriculum>(new Curriculum(std::move(options)));
}

Curriculum::Curriculum(CurriculumOptions options)
    : options_(std::move(options)), task_order_{""}, rng_(options_.seed) {
  tasks_[""];
}

absl::Status Curriculum::AddTask(const std::string& task_id) {
  absl::MutexLock lock(&mu_);
  if (default_task_) {
    default_task_ = false;
    if (task_id.empty()) return absl::OkStatus();  // the default task, kept with its statistics
    task_order_.clear();
    tasks_.clear();
  }
  if (tasks_.count(task_id)) return absl::OkStatus();
  tasks_[task_id];
  task_order_.push_back(task_id);
  return absl::OkStatus();
}

absl::Status Curriculum::AddSnapshot(const std::string& opponent_id) {
  if (opponent_id.empty() || opponent_id == kLatestOpponent) {
    return absl::InvalidArgumentError(absl::StrCat("opponent pool ids must be non-empty and not '",
                                                   kLatestOpponent, "', got '", opponent_id, "'"));
  }
  absl::MutexLock lock(&mu_);
  if (pool_set_.insert(opponent_id).second) pool_.push_back(opponent_id);
  return absl::OkStatus();
}

absl::Status Curriculum::SetPool(const std::vector<std::string>& opponent_ids) {
  std::vector<std::string> pool;
  std::set<std::string> pool_set;
  for (const std::string& id : opponent_ids) {
    if (id.empty() || id == kLatestOpponent) {
      return absl::InvalidArgumentError(absl::StrCat(
          "opponent pool ids must be non-empty and not '", kLatestOpponent, "', got '", id, "'"));
    }
    if (pool_set.insert(id).second) pool.push_back(id);
  }
  absl::MutexLock lock(&mu_);
  for (auto& [task_id, task] : tasks_) {
    std::erase_if(task.by_opponent, [&](const auto& entry) {
      return entry.first != kLatestOpponent && !pool_set.count(entry.first);
    });
  }
  pool_ = std::move(pool);
  pool_set_ = std::move(pool_set);
  return absl::OkStatus();
}

CurriculumAssignment Curriculum::NextTask() {
  absl::MutexLock lock(&mu_);
  CurriculumAssignment a;
  a.task_id = task_order_[SampleLocked(TaskProbabilitiesLocked())];
  size_t o = SampleLocked(OpponentProbabilitiesLocked(tasks_.at(a.task_id)));
  a.opponent_id = o == 0 ? kLatestOpponent : pool_[o - 1];
  a.learner_seat = std::uniform_int_distribution<int>(0, options_.num_seats - 1)(rng_);
  return a;
}

absl::Status Curriculum::ReportOutcome(const std::string& task_id, const std::string& opponent_id,
                                       int learner_seat, double learner_return, Outcome outcome) {
  if (learner_seat < 0 || learner_seat >= options_.num_seats) {
    return absl::InvalidArgumentError(
        absl::StrCat("learner seat ", learner_seat, " is outside [0, ", options_.num_seats, ")"));
  }
  if (!std::isfinite(learner_return)) {
    return absl::InvalidArgumentError(
        absl::StrCat("learner return must be finite, got ", learner_return));
  }
  absl::MutexLock lock(&mu_);
  auto task = tasks_.find(task_id);
  if (task == tasks_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown task '", task_id, "'; register it with the curriculum first"));
  }
  if (opponent_id != kLatestOpponent && !pool_set_.count(opponent_id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("opponent '", opponent_id, "' is not '", kLatestOpponent,
                     "' and not in the opponent pool (or was removed from it since NextTask)"));
  }
  Window& w = task->second.by_opponent[opponent_id];
  w.episodes.push_back(Episode{learner_seat, outcome, learner_return});
  auto tally = [&w](Outcome o, int64_t delta) {
    (o == Outcome::kWin ? w.wins : o == Outcome::kDraw ? w.draws : w.losses) += delta;
  };
  tally(outcome, +1);
  if (w.games() > options_.window) {
    tally(w.episodes.front().outcome, -1);
    w.episodes.pop_front();
  }
  return absl::OkStatus();
}

CurriculumStats Curriculum::Stats() const {
  absl::MutexLock lock(&mu_);
  CurriculumStats stats;
  stats.opponent_pool = pool_;
  std::vector<double> task_p = TaskProbabilitiesLocked();
  std::vector<std::string> opponents = {kLatestOpponent};
  opponents.insert(opponents.end(), pool_.begin(), pool_.end());
  for (size_t t = 0; t < task_order_.size(); ++t) {
    const Task& task = tasks_.at(task_order_[t]);
    TaskStats ts;
    ts.task_id = task_order_[t];
    ts.success_rate = SuccessRateLocked(task);
    ts.learnability = Learnability(ts.success_rate);
    ts.probability = task_p[t];
    std::vector<double> opponent_p = OpponentProbabilitiesLocked(task);
    for (size_t o = 0; o < opponents.size(); ++o) {
      OpponentStats os;
      os.opponent_id = opponents[o];
      os.by_seat.resize(options_.num_seats);
      os.win_rate = WinRateLocked(task, opponents[o]);
      os.probability = opponent_p[o];
      if (auto w = task.by_opponent.find(opponents[o]); w != task.by_opponent.end()) {
        for (const Episode& e : w->second.episodes) {
          Count(os.total, e.outcome, e.learner_return);
          Count(os.by_seat[e.seat], e.outcome, e.learner_return);
          Count(ts.total, e.outcome, e.learner_return);
        }
      }
      ts.opponents.push_back(std::move(os));
    }
    stats.tasks.push_back(std::move(ts));
  }
  return stats;
}

std::vector<double> Curriculum::TaskProbabilitiesLocked() const {
  const double n = static_cast<double>(task_order_.size());
  std::vector<double> learnability;
  for (const std::string& id : task_order_) {
    learnability.push_back(Learnability(SuccessRateLocked(tasks_.at(id))));
  }
  std::vector<double> p = Normalised(std::move(learnability));
  for (double& v : p) v = options_.task_floor / n + (1.0 - options_.task_floor) * v;
  return p;
}

std::vector<double> Curriculum::OpponentProbabilitiesLocked(const Task& task) const {
  // Index 0 is "latest", index i > 0 is pool_[i - 1].
  std::vector<double> p(pool_.size() + 1, 0.0);
  if (options_.opponent_selection == "latest" || pool_.empty()) {
    p[0] = 1.0;
    return p;
  }
  std::vector<double> weights;
  for (const std::string& id : pool_) {
    weights.push_back(
        options_.opponent_selection == "uniform"
            ? 1.0
            : PfspWeight(options_.pfsp_weighting, WinRateLocked(task, id), options_.pfsp_exponent));
  }
  weights = Normalised(std::move(weights));
  p[0] = options_.self_play_share;
  for (size_t i = 0; i < pool_.size(); ++i)
    p[i + 1] = (1.0 - options_.self_play_share) * weights[i];
  return p;
}

double Curriculum::SuccessRateLocked(const Task& task) const {
  int64_t games = 0, wins = 0;
  for (const auto& [id, w] : task.by_opponent) {
    games += w.games();
    wins += w.wins;
  }
  if (games == 0) return options_.prior_success_rate;
  return static_cast<double>(wins) / static_cast<double>(games);
}

double Curriculum::WinRateLocked(const Task& task, const std::string& opponent_id) const {
  auto w = task.by_opponent.find(opponent_id);
  if (w == task.by_opponent.end() || w->second.games() == 0) return options_.prior_win_rate;
  return (static_cast<double>(w->second.wins) + 0.5 * static_cast<double>(w->second.draws)) /
         static_cast<double>(w->second.games());
}

size_t Curriculum::SampleLocked(const std::vector<double>& probabilities) {
  double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  double cumulative = 0.0;
  size_t last_positive = 0;
  for (size_t i = 0; i < probabilities.size(); ++i) {
    if (probabilities[i] <= 0.0) continue;
    last_positive = i;
    cumulative += probabilities[i];
    if (u < cumulative) return i;
  }
  // Rounding left u above the total: the last index with any probability.
  return last_positive;
}

}  // namespace rally
