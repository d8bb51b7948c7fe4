#include "common/config/job_config.h"

#include <gtest/gtest.h>

namespace rally {
namespace {

std::string Message(const absl::StatusOr<JobConfig>& c) {
  return std::string(c.status().message());
}

TEST(JobConfig, TheDefaultConfigParses) {
  auto c = LoadJobConfig(std::string(RALLY_SOURCE_DIR) + "/configs/tictactoe.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->game.name, "tictactoe");
  EXPECT_EQ(c->target.at("perfect").max_losses, 0);
  EXPECT_DOUBLE_EQ(*c->target.at("random").min_win_rate, 0.9);
  EXPECT_EQ(c->evaluation.games, 1000);
}

TEST(JobConfig, MinimalSpecGetsDefaults) {
  auto c = ParseJobConfig("game: tictactoe\nstop: {max_learner_steps: 10}\n", "min.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->name, "tictactoe");
  EXPECT_EQ(c->learner.algorithm, "reinforce_rae");
  EXPECT_DOUBLE_EQ(c->learner.baseline_decay, 0.95);
  EXPECT_EQ(c->stop.max_learner_steps, 10);
}

TEST(JobConfig, UnknownKeyNamesFileLineAndKey) {
  auto c = ParseJobConfig(
      "game: tictactoe\n"
      "learner:\n"
      "  batch_episodes: 64\n"
      "  learnin_rate: 0.1\n",
      "configs/typo.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(Message(c).find("configs/typo.yaml:4:3: unknown key 'learner.learnin_rate'"),
            std::string::npos)
      << Message(c);
  EXPECT_NE(Message(c).find("learning_rate"), std::string::npos);  // lists the known keys
}

TEST(JobConfig, UnknownTopLevelKey) {
  auto c = ParseJobConfig("game: tictactoe\nlearners: {}\n", "a.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c).find("a.yaml:2:1: unknown key 'learners'"), std::string::npos) << Message(c);
}

TEST(JobConfig, WrongTypeNamesFileLineAndKey) {
  auto c = ParseJobConfig(
      "game: tictactoe\n"
      "actors:\n"
      "  count: many\n",
      "b.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c).find("b.yaml:3:10: actors.count: expected an integer, got 'many'"),
            std::string::npos)
      << Message(c);
}

TEST(JobConfig, UnknownGameNamesFileLineAndKey) {
  auto c = ParseJobConfig("name: x\ngame:\n  name: chess\n", "c.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c).find("c.yaml:3:9: game.name: unknown game 'chess'"), std::string::npos)
      << Message(c);
  EXPECT_NE(Message(c).find("tictactoe"), std::string::npos);
}

TEST(JobConfig, OutOfRangeValuesAndEveryProblemReported) {
  auto c = ParseJobConfig(
      "game: tictactoe\n"
      "learner:\n"
      "  learning_rate: -1\n"
      "  baseline_decay: 1.5\n"
      "actors:\n"
      "  opponents: {random: 0.7, perfect: 0.6}\n",
      "d.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c).find("d.yaml:3:18: learner.learning_rate: must be positive"),
            std::string::npos)
      << Message(c);
  EXPECT_NE(Message(c).find("learner.baseline_decay: must lie in [0, 1)"), std::string::npos);
  EXPECT_NE(Message(c).find("shares sum to more than 1"), std::string::npos);
}

TEST(JobConfig, MissingGameAndNeverEndingJobsAreErrors) {
  EXPECT_NE(Message(ParseJobConfig("seed: 3\n", "e.yaml")).find("game: required"),
            std::string::npos);
  auto forever = ParseJobConfig("game: tictactoe\nstop: {max_wall_seconds: 0}\n", "f.yaml");
  EXPECT_NE(Message(forever).find("never ends"), std::string::npos);
}

TEST(JobConfig, InvalidYamlSaysWhere) {
  auto c = ParseJobConfig("game: [tictactoe\n", "g.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(Message(c).find("g.yaml:"), std::string::npos);
  EXPECT_NE(Message(c).find("invalid YAML"), std::string::npos);
}

TEST(JobConfig, BestResponseNeedsASmallGame) {
  auto ok = ParseJobConfig(
      "game: kuhn_poker\n"
      "evaluation: {opponents: [best_response]}\n"
      "target: {best_response: {max_exploitability: 0.02}}\n",
      "k.yaml");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_DOUBLE_EQ(*ok->target.at("best_response").max_exploitability, 0.02);
  auto big = ParseJobConfig(
      "game: connect_four\nevaluation: {opponents: [best_response]}\nstop: {max_learner_steps: "
      "1}\n",
      "c4.yaml");
  EXPECT_NE(Message(big).find("needs the full game tree"), std::string::npos) << Message(big);
  auto wrong = ParseJobConfig(
      "game: kuhn_poker\nevaluation: {opponents: [perfect]}\nstop: {max_learner_steps: 1}\n",
      "p.yaml");
  EXPECT_NE(Message(wrong).find("exists for tictactoe only"), std::string::npos) << Message(wrong);
}

TEST(JobConfig, TargetNeedsItsOpponentEvaluated) {
  auto c = ParseJobConfig(
      "game: tictactoe\n"
      "evaluation: {opponents: [random]}\n"
      "target: {perfect: {max_losses: 0}}\n",
      "h.yaml");
  EXPECT_NE(Message(c).find("target.perfect: has a target but is not in evaluation.opponents"),
            std::string::npos)
      << Message(c);
}

}  // namespace
}  // namespace rally
