// The standard process metrics and rally's build information, on every rally process's
// /metrics (MetricsServer::Start registers both; nothing per service).
//
// Process metrics follow the Prometheus client libraries' names, so that dashboards and alerts
// written for any Prometheus-instrumented process read them unchanged:
//   process_cpu_seconds_total        counter  user + system CPU time
//   process_resident_memory_bytes    gauge    resident set size
//   process_virtual_memory_bytes     gauge    virtual memory size
//   process_start_time_seconds       gauge    start time, seconds since the Unix epoch
//   process_open_fds                 gauge    open file descriptors
//   process_max_fds                  gauge    the soft limit on open file descriptors
//   process_threads                  gauge    OS threads
// They are read from /proc/self when /metrics is scraped; a file that cannot be read leaves its
// metrics out of that scrape (Linux only).
//
// rally_build_info{version,revision,compiler,binary} is always 1: its labels say what runs.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/registry.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rally {

// What /proc/<pid>/stat tells the process metrics.
struct ProcStat {
  double cpu_seconds = 0;  // utime + stime
  double start_seconds_after_boot = 0;
  double virtual_memory_bytes = 0;
  double resident_memory_bytes = 0;
  int64_t threads = 0;
};

// Parses the one line of /proc/<pid>/stat (proc(5)), with `ticks_per_second` (sysconf
// _SC_CLK_TCK) and `page_bytes` (sysconf _SC_PAGESIZE). The command name may hold spaces and
// parentheses; fields are counted from the last ')'.
absl::StatusOr<ProcStat> ParseProcStat(absl::string_view stat, double ticks_per_second,
                                       double page_bytes);
// The boot time (the "btime" line, seconds since the epoch) of /proc/stat.
absl::StatusOr<double> ParseBootTime(absl::string_view proc_stat);
// The soft "Max open files" limit of /proc/<pid>/limits; nullopt when it is "unlimited".
absl::StatusOr<std::optional<double>> ParseMaxOpenFiles(absl::string_view limits);

// Collects the process metrics above from `proc_dir` (/proc/self; tests pass a copy) on each
// scrape. Thread-safe: Collect keeps no state.
class ProcessCollector : public prometheus::Collectable {
 public:
  explicit ProcessCollector(std::string proc_dir = "/proc/self",
                            std::string proc_stat = "/proc/stat");
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::string proc_dir_;
  std::string proc_stat_;
};

// The build information rally_build_info carries.
struct BuildInfo {
  std::string version;   // RALLY_VERSION, set by CMake
  std::string revision;  // the git revision at configure time, "unknown" outside a checkout
  std::string compiler;  // e.g. "gcc 12.2.0"
  std::string binary;    // the program's name: rally-actor, rally-replay, ...
};
BuildInfo CurrentBuildInfo();

// The registry for metrics that belong to the process rather than to one of its servers: build
// information and the gRPC server metrics (common/metrics/grpc_server_metrics.h). Every
// MetricsServer exposes it. Never destroyed, so servers may record into it while the process
// exits.
std::shared_ptr<prometheus::Registry> ProcessRegistry();

}  // namespace rally
