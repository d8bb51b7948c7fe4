// Test machines on one host: a network namespace per machine, each with its own IPv4 address on
// one L2 segment, so that processes on different machines talk over a network (their own
// addresses, no shared loopback) as pods or hosts do.
//
// Layout: a namespace of its own holds a bridge; each machine's namespace holds one end of a veth
// pair ("eth0", SUBNET.(i+1)/24 for the i-th machine) whose other end is on the bridge. Nothing is
// added to the root namespace, so tests that run at once (ctest -j) may use the same subnet.
//
// Names: "rallyt-PID-MACHINE" and "rallyt-PID-bridge", PID the test process's. Create removes the
// namespaces (and /etc/netns entries) left by test processes that no longer run; the destructor
// removes this object's, also when a test ends on a failed assertion. End the processes started in
// a machine before its NetworkNamespaces is destroyed (declare the Process objects after it).
//
// Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2's `ip`. Not thread-safe; one object per
// test.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/integration/process.h"

namespace rally::testing {

class NetworkNamespaces {
 public:
  // One namespace per entry of `machines` (short names such as "control" or "learner-0": letters,
  // digits and '-'); the i-th gets address `subnet`.(i+1), e.g. 10.231.0.1 for subnet "10.231.0".
  // An error names the `ip` command that failed and its output; whatever was made is removed.
  static absl::StatusOr<std::unique_ptr<NetworkNamespaces>> Create(
      const std::vector<std::string>& machines, const std::string& subnet);
  ~NetworkNamespaces();
  NetworkNamespaces(const NetworkNamespaces&) = delete;
  NetworkNamespaces& operator=(const NetworkNamespaces&) = delete;

  // The namespace of `machine` (Process's `netns`) and its address. `machine` must be one of
  // Create's.
  const std::string& Namespace(const std::string& machine) const;
  const std::string& Address(const std::string& machine) const;

  // Host names that every machine resolves, as Kubernetes' DNS resolves Service names: written to
  // /etc/netns/NAMESPACE/hosts, which `ip netns exec` mounts over /etc/hosts. Applies to processes
  // started afterwards.
  absl::Status SetHosts(const std::vector<std::pair<std::string, std::string>>& name_address);

  // Starts the rally binary `binary` in `machine` with exactly `env` as its environment (nothing
  // of this process's), as a container starts with its manifest's `env`. The pid is the binary's.
  std::unique_ptr<Process> Start(const std::string& machine, const std::string& binary,
                                 const std::vector<std::string>& args,
                                 const std::map<std::string, std::string>& env,
                                 const std::string& log_path) const;
  // The same, run to completion (RunToCompletion's exit code, -1 on timeout).
  int Run(const std::string& machine, const std::string& binary,
          const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
          const std::string& log_path, std::chrono::milliseconds timeout) const;

  // GET http://`address``path` from inside `machine` (e.g. a process's /metrics on its own
  // address); the body, or "" on failure.
  std::string HttpGet(const std::string& machine, const std::string& address,
                      const std::string& path) const;

 private:
  NetworkNamespaces() = default;
  absl::Status Build(const std::vector<std::string>& machines, const std::string& subnet);

  std::string bridge_;                            // the bridge's namespace, "" until made
  std::vector<std::string> made_;                 // machine namespaces made so far
  std::map<std::string, std::string> namespace_;  // machine -> namespace
  std::map<std::string, std::string> address_;    // machine -> address
};

}  // namespace rally::testing
