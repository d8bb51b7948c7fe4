// rally-control killed with SIGKILL while a job runs and a second one waits: the workers keep
// going while control is away; control, started again on the same store, knows both jobs,
// re-adopts the running one when its workers register again, the job finishes, the waiting one
// then runs, and both histories are intact, the outage recorded in the first.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "common/net/control_client.h"
#include "tests/integration/control_cluster.h"

namespace rally {
namespace {

using namespace std::chrono_literals;
using testing::ControlCluster;
using testing::HistoryStates;
using testing::SmallJobSpec;

bool HistoryHas(const v1::Job& job, v1::JobState state, const std::string& reason_part) {
  for (const v1::JobTransition& t : job.history()) {
    if (t.state() == state && t.reason().find(reason_part) != std::string::npos) return true;
  }
  return false;
}

TEST(ControlCrash, AKilledControlReadoptsTheRunningJobAndKeepsThePendingOne) {
  ControlCluster cluster(testing::TempDir("control-crash"));
  ASSERT_NO_FATAL_FAILURE(cluster.StartControl());
  cluster.StartWorkers();
  const v1::Job first = cluster.Submit(SmallJobSpec("first", 1000000, 40), "crash-first");
  const v1::Job second = cluster.Submit(SmallJobSpec("second", 30), "crash-second");
  ASSERT_FALSE(first.id().empty());
  ASSERT_FALSE(second.id().empty());
  v1::Job running;
  ASSERT_TRUE(cluster.WaitForJob(
      first.id(),
      [](const v1::Job& j) {
        return j.state() == v1::JOB_STATE_RUNNING && j.progress().learner_steps() >= 50;
      },
      120s, &running))
      << running.DebugString() << testing::ReadFile(cluster.log("control"));
  const int64_t steps_before = running.progress().learner_steps();

  cluster.KillControl();
  // The workers keep working while control is away.
  std::this_thread::sleep_for(3s);
  ASSERT_NO_FATAL_FAILURE(cluster.StartControl());

  // Both jobs are known at once, from the store alone: the first re-adopted, the second waiting.
  const v1::Job readopted = cluster.Get(first.id());
  const v1::Job waiting = cluster.Get(second.id());
  EXPECT_TRUE(readopted.state() == v1::JOB_STATE_RECOVERING ||
              readopted.state() == v1::JOB_STATE_RUNNING)
      << readopted.DebugString();
  EXPECT_EQ(waiting.state(), v1::JOB_STATE_PENDING) << waiting.DebugString();
  EXPECT_EQ(waiting.request_id(), "crash-second");

  v1::Job done;
  ASSERT_TRUE(cluster.WaitForJob(
      first.id(), [](const v1::Job& j) { return IsTerminal(j.state()); }, 180s, &done))
      << done.DebugString() << testing::ReadFile(cluster.log("control"));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  EXPECT_EQ(done.reason(), "reached stop.max_wall_seconds (40 s)");
  EXPECT_GT(done.progress().learner_steps(), steps_before);
  EXPECT_EQ(HistoryStates(done), "PENDING,STARTING,RUNNING,RECOVERING,RUNNING,SUCCEEDED")
      << done.DebugString();
  EXPECT_TRUE(
      HistoryHas(done, v1::JOB_STATE_RECOVERING, "control restarted while the job was RUNNING"))
      << done.DebugString();
  EXPECT_TRUE(HistoryHas(done, v1::JOB_STATE_RUNNING, "training (recovered)"))
      << done.DebugString();
  // The learner was never restarted: it trained through the outage.
  EXPECT_EQ(testing::LogLines(cluster.log("learner"), "serving").size(), 1u);

  v1::Job second_done;
  ASSERT_TRUE(cluster.WaitForJob(
      second.id(), [](const v1::Job& j) { return IsTerminal(j.state()); }, 120s, &second_done))
      << second_done.DebugString() << testing::ReadFile(cluster.log("control"));
  EXPECT_EQ(second_done.state(), v1::JOB_STATE_SUCCEEDED) << second_done.DebugString();
  EXPECT_EQ(HistoryStates(second_done), "PENDING,STARTING,RUNNING,SUCCEEDED")
      << second_done.DebugString();
  EXPECT_EQ(second_done.history(0).reason(), "waiting for the cluster");
  // The second ran after the first ended.
  EXPECT_GE(second_done.history(1).unix_micros(), done.history().rbegin()->unix_micros());
}

}  // namespace
}  // namespace rally
