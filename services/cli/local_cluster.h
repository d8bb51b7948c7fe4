// A local rally cluster: rally-control, rally-replay, rally-learner, the actors and the
// evaluator, each a separate OS process on loopback, with its log under <workdir>/logs/.
// Processes are ended by pid: SIGTERM, then SIGKILL after a grace period.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rally {

struct ClusterOptions {
  std::string bin_dir;  // where the rally-* binaries are
  std::string workdir;
  int actors = 1;
  int replay_shards = 1;
  int learners = 1;  // data-parallel learner ranks
  int max_restarts = 3;
};

class LocalCluster {
 public:
  explicit LocalCluster(ClusterOptions options) : options_(std::move(options)) {}
  ~LocalCluster() { Stop(); }

  // Starts control and waits until it serves, then starts the workers.
  absl::Status Start();
  // host:port of control.
  const std::string& control_address() const { return control_address_; }
  // The name of a process that exited, or "" while all run. A learner or replay that exits is
  // restarted first (same arguments and port; it resumes from its checkpoint or data directory),
  // up to `max_restarts` times in all; only then is it reported.
  std::string FirstExited();
  int restarts() const { return restarts_; }
  // Ends the workers (SIGTERM, SIGKILL after `grace_ms`); control keeps serving.
  void StopWorkers(int grace_ms = 10000);
  // Ends the workers, then control.
  void Stop(int grace_ms = 10000);

 private:
  struct Child {
    std::string name;
    pid_t pid = -1;
    bool exited = false;
    int status = 0;
    std::string binary;
    std::vector<std::string> args;
    bool restartable = false;
  };
  absl::StatusOr<pid_t> Spawn(const std::string& name, const std::string& binary,
                              const std::vector<std::string>& args);
  void StopChildren(std::vector<Child>& children, int grace_ms);

  ClusterOptions options_;
  std::string control_address_;
  std::vector<Child> control_;
  std::vector<Child> workers_;
  int restarts_ = 0;
};

}  // namespace rally
