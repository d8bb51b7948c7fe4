// RestartPolicy: when `rally run` starts a process of its local cluster again, and when it gives
// up. Pure logic: the test passes the times of starts and exits, no process or clock is involved.
#include "services/cli/restart_policy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <vector>

namespace rally {
namespace {

using namespace std::chrono_literals;
using Time = RestartPolicy::TimePoint;

// Exits the process `delay` after its start and restarts it as soon as the policy allows: the
// backoffs granted, until the policy refuses or `exits` exits have happened.
std::vector<std::chrono::seconds> BackoffsOfCrashLoop(RestartPolicy& policy, Time& now, int exits,
                                                      std::chrono::seconds run_for = 2s) {
  std::vector<std::chrono::seconds> backoffs;
  for (int i = 0; i < exits; ++i) {
    now += run_for;
    std::optional<RestartPolicy::Duration> backoff = policy.Exited(now);
    if (!backoff) break;
    backoffs.push_back(std::chrono::duration_cast<std::chrono::seconds>(*backoff));
    now += *backoff;
    policy.Started(now);
  }
  return backoffs;
}

TEST(RestartPolicy, BackoffDoublesFromOneSecondUpToThirtySeconds) {
  RestartPolicy policy(RestartPolicy::Options{.max_restarts = 8});
  Time now{};
  policy.Started(now);
  EXPECT_EQ(BackoffsOfCrashLoop(policy, now, 8),
            (std::vector<std::chrono::seconds>{1s, 2s, 4s, 8s, 16s, 30s, 30s, 30s}));
  EXPECT_EQ(policy.restarts(), 8);
}

TEST(RestartPolicy, TheBudgetIsPerProcessAndSpentAfterMaxRestarts) {
  RestartPolicy actor(RestartPolicy::Options{});  // the default budget: 5
  RestartPolicy replay(RestartPolicy::Options{});
  EXPECT_EQ(actor.max_restarts(), 5);
  Time now{};
  actor.Started(now);
  replay.Started(now);
  EXPECT_EQ(BackoffsOfCrashLoop(actor, now, 10).size(), 5u);
  EXPECT_EQ(actor.restarts(), 5);
  EXPECT_FALSE(actor.Exited(now + 1s).has_value());  // spent: reported, not restarted
  EXPECT_TRUE(actor.spent());
  EXPECT_EQ(actor.restarts(), 5);
  // Another process's restarts did not use this one's budget.
  EXPECT_EQ(replay.restarts(), 0);
  EXPECT_FALSE(replay.spent());
  std::optional<RestartPolicy::Duration> backoff = replay.Exited(now + 3s);
  ASSERT_TRUE(backoff.has_value());
  EXPECT_EQ(*backoff, 1s);
  EXPECT_EQ(replay.restarts(), 1);
}

TEST(RestartPolicy, AZeroBudgetNeverRestarts) {
  RestartPolicy control(RestartPolicy::Options{.max_restarts = 0});
  control.Started(Time{});
  EXPECT_FALSE(control.Exited(Time{} + 1h).has_value());
  EXPECT_EQ(control.restarts(), 0);
  EXPECT_TRUE(control.spent());
}

TEST(RestartPolicy, TenMinutesOfRunningResetsTheBackoffButNotTheBudget) {
  RestartPolicy policy(RestartPolicy::Options{.max_restarts = 6});
  Time now{};
  policy.Started(now);
  EXPECT_EQ(BackoffsOfCrashLoop(policy, now, 3), (std::vector<std::chrono::seconds>{1s, 2s, 4s}));
  // Just under ten minutes since the last restart: the backoff keeps doubling.
  EXPECT_EQ(BackoffsOfCrashLoop(policy, now, 1, 599s), (std::vector<std::chrono::seconds>{8s}));
  // Ten minutes exactly: back to one second, then doubling again.
  EXPECT_EQ(BackoffsOfCrashLoop(policy, now, 1, 600s), (std::vector<std::chrono::seconds>{1s}));
  EXPECT_EQ(BackoffsOfCrashLoop(policy, now, 3), (std::vector<std::chrono::seconds>{2s}));
  // The reset gave no restarts back: 6 in all.
  EXPECT_EQ(policy.restarts(), 6);
  EXPECT_FALSE(policy.Exited(now + 1h).has_value());
}

TEST(RestartPolicy, TheTimeRunIsCountedFromTheLastStartNotTheFirst) {
  RestartPolicy policy(RestartPolicy::Options{});
  Time now{};
  policy.Started(now);
  EXPECT_EQ(BackoffsOfCrashLoop(policy, now, 1, 3600s), (std::vector<std::chrono::seconds>{1s}));
  // An hour after the first start but seconds after the restart: no reset.
  EXPECT_EQ(BackoffsOfCrashLoop(policy, now, 2, 5s), (std::vector<std::chrono::seconds>{2s, 4s}));
}

TEST(RestartPolicy, OptionsSetTheCurve) {
  RestartPolicy policy(RestartPolicy::Options{
      .max_restarts = 4, .initial_backoff = 100ms, .max_backoff = 250ms, .stable_after = 1s});
  Time now{};
  policy.Started(now);
  std::vector<RestartPolicy::Duration> backoffs;
  for (int i = 0; i < 4; ++i) {
    now += 10ms;
    backoffs.push_back(policy.Exited(now).value());
    now += backoffs.back();
    policy.Started(now);
  }
  EXPECT_EQ(backoffs, (std::vector<RestartPolicy::Duration>{100ms, 200ms, 250ms, 250ms}));
}

}  // namespace
}  // namespace rally
