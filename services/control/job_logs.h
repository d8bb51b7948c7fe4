// The logs a client reads through JobService.GetJobLogs. rally's processes write one JSON line
// per event to their own log file; in a local cluster (`rally run`) those are
// <workdir>/logs/<process>.log, beside control's store. Control reads them from its --log_dir:
// it serves the logs of the processes that share its file system, and nothing where they do not
// (on Kubernetes, read them with kubectl logs). rally runs one job at a time, so the processes'
// logs are the job's logs; lines that name another job (a "job_id" field) are left out.
//
// Thread safety: a LogTail is used by one thread (one GetJobLogs call).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rally/v1/control.pb.h"

namespace rally {

class LogTail {
 public:
  // Reads the logs `dir`/*.log (only `dir`/`process`.log when `process` is not empty) of job
  // `job_id`.
  LogTail(std::string dir, std::string job_id, std::string process);

  // The last `lines` lines of each log (files in name order), and remembers where each ends.
  // NOT_FOUND when `dir` (or the one process's log) does not exist.
  absl::StatusOr<std::vector<v1::LogLine>> Tail(int lines);
  // The complete lines appended to the logs since the previous Tail or Follow (a log that
  // appeared since is read from its start).
  std::vector<v1::LogLine> Follow();

  // Limits documented in docs/api.md.
  static constexpr int kDefaultLines = 100;
  static constexpr int kMaxLines = 10000;

 private:
  std::vector<std::string> Files() const;
  bool Keep(const std::string& line) const;

  std::string dir_;
  std::string job_id_;
  std::string process_;
  std::map<std::string, int64_t> offsets_;  // by file name: bytes already read
};

}  // namespace rally
