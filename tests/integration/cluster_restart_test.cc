// `rally run` restarts the workers of its local cluster that exit: an actor and the evaluator
// killed with SIGKILL mid-job are started again and the job finishes, the restarts reported on
// stderr, on the progress line and in the summary JSON; a learner group that loses a rank is
// restarted as a whole and its ranks meet again, and when that happens mid-job the job resumes
// from rank 0's checkpoint and succeeds.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "common/net/control_client.h"
#include "common/net/server.h"
#include "nlohmann/json.hpp"
#include "rally/v1/control.grpc.pb.h"
#include "services/cli/local_cluster.h"
#include "tests/integration/process.h"

namespace rally {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// The pid of the child of `parent` whose command line has the argument `arg`, or -1.
pid_t ChildWithArg(pid_t parent, const std::string& arg) {
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return -1;
  pid_t found = -1;
  while (dirent* entry = readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
    if (pid <= 0) continue;
    // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so parse after ')'.
    std::string stat = testing::ReadFile("/proc/" + std::to_string(pid) + "/stat");
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid != parent) continue;
    std::string cmdline = testing::ReadFile("/proc/" + std::to_string(pid) + "/cmdline");
    std::istringstream args(cmdline);
    for (std::string a; std::getline(args, a, '\0');) {
      if (a == arg) found = pid;
    }
    if (found > 0) break;
  }
  closedir(proc);
  return found;
}

