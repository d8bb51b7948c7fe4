// A test fixture (it reports failures to GoogleTest, so only test executables link it): a rally
// cluster started process by process on loopback — rally-control on a fixed port (so that it can
// be killed and started again at the same address), one rally-replay with a data directory, one
// rally-learner with a checkpoint directory and one self-play rally-actor — and a JobService
// client. Jobs without evaluation opponents need no evaluator.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "rally/v1/control.grpc.pb.h"
#include "tests/integration/process.h"

namespace rally::testing {

class ControlCluster {
 public:
  // Everything under `dir`: control.sqlite, logs/<process>.log, replay/, checkpoints/.
  explicit ControlCluster(const std::string& dir);
  ~ControlCluster();

  // Flags added to rally-control's command line from the next StartControl (e.g. --tokens_file).
  void set_control_flags(std::vector<std::string> flags) { control_flags_ = std::move(flags); }
  // The bearer token Submit, Get and WaitForJob send ("": none).
  void set_token(std::string token) { token_ = std::move(token); }
  // Starts rally-control (again) and waits until it serves.
  void StartControl();
  void KillControl();  // SIGKILL, waited for
  void StartWorkers();

  v1::JobService::Stub& jobs() { return *jobs_; }
  // SubmitJob of `spec_yaml`; the job, or a failure reported and an empty job.
  v1::Job Submit(const std::string& spec_yaml, const std::string& request_id = "");
  // GetJob; an empty job when it fails.
  v1::Job Get(const std::string& id);
  // Polls GetJob until `done` holds for the job (true) or `timeout` passes (false).
  bool WaitForJob(const std::string& id, const std::function<bool(const v1::Job&)>& done,
                  std::chrono::milliseconds timeout, v1::Job* last = nullptr);

  const std::string& control_address() const { return control_address_; }
  std::string data_dir() const { return dir_ + "/replay"; }
  std::string checkpoint_dir() const { return dir_ + "/checkpoints"; }
  std::string log(const std::string& process) const { return dir_ + "/logs/" + process + ".log"; }

 private:
  std::string dir_;
  std::string control_address_;
  std::vector<std::string> control_flags_;
  std::string token_;
  std::unique_ptr<Process> control_;
  std::unique_ptr<Process> replay_;
  std::unique_ptr<Process> learner_;
  std::unique_ptr<Process> actor_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
};

// A small TicTacToe job of `max_learner_steps` steps or `max_wall_seconds`, whichever comes first
// (checkpoints every 10 steps), and no evaluation.
std::string SmallJobSpec(const std::string& name, int max_learner_steps,
                         int max_wall_seconds = 240);

// The state names of `job`'s history, e.g. "PENDING,STARTING,RUNNING".
std::string HistoryStates(const v1::Job& job);

}  // namespace rally::testing
