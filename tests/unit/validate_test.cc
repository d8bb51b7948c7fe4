#include "services/replay/validate.h"

#include <gtest/gtest.h>

#include "common/games/tictactoe.h"

namespace rally {
namespace {

v1::Trajectory Valid() {
  v1::Trajectory t;
  t.set_game("tictactoe");
  t.add_learning_seats(0);
  t.add_learning_seats(1);
  t.add_returns(0);
  t.add_returns(0);
  v1::Turn* turn = t.add_turns();
  turn->set_seat(0);
  for (int i = 0; i < 27; ++i) turn->add_observation(i >= 18 ? 1.f : 0.f);
  for (int a = 0; a < 9; ++a) turn->add_legal_actions(a);
  turn->set_action(4);
  turn->add_behaviour_log_probs(-2.0f);
  return t;
}

std::string Check(const v1::Trajectory& t) {
  absl::Status s = ValidateTrajectory(TicTacToeGame(), t);
  return s.ok() ? "ok" : std::string(s.message());
}

TEST(ValidateTrajectory, AcceptsATrajectoryThatFits) { EXPECT_EQ(Check(Valid()), "ok"); }

TEST(ValidateTrajectory, NamesTheFieldThatDoesNotFit) {
  auto t = Valid();
  t.set_game("chess");
  EXPECT_EQ(Check(t), "game: 'chess' but this job plays 'tictactoe'");

  t = Valid();
  t.mutable_turns(0)->set_action(11);
  EXPECT_EQ(Check(t),
            "turns[0].action: 11 is not among the legal actions [0, 1, 2, 3, 4, 5, 6, 7, 8]");

  t = Valid();
  t.mutable_turns(0)->mutable_observation()->RemoveLast();
  EXPECT_EQ(Check(t), "turns[0].observation: 26 floats, the game's observation has 27");

  t = Valid();
  t.mutable_turns(0)->set_observation(3, std::nanf(""));
  EXPECT_EQ(Check(t), "turns[0].observation: holds a value that is not finite");

  t = Valid();
  t.add_returns(1);
  EXPECT_EQ(Check(t), "returns: 3 entries, the game has 2 players");

  t = Valid();
  t.set_returns(1, INFINITY);
  EXPECT_EQ(Check(t), "returns[1]: not finite");

  t = Valid();
  t.mutable_turns(0)->set_seat(2);
  EXPECT_EQ(Check(t), "turns[0].seat: 2 out of range [0, 2)");

  t = Valid();
  t.mutable_turns(0)->set_behaviour_log_probs(0, 0.5f);
  EXPECT_EQ(Check(t),
            "turns[0].behaviour_log_probs[0]: 0.5 is above 0, the log-probability of a certain "
            "action");

  t = Valid();
  t.mutable_turns(0)->set_legal_actions(1, 0);
  EXPECT_EQ(Check(t), "turns[0].legal_actions: not strictly ascending");

  t = Valid();
  for (int i = 0; i < 9; ++i) *t.add_turns() = t.turns(0);
  EXPECT_EQ(Check(t), "turns: 10 turns, longer than the game's maximum 9");

  t = Valid();
  t.clear_turns();
  EXPECT_EQ(Check(t), "turns: empty");
}

TEST(ValidateTrajectory, BehaviourLogProbsLieInTheRangeASampledActionCanHave) {
  auto t = Valid();
  for (int i = 0; i < 3; ++i) *t.add_turns() = t.turns(0);
  t.mutable_turns(3)->set_behaviour_log_probs(0, -1e30f);
  EXPECT_EQ(Check(t),
            "turns[3].behaviour_log_probs[0]: -1e+30 is below -100: an action of probability "
            "e^-100 is never sampled, so this is not the log-probability of the action drawn");
  t.mutable_turns(3)->set_behaviour_log_probs(0, std::nanf(""));
  EXPECT_EQ(Check(t), "turns[3].behaviour_log_probs[0]: not finite");
  t.mutable_turns(3)->set_behaviour_log_probs(0, -INFINITY);
  EXPECT_EQ(Check(t), "turns[3].behaviour_log_probs[0]: not finite");
  // Both ends of the range are accepted.
  t.mutable_turns(3)->set_behaviour_log_probs(0, -100.f);
  t.mutable_turns(2)->set_behaviour_log_probs(0, 0.f);
  EXPECT_EQ(Check(t), "ok");
}

TEST(ValidateTrajectory, TaskAndOpponentIdsAreAtMost256Bytes) {
  auto t = Valid();
  t.set_task_id(std::string(256, 't'));
  t.set_opponent_id(std::string(256, 'o'));
  EXPECT_EQ(Check(t), "ok");
  t.set_task_id(std::string(257, 't'));
  EXPECT_EQ(Check(t), "task_id: 257 bytes, longer than the limit of 256");
  t.set_task_id("");
  t.set_opponent_id(std::string(100000, 'o'));
  EXPECT_EQ(Check(t), "opponent_id: 100000 bytes, longer than the limit of 256");
}

TEST(ValidateTrajectory, RewardsAndReturnsAreAtMostAMillionInMagnitude) {
  auto t = Valid();
  t.set_returns(0, 1e6f);
  t.set_returns(1, -1e6f);
  t.mutable_turns(0)->set_reward(-1e6f);
  EXPECT_EQ(Check(t), "ok");
  t.set_returns(1, -3e38f);
  EXPECT_EQ(Check(t), "returns[1]: -3e+38 is outside [-1e+06, 1e+06]");
  t = Valid();
  *t.add_turns() = t.turns(0);
  t.mutable_turns(1)->set_reward(2e6f);
  EXPECT_EQ(Check(t), "turns[1].reward: 2e+06 is outside [-1e+06, 1e+06]");
}

}  // namespace
}  // namespace rally
