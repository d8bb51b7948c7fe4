// A learner killed with SIGKILL mid-job is restarted by rally run and resumes from its last
// checkpoint: the job goes RECOVERING and back to RUNNING, step numbering continues, version
// numbering continues above every version the killed learner may have published (skipping far
// ahead when the record of those was lost), and the job finishes.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "nlohmann/json.hpp"
#include "tests/integration/process.h"

namespace rally {
namespace {

using namespace std::chrono_literals;

// The integer field `key` of the first log line with msg `msg`, or -1.
int64_t LogInt(const std::string& path, const std::string& msg, const std::string& key) {
  for (const nlohmann::json& j : testing::LogLines(path, msg)) {
    if (j.contains(key) && j[key].is_number()) return j[key].get<int64_t>();
  }
  return -1;
}

// One run of the resume job whose learner was killed with SIGKILL after a checkpoint at step 50
// or later, then restarted by rally run.
struct KilledRun {
  std::string dir;
  std::string workdir;
  int64_t checkpoint_step = 0;  // the newest checkpoint seen before the kill
  nlohmann::json summary;
};

// Runs the job, kills its learner and calls `after_kill` (before rally run can have started the
// new learner: that takes seconds), then waits for the job to finish successfully.
void RunKillingTheLearner(const std::string& name,
                          const std::function<void(const std::string& workdir)>& after_kill,
                          KilledRun* out) {
  out->dir = testing::TempDir(name);
  out->workdir = out->dir + "/run";
  const std::string& dir = out->dir;
  testing::Process rally("rally",
                         {"run", testing::SourcePath("tests/integration/configs/resume.yaml"),
                          "--workdir=" + out->workdir, "--summary-json=" + dir + "/summary.json"},
                         dir + "/rally.out");
  // Wait for a checkpoint at step 50 or later, then kill the learner.
  const std::string latest = out->workdir + "/checkpoints/latest";
  for (int i = 0; i < 6000 && out->checkpoint_step < 50; ++i) {
    std::string checkpoint = testing::ReadFile(latest);
    if (checkpoint.rfind("step-", 0) == 0) out->checkpoint_step = std::stoll(checkpoint.substr(5));
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GE(out->checkpoint_step, 50) << testing::ReadFile(dir + "/rally.out");
  int64_t pid = LogInt(out->workdir + "/logs/learner.log", "serving", "pid");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(static_cast<pid_t>(pid), SIGKILL), 0);
  after_kill(out->workdir);

  int status = rally.Wait(240s);
  ASSERT_NE(status, -1) << "rally run did not finish";
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << testing::ReadFile(dir + "/rally.out");
  out->summary = nlohmann::json::parse(testing::ReadFile(dir + "/summary.json"));
  EXPECT_EQ(out->summary["state"], "SUCCEEDED");
  EXPECT_EQ(out->summary["learner_steps"].get<int64_t>(), 1500);
  std::string control = testing::ReadFile(out->workdir + "/logs/control.log");
  EXPECT_NE(control.find("JOB_STATE_RECOVERING"), std::string::npos);
  EXPECT_NE(control.find("training (recovered)"), std::string::npos);
  EXPECT_NE(testing::ReadFile(dir + "/rally.out").find("learner exited"), std::string::npos);
}

TEST(LearnerResume, AKilledLearnerResumesFromItsCheckpoint) {
  KilledRun run;
  ASSERT_NO_FATAL_FAILURE(RunKillingTheLearner(
      "resume", [](const std::string&) {}, &run));
  // The restarted learner resumed from a checkpoint at or after the one seen before the kill.
  const std::string log = run.workdir + "/logs/learner.log";
  int64_t resumed = LogInt(log, "resumed from checkpoint", "step");
  EXPECT_GE(resumed, run.checkpoint_step);
  EXPECT_EQ(resumed % 25, 0);
  EXPECT_EQ(LogInt(log, "resumed from checkpoint", "version"), resumed);
  // Versions are reserved 64 at a time before they are published (the first run reserved 0-63,
  // then 64-127, ...), so the checkpoint's version was at most the last reservation, and the
  // resumed learner went on above it, publishing one version per step: no number was published
  // twice with different weights.
  const std::string next = "policy versions continue above those reserved before the restart";
  const int64_t reserved = LogInt(log, next, "reserved_through");
  EXPECT_EQ(LogInt(log, next, "checkpoint_version"), resumed);
  EXPECT_GE(reserved, resumed);
  EXPECT_EQ(reserved % 64, 63);
  EXPECT_EQ(LogInt(log, next, "version"), reserved + 1);
  EXPECT_EQ(run.summary["policy_version"].get<int64_t>(), reserved + 1 + (1500 - resumed));
}

TEST(LearnerResume, LostReservationsSkipVersionsRatherThanReuseThem) {
  // versions.json damaged while the learner is down: the restarted learner cannot know what
  // the killed one published, so it numbers 2^20 beyond its checkpoint, and the job finishes.
  KilledRun run;
  ASSERT_NO_FATAL_FAILURE(RunKillingTheLearner(
      "resume-lost",
      [](const std::string& workdir) {
        std::ofstream(workdir + "/checkpoints/versions.json", std::ios::trunc) << "{\"job_id\": ";
      },
      &run));
  const std::string log = run.workdir + "/logs/learner.log";
  const int64_t resumed = LogInt(log, "resumed from checkpoint", "step");
  EXPECT_GE(resumed, run.checkpoint_step);
  const std::string lost =
      "reserved policy versions unknown; numbering skips ahead of the "
      "checkpoint so that no version published before the restart is "
      "published again";
  EXPECT_EQ(LogInt(log, lost, "checkpoint_version"), resumed);
  EXPECT_EQ(LogInt(log, lost, "version"), resumed + (int64_t{1} << 20));
  EXPECT_EQ(run.summary["policy_version"].get<int64_t>(),
            resumed + (int64_t{1} << 20) + (1500 - resumed));
  // The first publish after the restart wrote a new reservation over the damaged file.
  auto versions =
      nlohmann::json::parse(testing::ReadFile(run.workdir + "/checkpoints/versions.json"));
  EXPECT_GE(versions["reserved_through"].get<int64_t>(),
            run.summary["policy_version"].get<int64_t>());
}

}  // namespace
}  // namespace rally
