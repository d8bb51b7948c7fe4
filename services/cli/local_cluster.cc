#include "services/cli/local_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/net/free_port.h"
#include "common/net/server.h"

namespace rally {
namespace {

// A port for a server started later, below the ephemeral range (see common/net/free_port.h).
absl::StatusOr<std::string> PortFlag(const std::string& flag) {
  int port = FreePort();
  if (port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "found no free TCP port on 127.0.0.1 between 10000 and ", EphemeralPortsStart()));
  }
  return absl::StrCat("--", flag, "=", port);
}

}  // namespace

absl::StatusOr<pid_t> LocalCluster::Spawn(const std::string& name, const std::string& binary,
                                          const std::vector<std::string>& args) {
  std::string path = (std::filesystem::path(options_.bin_dir) / binary).string();
  if (access(path.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot run ", path, " (not built?)"));
  }
  std::string log = (std::filesystem::path(options_.workdir) / "logs" / (name + ".log")).string();
  std::vector<std::string> argv_s = {path};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      close(fd);
    }
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, STDIN_FILENO);
    // Own process group: a Ctrl-C in the terminal reaches the CLI, which stops the cluster.
    setpgid(0, 0);
    // The child must not inherit the CLI's blocked signal mask.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(path.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

absl::Status LocalCluster::Start() {
  namespace fs = std::filesystem;
  fs::create_directories(fs::path(options_.workdir) / "logs");
  fs::create_directories(fs::path(options_.workdir) / "checkpoints");
  std::string port_file = (fs::path(options_.workdir) / "control.port").string();
  fs::remove(port_file);
  auto pid = Spawn("control", "rally-control",
                   {"--port=0", "--port_file=" + port_file,
                    "--db=" + (fs::path(options_.workdir) / "control.sqlite").string()});
  if (!pid.ok()) return pid.status();
  control_.push_back(Child{"control", *pid});
  int port = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(port_file);
    if (in >> port && port > 0) break;
    if (!FirstExited().empty())
      return absl::InternalError("rally-control exited at start; see logs/control.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (port <= 0) return absl::DeadlineExceededError("rally-control did not start within 30 s");
  control_address_ = absl::StrCat("127.0.0.1:", port);
  if (auto s = WaitForServing(control_address_, std::chrono::seconds(30)); !s.ok()) return s;

  std::string control = "--control=" + control_address_;
  struct Spec {
    std::string name, binary;
    std::vector<std::string> args;
  };
  // Servers that may be restarted get a fixed port, so that their clients reconnect to them.
  std::vector<Spec> specs;
  for (int i = 0; i < options_.replay_shards; ++i) {
    std::string name = options_.replay_shards == 1 ? "replay" : absl::StrCat("replay-", i);
    auto port_flag = PortFlag("port");
    if (!port_flag.ok()) return port_flag.status();
    specs.push_back({name,
                     "rally-replay",
                     {control, absl::StrCat("--name=replay-", i), *port_flag,
                      "--data_dir=" + (fs::path(options_.workdir) / name).string()}});
  }
  // Learner ranks rendezvous at rank 0 on loopback; rank 0 writes the checkpoints and the
  // others take its state when a job starts.
  auto master_port = PortFlag("master_port");
  if (!master_port.ok()) return master_port.status();
  for (int r = 0; r < options_.learners; ++r) {
    auto port_flag = PortFlag("port");
    if (!port_flag.ok()) return port_flag.status();
    std::vector<std::string> args = {control, absl::StrCat("--rank=", r),
                                     absl::StrCat("--name=learner-", r), *port_flag};
    if (r == 0) {
      args.push_back("--checkpoint_dir=" + (fs::path(options_.workdir) / "checkpoints").string());
    }
    if (options_.learners > 1) {
      args.insert(args.end(), {absl::StrCat("--world_size=", options_.learners),
                               "--master_addr=127.0.0.1", *master_port});
    }
    specs.push_back({r == 0 ? "learner" : absl::StrCat("learner-", r), "rally-learner", args});
  }
  specs.push_back({"evaluator", "rally-actor", {control, "--mode=eval", "--name=evaluator-0"}});
  for (int i = 0; i < options_.actors; ++i) {
    std::string name = absl::StrCat("actor-", i);
    specs.push_back({name, "rally-actor", {control, "--mode=selfplay", "--name=" + name}});
  }
  for (const Spec& s : specs) {
    auto child = Spawn(s.name, s.binary, s.args);
    if (!child.ok()) return child.status();
    // A data-parallel group does not survive the loss of a rank: with several learners a
    // learner that exits ends the run instead of being restarted.
    bool restartable =
        (s.binary == "rally-learner" && options_.learners == 1) || s.binary == "rally-replay";
    workers_.push_back(Child{s.name, *child, false, 0, s.binary, s.args, restartable});
  }
  return absl::OkStatus();
}

std::string LocalCluster::FirstExited() {
  for (auto* group : {&control_, &workers_}) {
    for (Child& c : *group) {
      if (c.exited) return c.name;
      if (waitpid(c.pid, &c.status, WNOHANG) != c.pid) continue;
      c.exited = true;
      if (c.restartable && restarts_ < options_.max_restarts) {
        auto pid = Spawn(c.name, c.binary, c.args);
        if (pid.ok()) {
          ++restarts_;
          std::fprintf(stderr, "%s exited (status %d); restarted it (restart %d of at most %d)\n",
                       c.name.c_str(), c.status, restarts_, options_.max_restarts);
          c.pid = *pid;
          c.exited = false;
          continue;
        }
      }
      return c.name;
    }
  }
  return "";
}

void LocalCluster::StopChildren(std::vector<Child>& children, int grace_ms) {
  for (Child& c : children) {
    if (!c.exited) kill(c.pid, SIGTERM);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  for (Child& c : children) {
    while (!c.exited) {
      if (waitpid(c.pid, &c.status, WNOHANG) == c.pid) {
        c.exited = true;
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        kill(c.pid, SIGKILL);
        waitpid(c.pid, &c.status, 0);
        c.exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
}

void LocalCluster::StopWorkers(int grace_ms) { StopChildren(workers_, grace_ms); }

void LocalCluster::Stop(int grace_ms) {
  StopChildren(workers_, grace_ms);
  StopChildren(control_, grace_ms);
}

}  // namespace rally
