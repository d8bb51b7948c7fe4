// Shared pieces of the benchmarks in tests/bench: medians, a raw loopback TCP pump (the ceiling
// for moving bytes on this machine, measured in the same run), and --json output.
#pragma once

#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace rally::bench {

double Median(std::vector<double> values);

// MB/s of one TCP connection on 127.0.0.1 moving `bytes` in 1 MiB writes; median of `runs`.
double LoopbackTcpMegabytesPerSecond(size_t bytes, int runs);
// Seconds to move `bytes` once over loopback TCP to each of `receivers` connections in turn
// (the raw cost of delivering a blob to that many subscribers); median of `runs`.
double LoopbackTcpSeconds(size_t bytes, int receivers, int runs);
// Seconds until the last of `receivers` connections, each fed by its own sender thread from one
// shared source buffer, holds all `bytes` in a buffer of its own (the raw cost of pushing a blob
// to that many subscribers at once); median of `runs`.
double LoopbackTcpFanOutSeconds(size_t bytes, int receivers, int runs);

// The value of `--json FILE` in argv, or "".
std::string JsonPath(int argc, char** argv);
void WriteJson(const std::string& path, const nlohmann::json& j);

}  // namespace rally::bench
