// A learner killed with SIGKILL mid-job is restarted by rally run and resumes from its last
// checkpoint: the job goes RECOVERING and back to RUNNING, step numbering continues, version
// numbering continues above every version the killed learner may have published, and the job
// finishes.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
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

TEST(LearnerResume, AKilledLearnerResumesFromItsCheckpoint) {
  const std::string dir = testing::TempDir("resume");
  const std::string workdir = dir + "/run";
  testing::Process rally("rally",
                         {"run", testing::SourcePath("tests/integration/configs/resume.yaml"),
                          "--workdir=" + workdir, "--summary-json=" + dir + "/summary.json"},
                         dir + "/rally.out");
  // Wait for a checkpoint at step 50 or later, then kill the learner.
  const std::string latest = workdir + "/checkpoints/latest";
  int64_t checkpoint_step = 0;
  for (int i = 0; i < 6000 && checkpoint_step < 50; ++i) {
    std::string name = testing::ReadFile(latest);
    if (name.rfind("step-", 0) == 0) checkpoint_step = std::stoll(name.substr(5));
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GE(checkpoint_step, 50) << testing::ReadFile(dir + "/rally.out");
  int64_t pid = LogInt(workdir + "/logs/learner.log", "serving", "pid");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(static_cast<pid_t>(pid), SIGKILL), 0);

  int status = rally.Wait(240s);
  ASSERT_NE(status, -1) << "rally run did not finish";
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << testing::ReadFile(dir + "/rally.out");
  auto summary = nlohmann::json::parse(testing::ReadFile(dir + "/summary.json"));
  EXPECT_EQ(summary["state"], "SUCCEEDED");
  EXPECT_EQ(summary["learner_steps"].get<int64_t>(), 1500);
  // The restarted learner resumed from a checkpoint at or after the one seen before the kill.
  const std::string log = workdir + "/logs/learner.log";
  int64_t resumed = LogInt(log, "resumed from checkpoint", "step");
  EXPECT_GE(resumed, checkpoint_step);
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
  EXPECT_EQ(summary["policy_version"].get<int64_t>(), reserved + 1 + (1500 - resumed));
  std::string control = testing::ReadFile(workdir + "/logs/control.log");
  EXPECT_NE(control.find("JOB_STATE_RECOVERING"), std::string::npos);
  EXPECT_NE(control.find("training (recovered)"), std::string::npos);
  EXPECT_NE(testing::ReadFile(dir + "/rally.out").find("learner exited"), std::string::npos);
}

}  // namespace
}  // namespace rally