// Waits up to `timeout` for `done`; true if it held.
bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  for (auto end = Clock::now() + timeout; Clock::now() < end;) {
    if (done()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return done();
}

size_t CountLogLines(const std::string& path, const std::string& msg) {
  return testing::LogLines(path, msg).size();
}

// A `rally run` of configs/restarts.yaml (30 s of wall time).
struct RallyRun {
  explicit RallyRun(const std::string& name) : dir(testing::TempDir(name)), workdir(dir + "/run") {
    std::vector<std::string> args = {
        "run", testing::SourcePath("tests/integration/configs/restarts.yaml"),
        "--workdir=" + workdir, "--summary-json=" + dir + "/summary.json"};
    rally = std::make_unique<testing::Process>("rally", args, dir + "/rally.out");
  }
  std::string Log(const std::string& process) const {
    return workdir + "/logs/" + process + ".log";
  }
  std::string Out() const { return testing::ReadFile(dir + "/rally.out"); }
  // SIGKILLs the cluster's process started with `name_arg` (e.g. "--name=actor-0").
  void Kill(const std::string& name_arg) const {
    pid_t pid = ChildWithArg(rally->pid(), name_arg);
    ASSERT_GT(pid, 0) << name_arg;
    ASSERT_EQ(kill(pid, SIGKILL), 0) << name_arg;
  }
  // Waits for rally run to exit and reads the summary it wrote.
  void Finish(nlohmann::json* summary) const {
    int status = rally->Wait(120s);
    ASSERT_NE(status, -1) << "rally run did not finish\n" << Out();
    ASSERT_TRUE(WIFEXITED(status)) << Out();
    EXPECT_EQ(WEXITSTATUS(status), 0) << Out();
    *summary = nlohmann::json::parse(testing::ReadFile(dir + "/summary.json"));
  }

  std::string dir;
  std::string workdir;
  std::unique_ptr<testing::Process> rally;
};

TEST(ClusterRestarts, AKilledActorAndEvaluatorAreRestartedAndTheJobSucceeds) {
  const auto start = Clock::now();
  RallyRun run("restarts");
  // Both work the job: the actor inserts, the evaluator finished a round.
  ASSERT_TRUE(WaitFor(
      [&] {
        return CountLogLines(run.Log("actor-0"), "inserting as producer") >= 1 &&
               CountLogLines(run.Log("evaluator"), "evaluation") >= 1;
      },
      60s))
      << run.Out();
  ASSERT_NO_FATAL_FAILURE(run.Kill("--name=actor-0"));
  ASSERT_NO_FATAL_FAILURE(run.Kill("--name=evaluator-0"));
  const size_t evaluations_before = CountLogLines(run.Log("evaluator"), "evaluation");
  // Each is started again about a second later (the first backoff), under the same name and log.
  ASSERT_TRUE(WaitFor(
      [&] {
        return CountLogLines(run.Log("actor-0"), "started") == 2 &&
               CountLogLines(run.Log("evaluator"), "started") == 2;
      },
      20s))
      << run.Out();
  nlohmann::json summary;
  ASSERT_NO_FATAL_FAILURE(run.Finish(&summary));
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  EXPECT_EQ(summary["state"], "SUCCEEDED") << summary.dump(2);
  EXPECT_EQ(summary["restarts"], nlohmann::json({{"actor-0", 1}, {"evaluator", 1}}))
      << summary.dump(2);
  // The restarted processes worked the job again.
  EXPECT_EQ(CountLogLines(run.Log("actor-0"), "inserting as producer"), 2u);
  EXPECT_GT(CountLogLines(run.Log("evaluator"), "evaluation"), evaluations_before);
  EXPECT_GT(summary["learner_steps"].get<int64_t>(), 0);
  // One stderr line per restart: the exit status, the restart number, the budget, the backoff.
  const std::string out = run.Out();
  for (const char* line : {"actor-0 exited (killed by signal 9 (Killed)); restarting it in 1 s "
                           "(restart 1 of 5)",
                           "evaluator exited (killed by signal 9 (Killed)); restarting it in 1 s "
                           "(restart 1 of 5)"}) {
    EXPECT_NE(out.find(line), std::string::npos) << line << "\n" << out;
  }
  // The progress line says so (the last one is printed as the job ends).
  EXPECT_NE(out.find("  | restarts: actor-0 ×1, evaluator ×1\n"), std::string::npos) << out;
  // Bounded: the job's 30 s, start, restarts and stop.
  EXPECT_LT(seconds, 90) << out;
}

// The value of the `--flag=` argument of process `pid`, or "".
std::string ArgOf(pid_t pid, const std::string& flag) {
  std::istringstream args(testing::ReadFile("/proc/" + std::to_string(pid) + "/cmdline"));
  for (std::string a; std::getline(args, a, '\0');) {
    if (a.rfind(flag, 0) == 0) return a.substr(flag.size());
  }
  return "";
}

// The pid in the last "serving" line of a learner's log, or -1.
pid_t ServingPid(const std::string& log) {
  auto lines = testing::LogLines(log, "serving");
  return lines.empty() ? -1 : static_cast<pid_t>(lines.back()["pid"].get<int64_t>());
}

// Drives LocalCluster itself: rank 1 is killed before any job, so that the test sees the whole
// group restart and then a job trained by the restarted ranks, which meet at a new master port.
// (The next test kills a rank in the middle of a job.)
TEST(ClusterRestarts, AKilledControlIsRestartedAndReadoptsTheRunningJob) {
  RallyRun run("control_restart");
  ASSERT_TRUE(
      WaitFor([&] { return CountLogLines(run.Log("actor-0"), "inserting as producer") >= 1; }, 60s))
      << run.Out();
  ASSERT_NO_FATAL_FAILURE(run.Kill("--db=" + run.workdir + "/control.sqlite"));
  // Started again about a second later, on the same port, with the same store.
  ASSERT_TRUE(WaitFor([&] { return CountLogLines(run.Log("control"), "serving") >= 2; }, 20s))
      << run.Out();
  nlohmann::json summary;
  ASSERT_NO_FATAL_FAILURE(run.Finish(&summary));
  EXPECT_EQ(summary["state"], "SUCCEEDED") << summary.dump(2);
  EXPECT_EQ(summary["restarts"], nlohmann::json({{"control", 1}})) << summary.dump(2);
  EXPECT_GT(summary["learner_steps"].get<int64_t>(), 0);
  // The actor was never restarted: it kept playing while control was away.
  EXPECT_EQ(CountLogLines(run.Log("actor-0"), "started"), 1u);
  EXPECT_NE(run.Out().find("control exited (killed by signal 9 (Killed)); restarting it in 1 s "
                           "(restart 1 of 5)"),
            std::string::npos)
      << run.Out();
}

TEST(ClusterRestarts, ALearnerGroupThatLosesARankRestartsAsAWholeAndMeetsAgain) {
  const auto start = Clock::now();
  const std::string dir = testing::TempDir("group_restart");
  ClusterOptions options;
  options.bin_dir = RALLY_BIN_DIR;
  options.workdir = dir + "/run";
  options.learners = 2;
  options.group_stop_grace = 5s;
  LocalCluster cluster(options);
  ASSERT_TRUE(cluster.Start().ok());
  const std::string rank0_log = options.workdir + "/logs/learner.log";
  const std::string rank1_log = options.workdir + "/logs/learner-1.log";
  ASSERT_TRUE(WaitFor([&] { return ServingPid(rank0_log) > 0 && ServingPid(rank1_log) > 0; }, 30s));
  const pid_t old_rank0 = ServingPid(rank0_log);
  const std::string old_master_port = ArgOf(old_rank0, "--master_port=");
  ASSERT_FALSE(old_master_port.empty());
  ASSERT_EQ(kill(ServingPid(rank1_log), SIGKILL), 0);

  // FirstExited() ends rank 0 and, a second after the exit, starts both ranks again.
  ASSERT_TRUE(WaitFor(
      [&] {
        EXPECT_EQ(cluster.FirstExited(), "");
        return CountLogLines(rank0_log, "serving") == 2 && CountLogLines(rank1_log, "serving") == 2;
      },
      30s))
      << testing::ReadFile(rank0_log);
  EXPECT_EQ(cluster.restarts(), (std::map<std::string, int>{{"learner", 1}}));
  EXPECT_NE(testing::ReadFile(rank0_log).find("\"signal\":\"SIGTERM\""), std::string::npos)
      << "rank 0 was ended by SIGTERM";
  const std::string new_master_port = ArgOf(ServingPid(rank0_log), "--master_port=");
  EXPECT_NE(new_master_port, old_master_port);
  EXPECT_EQ(ArgOf(ServingPid(rank1_log), "--master_port="), new_master_port);

  // The restarted ranks meet and train a job to its end.
  auto stub = v1::JobService::NewStub(MakeChannel(cluster.control_address()));
  v1::Job job;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(10s));
    v1::SubmitJobRequest req;
    req.set_spec_yaml(
        testing::ReadFile(testing::SourcePath("tests/integration/configs/short.yaml")));
    ASSERT_TRUE(stub->SubmitJob(&ctx, req, &job).ok());
  }
  ASSERT_TRUE(WaitFor(
      [&] {
        EXPECT_EQ(cluster.FirstExited(), "");
        grpc::ClientContext ctx;
        ctx.set_deadline(DeadlineIn(5s));
        v1::GetJobRequest req;
        req.set_id(job.id());
        if (v1::Job latest; stub->GetJob(&ctx, req, &latest).ok()) job = latest;
        return IsTerminal(job.state());
      },
      90s))
      << job.DebugString();
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.DebugString();
  EXPECT_EQ(job.progress().learner_steps(), 100);
  for (const std::string& log : {rank0_log, rank1_log}) {
    EXPECT_EQ(CountLogLines(log, "data parallel"), 1u) << testing::ReadFile(log);
  }
  EXPECT_EQ(cluster.restarts(), (std::map<std::string, int>{{"learner", 1}}));
  cluster.Stop();
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - start).count(), 90);
}

