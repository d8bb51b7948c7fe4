// A test fixture (it reports failures to GoogleTest, so only test executables link it):
// rally-control and one restartable rally-replay.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tests/integration/process.h"

namespace rally::testing {

// rally-control and one rally-replay under `dir` (their logs there), the replay on a fixed
// port so that it can be killed and started again, with `data_dir` ("": none).
class ControlAndReplay {
 public:
  ControlAndReplay(const std::string& dir, const std::string& data_dir);
  // Starts the replay (again) and waits until it serves.
  void StartReplay();
  void KillReplay();  // SIGKILL, waited for
  void StopReplay();  // SIGTERM, waited for
  // Submits `spec_yaml` to control; the job's id.
  std::string SubmitJob(const std::string& spec_yaml);
  // The size of the one table of `job_id` once the replay serves it; -1 if not within 30 s.
  int64_t TableSize(const std::string& job_id);
  // /metrics of the replay started last.
  std::string Metrics();
  const std::string& address() const { return address_; }
  const std::string& replay_log() const { return replay_log_; }

 private:
  std::string dir_;
  std::string replay_log_;
  std::unique_ptr<Process> control_;
  std::unique_ptr<Process> replay_;
  std::string control_address_;
  std::string address_;
  std::vector<std::string> args_;
  size_t starts_ = 0;
};

}  // namespace rally::testing
