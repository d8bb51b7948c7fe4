// Fictitious self-play end to end: with curriculum.opponent_selection uniform, rally-replay fills
// the curriculum's opponent pool from the learner's snapshot pool, and actors play episodes
// against the snapshots the curriculum picks and report their outcomes back.
#include <gtest/gtest.h>

#include <set>

#include "nlohmann/json.hpp"
#include "tests/integration/process.h"

namespace rally {
namespace {

using namespace std::chrono_literals;

using testing::LogLines;

TEST(Curriculum, ActorsPlaySnapshotsTheCurriculumPicksAndReportBack) {
  const std::string dir = testing::TempDir("fsp");
  const std::string workdir = dir + "/run";
  int code =
      testing::RunToCompletion("rally",
                               {"run", testing::SourcePath("tests/integration/configs/fsp.yaml"),
                                "--workdir=" + workdir, "--summary-json=" + dir + "/summary.json"},
                               dir + "/rally.out", 240s);
  ASSERT_EQ(code, 0) << testing::ReadFile(dir + "/rally.out");
  auto summary = nlohmann::json::parse(testing::ReadFile(dir + "/summary.json"));
  EXPECT_EQ(summary["state"], "SUCCEEDED") << summary.dump(2);
  EXPECT_EQ(summary["learner_steps"].get<int64_t>(), 600);

  // The actor: episodes against at least two distinct snapshots, their outcomes accepted.
  auto actor = LogLines(workdir + "/logs/actor-0.log", "curriculum opponents");
  ASSERT_EQ(actor.size(), 1u) << testing::ReadFile(workdir + "/logs/actor-0.log");
  const nlohmann::json& a = actor[0];
  EXPECT_GE(a["distinct_snapshots"].get<int64_t>(), 2) << a.dump();
  EXPECT_GE(a["episodes_snapshot"].get<int64_t>(), 100) << a.dump();
  EXPECT_GE(a["episodes_latest"].get<int64_t>(), 1) << a.dump();
  EXPECT_GE(a["outcomes_reported"].get<int64_t>(), 100) << a.dump();
  EXPECT_EQ(a["fetch_failures"].get<int64_t>() + a["outcomes_refused"].get<int64_t>() <
                a["outcomes_reported"].get<int64_t>(),
            true)
      << a.dump();

  // The replay: its pool is snapshots, and its windows hold games against snapshots.
  auto opponents = LogLines(workdir + "/logs/replay.log", "curriculum opponent");
  std::set<std::string> pool;
  int64_t snapshot_games = 0;
  for (const auto& o : opponents) {
    const std::string id = o["opponent"].get<std::string>();
    if (id == "latest") continue;
    EXPECT_EQ(id.rfind("snapshot-", 0), 0u) << id;
    pool.insert(id);
    snapshot_games += o["games"].get<int64_t>();
  }
  EXPECT_GE(pool.size(), 2u) << testing::ReadFile(workdir + "/logs/replay.log");
  EXPECT_LE(pool.size(), 4u);  // snapshot_pool_size
  EXPECT_GE(snapshot_games, 1);

  // The evaluator's league: the latest version against the pool's snapshots, Elo with random at
  // 0, in the job status and the evaluator's log.
  ASSERT_TRUE(summary["eval"].contains("league")) << summary.dump(2);
  EXPECT_GT(summary["eval"]["league"]["games"].get<int64_t>(), 0);
  EXPECT_GT(summary["eval"]["league"]["elo"].get<double>(), 0);  // 600 steps beat random
  auto league = LogLines(workdir + "/logs/evaluator.log", "league");
  ASSERT_FALSE(league.empty()) << testing::ReadFile(workdir + "/logs/evaluator.log");
  auto ratings = nlohmann::json::parse(league.back()["ratings"].get<std::string>());
  EXPECT_EQ(ratings["random"].get<double>(), 0);
  int rated_versions = 0;
  for (const auto& [player, rating] : ratings.items()) rated_versions += player[0] == 'v';
  EXPECT_GE(rated_versions, 3) << ratings.dump();  // evaluated versions and snapshots
  EXPECT_GE(league.back()["snapshots"].get<int64_t>(), 2) << league.back().dump();
}

}  // namespace
}  // namespace rally
