// A local rally cluster: rally-control, rally-replay, rally-learner, the actors and the
// evaluator, each a separate OS process on loopback, with its log under <workdir>/logs/.
// Processes are ended by pid: SIGTERM, then SIGKILL after a grace period.
//
// Restarts: every worker that exits is started again with the same arguments (and, for a server,
// the same port, so that its clients reconnect; a replay resumes from its data directory, learner
// rank 0 from its checkpoint), on a schedule and a budget of its own (restart_policy.h):
// restart n waits min(30 s, 1 s × 2^(n−1)) after the exit, at most `max_restarts` restarts per
// process. A data-parallel learner group does not survive the loss of a rank, so it is one
// process here: when any rank exits, the others are ended and all ranks start again together.
// Control is restarted too, on its fixed port: it re-adopts the running job from its SQLite store
// when the workers, which keep working while it is away, report again. Every restart prints one
// line on stderr.
//
// Pids: each process's pid is in <workdir>/pids/<name>.pid (its log's name), written when it
// starts and again, replaced whole, at every restart, so that an operator or a test can signal the
// running one.
//
// Transport security: with `tls`, every process starts with --tls_cert, --tls_key and --tls_ca:
// from a `rally certs init` directory each its own component's certificate (control, replay,
// learner, evaluator, actor: its name up to the first '-'), or one set of files for all. The CLI
// itself must use a certificate of the same CA (common/net/tls.h) to reach control.
//
// Not thread-safe: one thread (the CLI's loop) calls every method. Nothing blocks except
// Start() (until control serves) and the Stop methods (up to their grace period).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/cli/restart_policy.h"

namespace rally {

// The TLS files of the cluster's processes; none: plain text on loopback.
struct ClusterTls {
  // A `rally certs init` directory: process P gets DIR/<component of P>.crt and .key, DIR/ca.crt.
  std::string certs_dir;
  // Used when certs_dir is empty: the same certificate, key and CA for every process.
  std::string cert, key, ca;

  // The TLS flags of a process of `component` ("control", "replay", ...); none without TLS.
  std::vector<std::string> Flags(const std::string& component) const;
};

struct ClusterOptions {
  std::string bin_dir;  // where the rally-* binaries are
  std::string workdir;
  int actors = 1;
  int replay_shards = 1;
  int learners = 1;      // data-parallel learner ranks
  int max_restarts = 5;  // per process (a learner group counts as one)
  ClusterTls tls;
  // How long the surviving ranks of a learner group get to stop before SIGKILL.
  std::chrono::milliseconds group_stop_grace = std::chrono::seconds(10);
};

class LocalCluster {
 public:
  explicit LocalCluster(ClusterOptions options) : options_(std::move(options)) {}
  ~LocalCluster() { Stop(); }

  // Starts control and waits until it serves, then starts the workers.
  absl::Status Start();
  // host:port of control.
  const std::string& control_address() const { return control_address_; }
  // Reaps the processes that exited, schedules their restarts and starts those that are due;
  // never waits. Returns the name of a process that exited and stays down (control, or a worker
  // whose budget is spent; its log is logs/<name>.log), or "" while every process runs or waits
  // to be restarted. Call it often (the CLI does, every 250-500 ms): restarts happen in it.
  std::string FirstExited();
  // Restarts so far of each process restarted at least once, by name ("learner" for a group).
  std::map<std::string, int> restarts() const;
  // Ends the workers (SIGTERM, SIGKILL after `grace_ms`) and cancels pending restarts; control
  // keeps serving.
  void StopWorkers(int grace_ms = 10000);
  // Ends the workers, then control.
  void Stop(int grace_ms = 10000);

 private:
  using Clock = RestartPolicy::Clock;

  // One OS process.
  struct Member {
    std::string name;  // also its log's name
    std::string binary;
    std::vector<std::string> args;
    pid_t pid = -1;
    bool exited = true;
    int status = 0;  // as waitpid reports it
  };
  // What is restarted as a whole: one process, or every rank of a learner group.
  struct Unit {
    enum class State {
      kRunning,
      kStoppingSurvivors,  // a rank exited; the others got SIGTERM, SIGKILL at `kill_at`
      kWaiting,            // all down; started again at `restart_at`
      kFailed,             // down for good: budget spent or could not start
      kStopped,            // ended by Stop/StopWorkers
    };
    std::string name;
    std::vector<Member> members;
    RestartPolicy policy;
    State state = State::kRunning;
    Clock::time_point kill_at{};
    Clock::time_point restart_at{};
    std::string failed_member;  // the member whose exit made it kFailed
  };

  // Starts `binary` with `args` and the TLS flags of member `name`, its output to logs/<name>.log.
  absl::StatusOr<pid_t> Spawn(const std::string& name, const std::string& binary,
                              const std::vector<std::string>& args);
  // Writes <workdir>/pids/<name>.pid (a new file renamed over the old one).
  void RecordPid(const std::string& name, pid_t pid) const;
  // Starts every member of `unit` and marks it running.
  absl::Status StartUnit(Unit& unit, Clock::time_point now);
  // Advances `unit` by one step of its life cycle: reap, schedule, end survivors, restart.
  void Step(Unit& unit, Clock::time_point now);
  // `member` of a running `unit` exited at `now`: schedule the restart or give up.
  void OnExit(Unit& unit, const Member& member, Clock::time_point now);
  void Restart(Unit& unit, Clock::time_point now);
  void StopUnits(std::vector<Unit>& units, int grace_ms);

  ClusterOptions options_;
  std::string control_address_;
  std::vector<Unit> control_;
  std::vector<Unit> workers_;
};

}  // namespace rally
