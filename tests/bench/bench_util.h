// Shared pieces of the benchmarks in tests/bench: medians, a raw loopback TCP pump (the ceiling
// for moving bytes on this machine, measured in the same run), and --json output.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/integration/process.h"

namespace rally::bench {

double Median(std::vector<double> values);

// MB/s of one TCP connection on 127.0.0.1 moving `bytes` in 1 MiB writes; median of `runs`.
double LoopbackTcpMegabytesPerSecond(size_t bytes, int runs);
// The same, with the receiver keeping what it reads: into successive places of a ring of
// `ring_bytes` (so each byte lands in memory last written `ring_bytes` earlier, out of cache, as
// a replay table's items do). Not a ceiling; it shows what storing the bytes costs.
double LoopbackTcpIntoRingMegabytesPerSecond(size_t bytes, size_t ring_bytes, int runs);
// Seconds to move `bytes` once over loopback TCP to each of `receivers` connections in turn
// (the raw cost of delivering a blob to that many subscribers); median of `runs`.
double LoopbackTcpSeconds(size_t bytes, int receivers, int runs);
// Seconds until the last of `receivers` connections, each fed by its own sender thread from one
// shared source buffer, holds all `bytes` in a buffer of its own (the raw cost of pushing a blob
// to that many subscribers at once); median of `runs`.
double LoopbackTcpFanOutSeconds(size_t bytes, int receivers, int runs);

// CPU seconds (user + system, all threads) that process `pid` has used so far; 0 for this
// process. From /proc/<pid>/stat, in clock ticks (10 ms).
double ProcessCpuSeconds(pid_t pid);
// This machine's CPU seconds so far, busy and in all (/proc/stat, every core together).
struct MachineCpu {
  double busy = 0;
  double total = 0;
};
MachineCpu MachineCpuSeconds();

// rally-control and one rally-replay as processes on loopback, with the job `spec_yaml`
// submitted and installed in the replay (with `wal`, the replay keeps a write-ahead log). Aborts
// if they do not come up within 30 s. The processes end with the object.
struct ReplayCluster {
  std::string dir;
  std::unique_ptr<testing::Process> control;
  std::unique_ptr<testing::Process> replay;
  std::string replay_address;
};
ReplayCluster StartReplayCluster(const std::string& name, const std::string& spec_yaml, bool wal);

// The value of `--json FILE` in argv, or "".
std::string JsonPath(int argc, char** argv);
void WriteJson(const std::string& path, const nlohmann::json& j);

}  // namespace rally::bench
