#include "services/cli/local_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/net/free_port.h"
#include "common/net/server.h"

namespace rally {
namespace {

// The name (and data directory, under the work directory) of replay shard `shard` of `shards`.
std::string ReplayName(int shard, int shards) {
  return shards == 1 ? "replay" : absl::StrCat("replay-", shard);
}

// A port for a server started later, below the ephemeral range (see common/net/free_port.h).
absl::StatusOr<std::string> PortFlag(const std::string& flag) {
  int port = FreePort();
  if (port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "found no free TCP port on 127.0.0.1 between 10000 and ", EphemeralPortsStart()));
  }
  return absl::StrCat("--", flag, "=", port);
}

// How a process ended, from its waitpid status: "exit code 1", "killed by signal 9 (Killed)".
std::string ExitText(int status) {
  if (WIFSIGNALED(status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)),
                        ")");
  }
  return absl::StrCat("exit code ", WEXITSTATUS(status));
}

std::string DurationText(RestartPolicy::Duration d) {
  return absl::StrCat(std::chrono::duration<double>(d).count(), " s");
}

// The component of a cluster member, whose certificate it presents: its name up to the first
// '-' ("replay-1" and "replay" are replays, "actor-0" an actor).
std::string ComponentOf(const std::string& member) { return member.substr(0, member.find('-')); }

}  // namespace

std::vector<std::string> ClusterTls::Flags(const std::string& component) const {
  if (!certs_dir.empty()) {
    const std::filesystem::path dir(certs_dir);
    return {"--tls_cert=" + (dir / (component + ".crt")).string(),
            "--tls_key=" + (dir / (component + ".key")).string(),
            "--tls_ca=" + (dir / "ca.crt").string()};
  }
  if (cert.empty()) return {};
  return {"--tls_cert=" + cert, "--tls_key=" + key, "--tls_ca=" + ca};
}

