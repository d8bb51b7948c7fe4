// Test helpers: start rally binaries as child processes and end them by pid.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "rally/v1/replay.grpc.pb.h"
#include "rally/v1/trajectory.pb.h"

namespace rally::testing {

// A rally binary's path; an absolute `name` (another program, e.g. /usr/bin/prometheus) as it is.
std::string BinPath(const std::string& name);
std::string SourcePath(const std::string& relative);
// A fresh directory under the test's temp dir.
std::string TempDir(const std::string& name);

class Process {
 public:
  // Starts `binary` (a rally binary name) with `args`; stdout and stderr go to `log_path`.
  // With `netns`, the binary runs in that network namespace (`ip netns exec`, which execs it:
  // the pid is the binary's).
  Process(const std::string& binary, const std::vector<std::string>& args,
          const std::string& log_path, const std::string& netns = "");
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // SIGTERM, then SIGKILL after `grace`; returns the exit status as waitpid reports it.
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  // Waits up to `timeout` for the process to exit by itself; -1 if it did not.
  int Wait(std::chrono::milliseconds timeout);
  bool exited() const { return exited_; }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

// Runs a rally binary to completion (bounded by `timeout`); returns its exit code, or -1 on
// timeout (the process is then killed). Output goes to `log_path`.
int RunToCompletion(const std::string& binary, const std::vector<std::string>& args,
                    const std::string& log_path, std::chrono::milliseconds timeout,
                    const std::string& netns = "");

std::string ReadFile(const std::string& path);
// Every JSON log line of `log_path` whose msg is `msg`, parsed, in order.
std::vector<nlohmann::json> LogLines(const std::string& log_path, const std::string& msg);
// The first "key":"value" string of a JSON log line with msg `msg` in `log_path`, waiting up to
// `timeout` for it to appear.
std::string WaitForLogField(const std::string& log_path, const std::string& msg,
                            const std::string& key, std::chrono::milliseconds timeout);

// Waits for `file` to hold a port number (as rally-control --port_file writes it).
std::string WaitForPortFile(const std::string& file, std::chrono::milliseconds timeout);

// A valid one-turn TicTacToe trajectory (x plays `action` on the empty board) with `sequence`.
v1::Trajectory TicTacToeTrajectory(uint64_t sequence = 0, int action = 4);

// One batch of `batch_size` items from `table`, over a Sample stream of its own (large items
// compressed when `accept_zstd`); nullopt if none arrives within `timeout`.
std::optional<v1::SampleResponse> SampleOnce(v1::ReplayService::Stub& stub,
                                             const std::string& table, int batch_size,
                                             bool accept_zstd, std::chrono::milliseconds timeout);

// GET http://address/path on loopback; the response body, or "" on failure.
std::string HttpGet(const std::string& address, const std::string& path);

// The value of `series` (a name, with its labels if it has any) in a Prometheus text
// exposition; -1 when it is absent.
double MetricValue(const std::string& exposition, const std::string& series);

// Whether the standard health service at `address` answers SERVING for `service` ("": the whole
// server).
bool HealthServing(const std::string& address, const std::string& service);

}  // namespace rally::testing
