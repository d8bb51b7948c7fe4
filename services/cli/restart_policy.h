// When `rally run` starts an exited process of its local cluster again, and when it gives up.
//
// One RestartPolicy per process; a data-parallel learner group, restarted as a whole, counts as
// one process. The policy is pure logic: it never sleeps and never reads a clock; the caller
// passes the time of every start and exit (steady_clock in the CLI, made-up times in tests).
//
// Contract:
//   - Budget: a process is restarted at most `max_restarts` times in all. Once that many
//     restarts were granted, Exited() returns nullopt and the process stays down (`rally run`
//     then reports it and fails the job). Nothing refills the budget.
//   - Backoff: restart n after the last reset waits min(max_backoff, initial_backoff × 2^(n−1))
//     after the exit: 1 s, 2 s, 4 s, 8 s, 16 s, 30 s, 30 s, ... with the defaults.
//   - Reset: a process that ran at least `stable_after` since its last (re)start when it exits
//     has its backoff reset to `initial_backoff` (its budget is not refilled).
//
// Not thread-safe; the CLI's loop owns it.
#pragma once

#include <chrono>
#include <optional>

namespace rally {

class RestartPolicy {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;
  using Duration = Clock::duration;

  struct Options {
    int max_restarts = 5;
    Duration initial_backoff = std::chrono::seconds(1);
    Duration max_backoff = std::chrono::seconds(30);
    Duration stable_after = std::chrono::minutes(10);
  };

  explicit RestartPolicy(Options options) : options_(options) {}

  // The process started, or was started again, at `now`.
  void Started(TimePoint now) { started_ = now; }
  // The process exited at `now`. Returns how long after `now` to start it again, counting that
  // restart against the budget; nullopt when the budget is spent.
  std::optional<Duration> Exited(TimePoint now);

  // Restarts granted so far.
  int restarts() const { return restarts_; }
  int max_restarts() const { return options_.max_restarts; }
  bool spent() const { return restarts_ >= options_.max_restarts; }

 private:
  Options options_;
  TimePoint started_{};
  int restarts_ = 0;
  // Restarts granted since the backoff was last reset: the next waits initial × 2^this.
  int doublings_ = 0;
};

}  // namespace rally