absl::StatusOr<pid_t> LocalCluster::Spawn(const std::string& name, const std::string& binary,
                                          const std::vector<std::string>& args) {
  std::string path = (std::filesystem::path(options_.bin_dir) / binary).string();
  if (access(path.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot run ", path, " (not built?)"));
  }
  std::string log = (std::filesystem::path(options_.workdir) / "logs" / (name + ".log")).string();
  std::vector<std::string> argv_s = {path};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  for (std::string& flag : options_.tls.Flags(ComponentOf(name))) argv_s.push_back(std::move(flag));
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

void LocalCluster::RecordPid(const std::string& name, pid_t pid) const {
  const std::filesystem::path dir = std::filesystem::path(options_.workdir) / "pids";
  const std::string path = (dir / (name + ".pid")).string();
  {
    std::ofstream out(path + ".tmp", std::ios::trunc);
    out << pid << "\n";
  }
  std::error_code ignored;  // the pid file is for people and tests; a failure stops nothing
  std::filesystem::rename(path + ".tmp", path, ignored);
}

absl::Status LocalCluster::Start() {
  namespace fs = std::filesystem;
  fs::create_directories(fs::path(options_.workdir) / "logs");
  fs::create_directories(fs::path(options_.workdir) / "pids");
  fs::create_directories(fs::path(options_.workdir) / "checkpoints");
  std::string port_file = (fs::path(options_.workdir) / "control.port").string();
  fs::remove(port_file);
  // Control on a fixed port, so that every worker (and this driver) reaches it again after a
  // restart; it re-adopts the running job from its SQLite store when the workers report again.
  // It knows the replay's data directories, so that deleting a job removes its data.
  auto control_port = PortFlag("port");
  if (!control_port.ok()) return control_port.status();
  std::vector<std::string> replay_dirs;
  for (int i = 0; i < options_.replay_shards; ++i) {
    replay_dirs.push_back(
        (fs::path(options_.workdir) / ReplayName(i, options_.replay_shards)).string());
  }
  control_.push_back(
      Unit{"control",
           {Member{"control",
                   "rally-control",
                   {*control_port, "--port_file=" + port_file,
                    "--db=" + (fs::path(options_.workdir) / "control.sqlite").string(),
                    "--data_dirs=" + absl::StrJoin(replay_dirs, ",")}}},
           RestartPolicy(RestartPolicy::Options{.max_restarts = options_.max_restarts})});
  if (auto s = StartUnit(control_.back(), Clock::now()); !s.ok()) return s;
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
  const RestartPolicy policy(RestartPolicy::Options{.max_restarts = options_.max_restarts});
  // Servers get a fixed port, so that their clients reconnect to them after a restart.
  for (int i = 0; i < options_.replay_shards; ++i) {
    const std::string name = ReplayName(i, options_.replay_shards);
    auto port_flag = PortFlag("port");
    if (!port_flag.ok()) return port_flag.status();
    workers_.push_back(
        Unit{name,
             {Member{name,
                     "rally-replay",
                     {control, absl::StrCat("--name=replay-", i), *port_flag,
                      "--data_dir=" + (fs::path(options_.workdir) / name).string()}}},
             policy});
  }
  // Learner ranks rendezvous at rank 0 on loopback; rank 0 writes the checkpoints and the
  // others take its state when a job starts (and when the group is restarted).
  Unit learners{"learner", {}, policy};
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
    learners.members.push_back(
        Member{r == 0 ? "learner" : absl::StrCat("learner-", r), "rally-learner", args});
  }
  workers_.push_back(std::move(learners));
  workers_.push_back(
      Unit{"evaluator",
           {Member{"evaluator", "rally-actor", {control, "--mode=eval", "--name=evaluator-0"}}},
           policy});
  for (int i = 0; i < options_.actors; ++i) {
    std::string name = absl::StrCat("actor-", i);
    workers_.push_back(
        Unit{name,
             {Member{name, "rally-actor", {control, "--mode=selfplay", "--name=" + name}}},
             policy});
  }
  for (Unit& unit : workers_) {
    if (auto s = StartUnit(unit, Clock::now()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status LocalCluster::StartUnit(Unit& unit, Clock::time_point now) {
  for (Member& m : unit.members) {
    auto pid = Spawn(m.name, m.binary, m.args);
    if (!pid.ok()) return pid.status();
    m.pid = *pid;
    m.exited = false;
    RecordPid(m.name, m.pid);
  }
  unit.state = Unit::State::kRunning;
  unit.policy.Started(now);
  return absl::OkStatus();
}

std::string LocalCluster::FirstExited() {
  const Clock::time_point now = Clock::now();
  for (auto* units : {&control_, &workers_}) {
    for (Unit& unit : *units) {
      Step(unit, now);
      if (unit.state == Unit::State::kFailed) return unit.failed_member;
    }
  }
  return "";
}

std::map<std::string, int> LocalCluster::restarts() const {
  std::map<std::string, int> out;
  for (const auto* units : {&control_, &workers_}) {
    for (const Unit& unit : *units) {
      if (unit.policy.restarts() > 0) out[unit.name] = unit.policy.restarts();
    }
  }
  return out;
}

void LocalCluster::Step(Unit& unit, Clock::time_point now) {
  using State = Unit::State;
  if (unit.state == State::kFailed || unit.state == State::kStopped) return;
  const Member* first_exit = nullptr;
  bool all_down = true;
  for (Member& m : unit.members) {
    if (!m.exited && waitpid(m.pid, &m.status, WNOHANG) == m.pid) {
      m.exited = true;
      if (first_exit == nullptr) first_exit = &m;
    }
    all_down = all_down && m.exited;
  }
  switch (unit.state) {
    case State::kRunning:
      if (first_exit != nullptr) OnExit(unit, *first_exit, now);
      break;
    case State::kStoppingSurvivors:
      if (all_down) {
        unit.state = State::kWaiting;
      } else if (now >= unit.kill_at) {
        for (const Member& m : unit.members) {
          if (!m.exited) kill(m.pid, SIGKILL);  // reaped by the next step
        }
      }
      break;
    default:
      break;
  }
  if (unit.state == State::kWaiting && now >= unit.restart_at) Restart(unit, now);
}

void LocalCluster::OnExit(Unit& unit, const Member& member, Clock::time_point now) {
  const std::optional<RestartPolicy::Duration> backoff = unit.policy.Exited(now);
  if (!backoff) {
    if (unit.policy.max_restarts() > 0) {
      std::fprintf(stderr, "%s exited (%s); not restarted: its %d restarts are spent\n",
                   member.name.c_str(), ExitText(member.status).c_str(),
                   unit.policy.max_restarts());
    }
    unit.state = Unit::State::kFailed;
    unit.failed_member = member.name;
    return;
  }
  std::string what = unit.members.size() > 1
                         ? absl::StrCat("the ", unit.name, " group (", unit.members.size(),
                                        " ranks) ends its other ranks and restarts")
                         : "restarting it";
  std::fprintf(stderr, "%s exited (%s); %s in %s (restart %d of %d)\n", member.name.c_str(),
               ExitText(member.status).c_str(), what.c_str(), DurationText(*backoff).c_str(),
               unit.policy.restarts(), unit.policy.max_restarts());
  unit.restart_at = now + *backoff;
  unit.state = Unit::State::kWaiting;
  for (const Member& m : unit.members) {
    if (m.exited) continue;
    kill(m.pid, SIGTERM);
    unit.state = Unit::State::kStoppingSurvivors;
    unit.kill_at = now + options_.group_stop_grace;
  }
}

void LocalCluster::Restart(Unit& unit, Clock::time_point now) {
  if (unit.members.size() > 1) {
    // A learner group meets at a fresh master port: the old rank 0's TCPStore socket may still
    // hold the previous one (TIME_WAIT), and a new store must not take a stale one's place.
    auto master_port = PortFlag("master_port");
    if (master_port.ok()) {
      for (Member& m : unit.members) {
        for (std::string& arg : m.args) {
          if (arg.rfind("--master_port=", 0) == 0) arg = *master_port;
        }
      }
    }
  }
  if (auto s = StartUnit(unit, now); !s.ok()) {
    std::fprintf(stderr, "cannot restart %s: %s\n", unit.name.c_str(), s.ToString().c_str());
    for (Member& m : unit.members) {
      if (!m.exited) kill(m.pid, SIGTERM);  // ranks started before the failure; Stop reaps them
    }
    unit.state = Unit::State::kFailed;
    unit.failed_member = unit.members.front().name;
  }
}

void LocalCluster::StopUnits(std::vector<Unit>& units, int grace_ms) {
  for (Unit& unit : units) {
    unit.state = Unit::State::kStopped;
    for (Member& m : unit.members) {
      if (!m.exited) kill(m.pid, SIGTERM);
    }
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  for (Unit& unit : units) {
    for (Member& m : unit.members) {
      while (!m.exited) {
        if (waitpid(m.pid, &m.status, WNOHANG) == m.pid) {
          m.exited = true;
          break;
        }
        if (std::chrono::steady_clock::now() >= deadline) {
          kill(m.pid, SIGKILL);
          waitpid(m.pid, &m.status, 0);
          m.exited = true;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }
}

void LocalCluster::StopWorkers(int grace_ms) { StopUnits(workers_, grace_ms); }

void LocalCluster::Stop(int grace_ms) {
  StopUnits(workers_, grace_ms);
  StopUnits(control_, grace_ms);
}

}  // namespace rally
