#include "tests/integration/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace rally::testing {
namespace {

constexpr char kPrefix[] = "rallyt-";
constexpr char kEtcNetns[] = "/etc/netns";

// Runs `command` with /bin/sh; its output (stdout and stderr) in the error when it fails.
absl::Status Ip(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return absl::InternalError(absl::StrCat("cannot run `", command, "`"));
  std::string output;
  char buffer[1024];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output.append(buffer, n);
  const int status = pclose(pipe);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat("`", command, "` failed: ", output));
}

void RemoveNamespace(const std::string& name) {
  Ip("ip netns del " + name).IgnoreError();
  std::error_code ignored;
  std::filesystem::remove_all(std::filesystem::path(kEtcNetns) / name, ignored);
}

// Removes the namespaces named "rallyt-PID-..." whose PID no longer runs: left by a test process
// that crashed or was killed. Those of running tests (ctest -j) are kept.
void RemoveStaleNamespaces() {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/var/run/netns", error)) {
    const std::string name = entry.path().filename().string();
    absl::string_view rest = name;
    if (!absl::ConsumePrefix(&rest, kPrefix)) continue;
    int pid = 0;
    if (!absl::SimpleAtoi(rest.substr(0, rest.find('-')), &pid) || pid <= 0) continue;
    if (kill(pid, 0) != 0 && errno == ESRCH) RemoveNamespace(name);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<NetworkNamespaces>> NetworkNamespaces::Create(
    const std::vector<std::string>& machines, const std::string& subnet) {
  RemoveStaleNamespaces();
  std::unique_ptr<NetworkNamespaces> net(new NetworkNamespaces());
  if (absl::Status s = net->Build(machines, subnet); !s.ok()) return s;  // net removes its part
  return net;
}

absl::Status NetworkNamespaces::Build(const std::vector<std::string>& machines,
                                      const std::string& subnet) {
  const std::string id = absl::StrCat(kPrefix, getpid(), "-");
  if (absl::Status s = Ip("ip netns add " + id + "bridge"); !s.ok()) return s;
  bridge_ = id + "bridge";
  const std::string on_bridge = "ip -n " + bridge_ + " link ";
  if (absl::Status s = Ip(on_bridge + "add br0 type bridge"); !s.ok()) return s;
  if (absl::Status s = Ip(on_bridge + "set br0 up"); !s.ok()) return s;
  for (size_t i = 0; i < machines.size(); ++i) {
    const std::string ns = id + machines[i];
    const std::string address = absl::StrCat(subnet, ".", i + 1);
    if (absl::Status s = Ip("ip netns add " + ns); !s.ok()) return s;
    made_.push_back(ns);
    namespace_[machines[i]] = ns;
    address_[machines[i]] = address;
    const std::string port = absl::StrCat("v", i);
    const std::string on_machine = "ip -n " + ns + " ";
    for (const std::string& command : {
             on_bridge + "add " + port + " type veth peer name eth0 netns " + ns,
             on_bridge + "set " + port + " master br0",
             on_bridge + "set " + port + " up",
             on_machine + "addr add " + address + "/24 dev eth0",
             on_machine + "link set eth0 up",
             on_machine + "link set lo up",
         }) {
      if (absl::Status s = Ip(command); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

NetworkNamespaces::~NetworkNamespaces() {
  // A machine's veth end goes with its namespace, the bridge with the bridge's.
  for (const std::string& ns : made_) RemoveNamespace(ns);
  if (!bridge_.empty()) RemoveNamespace(bridge_);
}

const std::string& NetworkNamespaces::Namespace(const std::string& machine) const {
  return namespace_.at(machine);
}

const std::string& NetworkNamespaces::Address(const std::string& machine) const {
  return address_.at(machine);
}

absl::Status NetworkNamespaces::SetHosts(
    const std::vector<std::pair<std::string, std::string>>& name_address) {
  std::ostringstream hosts;
  hosts << "127.0.0.1 localhost\n::1 localhost\n";
  for (const auto& [name, address] : name_address) hosts << address << " " << name << "\n";
  for (const std::string& ns : made_) {
    const std::filesystem::path dir = std::filesystem::path(kEtcNetns) / ns;
    std::error_code error;
    std::filesystem::create_directories(dir, error);
    std::ofstream out(dir / "hosts", std::ios::trunc);
    out << hosts.str();
    out.close();
    if (error || !out) {
      return absl::InternalError(absl::StrCat("cannot write ", (dir / "hosts").string()));
    }
  }
  return absl::OkStatus();
}

namespace {

// `env -i NAME=VALUE ... BINARY ARGS`: env clears the environment and execs the binary, so the
// process keeps one pid through `ip netns exec`, env and the binary.
std::vector<std::string> WithEnvironment(const std::string& binary,
                                         const std::vector<std::string>& args,
                                         const std::map<std::string, std::string>& env) {
  std::vector<std::string> argv = {"-i"};
  for (const auto& [name, value] : env) argv.push_back(name + "=" + value);
  argv.push_back(BinPath(binary));
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

}  // namespace

std::unique_ptr<Process> NetworkNamespaces::Start(const std::string& machine,
                                                  const std::string& binary,
                                                  const std::vector<std::string>& args,
                                                  const std::map<std::string, std::string>& env,
                                                  const std::string& log_path) const {
  return std::make_unique<Process>("/usr/bin/env", WithEnvironment(binary, args, env), log_path,
                                   Namespace(machine));
}

int NetworkNamespaces::Run(const std::string& machine, const std::string& binary,
                           const std::vector<std::string>& args,
                           const std::map<std::string, std::string>& env,
                           const std::string& log_path, std::chrono::milliseconds timeout) const {
  return RunToCompletion("/usr/bin/env", WithEnvironment(binary, args, env), log_path, timeout,
                         Namespace(machine));
}

std::string NetworkNamespaces::HttpGet(const std::string& machine, const std::string& address,
                                       const std::string& path) const {
  // A thread of its own enters the namespace (setns moves only the calling thread), opens its
  // socket there and ends.
  std::string body;
  const std::string ns_path = "/var/run/netns/" + Namespace(machine);
  std::thread get([&] {
    const int fd = open(ns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    const bool entered = setns(fd, CLONE_NEWNET) == 0;
    close(fd);
    if (entered) body = testing::HttpGet(address, path);
  });
  get.join();
  return body;
}

}  // namespace rally::testing