// A job of `cluster`, asked for with GetJob.
class JobWatch {
 public:
  JobWatch(LocalCluster& cluster, const std::string& spec_path)
      : cluster_(cluster), stub_(v1::JobService::NewStub(MakeChannel(cluster.control_address()))) {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(10s));
    v1::SubmitJobRequest req;
    req.set_spec_yaml(testing::ReadFile(testing::SourcePath(spec_path)));
    submitted_ = stub_->SubmitJob(&ctx, req, &job_).ok();
  }
  bool submitted() const { return submitted_; }
  const v1::Job& job() const { return job_; }
  // Lets the cluster restart what exited (nothing may stay down), then reads the job.
  const v1::Job& Poll() {
    EXPECT_EQ(cluster_.FirstExited(), "");
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(5s));
    v1::GetJobRequest req;
    req.set_id(job_.id());
    if (v1::Job latest; stub_->GetJob(&ctx, req, &latest).ok()) job_ = latest;
    return job_;
  }

 private:
  LocalCluster& cluster_;
  std::unique_ptr<v1::JobService::Stub> stub_;
  v1::Job job_;
  bool submitted_ = false;
};

// Rank 1 is SIGKILLed while the two ranks train a job. Rank 0's all-reduce fails at once; it
// takes that for a lost peer, not for the job's error: it exits (75) without telling control of
// an error, the cluster restarts the group, and the new ranks resume from rank 0's latest
// checkpoint (rank 1 taking rank 0's state) and train the job to its last step.
TEST(ClusterRestarts, ALearnerRankKilledMidJobRestartsTheGroupWhichResumesTheJob) {
  const auto start = Clock::now();
  const std::string dir = testing::TempDir("group_restart_mid_job");
  ClusterOptions options;
  options.bin_dir = RALLY_BIN_DIR;
  options.workdir = dir + "/run";
  options.learners = 2;
  options.group_stop_grace = 5s;
  LocalCluster cluster(options);
  ASSERT_TRUE(cluster.Start().ok());
  const std::string rank0_log = options.workdir + "/logs/learner.log";
  const std::string rank1_log = options.workdir + "/logs/learner-1.log";
  JobWatch watch(cluster, "tests/integration/configs/group_restart.yaml");
  ASSERT_TRUE(watch.submitted());

  // Mid-job: running, past rank 0's second checkpoint (every 10 steps) and far from its last.
  constexpr int64_t kJobSteps = 600;  // configs/group_restart.yaml
  ASSERT_TRUE(WaitFor(
      [&] {
        const v1::Job& job = watch.Poll();
        return IsTerminal(job.state()) || job.progress().learner_steps() >= 25;
      },
      90s))
      << watch.job().DebugString();
  ASSERT_EQ(watch.job().state(), v1::JOB_STATE_RUNNING) << watch.job().DebugString();
  const int64_t steps_at_kill = watch.job().progress().learner_steps();
  ASSERT_LT(steps_at_kill, kJobSteps - 100);
  ASSERT_EQ(kill(ServingPid(rank1_log), SIGKILL), 0);

  ASSERT_TRUE(WaitFor([&] { return IsTerminal(watch.Poll().state()); }, 120s))
      << watch.job().DebugString() << testing::ReadFile(rank0_log);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const v1::Job& job = watch.job();
  EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.DebugString();
  EXPECT_EQ(job.progress().learner_steps(), kJobSteps) << job.DebugString();
  EXPECT_EQ(cluster.restarts(), (std::map<std::string, int>{{"learner", 1}}));

  // Rank 0 left the group for the lost peer, and reported no error.
  const std::string rank0 = testing::ReadFile(rank0_log);
  EXPECT_EQ(CountLogLines(rank0_log, "lost a peer rank; exiting so the group restarts"), 1u)
      << rank0;
  EXPECT_EQ(CountLogLines(rank0_log, "job failed"), 0u) << rank0;
  auto stopped = testing::LogLines(rank0_log, "stopped");
  ASSERT_FALSE(stopped.empty()) << rank0;
  EXPECT_EQ(stopped.front()["exit_code"], 75) << rank0;

  // The restarted rank 0 resumed from a checkpoint it wrote before the kill, and rank 1 took its
  // state: both start training at that step.
  auto resumed = testing::LogLines(rank0_log, "resumed from checkpoint");
  ASSERT_EQ(resumed.size(), 1u) << rank0;
  const int64_t resumed_step = resumed.front()["step"].get<int64_t>();
  EXPECT_GE(resumed_step, 10);
  EXPECT_EQ(resumed_step % 10, 0);
  EXPECT_LT(resumed_step, kJobSteps);
  for (const std::string& log : {rank0_log, rank1_log}) {
    auto data_parallel = testing::LogLines(log, "data parallel");
    ASSERT_EQ(data_parallel.size(), 2u) << testing::ReadFile(log);
    EXPECT_EQ(data_parallel.front()["step"], 0) << log;
    EXPECT_EQ(data_parallel.back()["step"], resumed_step) << log;
  }
  cluster.Stop();
  EXPECT_LT(seconds, 150) << rank0;
}

}  // namespace
}  // namespace rally
