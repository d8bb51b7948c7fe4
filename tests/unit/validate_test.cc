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

// A language-model turn: the prompt's tokens, the generated tokens, one behaviour log-probability
// and one policy version per generated token; no float observation; legal_actions only as token
// ids.
v1::Trajectory ValidTokens() {
  v1::Trajectory t = Valid();
  v1::Turn* turn = t.mutable_turns(0);
  turn->clear_observation();
  turn->clear_legal_actions();
  turn->clear_behaviour_log_probs();
  turn->set_action(0);
  for (uint32_t id : {10u, 11u, 12u, 13u}) turn->add_observation_tokens(id);
  for (uint32_t id : {91u, 52u, 93u}) turn->add_action_tokens(id);
  for (float lp : {-0.5f, -1.0f, -0.1f}) turn->add_behaviour_log_probs(lp);
  for (int64_t v : {6, 7, 7}) turn->add_action_token_versions(v);
  turn->set_policy_version(7);
  return t;
}

TEST(ValidateTrajectory, TokenTurnsCarryOneLogProbAndOneVersionPerGeneratedToken) {
  EXPECT_EQ(Check(ValidTokens()), "ok");
  auto t = ValidTokens();
  t.mutable_turns(0)->clear_action_token_versions();  // all tokens of policy_version
  EXPECT_EQ(Check(t), "ok");

  t = ValidTokens();
  t.mutable_turns(0)->mutable_behaviour_log_probs()->RemoveLast();
  EXPECT_EQ(Check(t), "turns[0].behaviour_log_probs: 2 entries, expected one per action token (3)");
  t = ValidTokens();
  t.mutable_turns(0)->add_behaviour_log_probs(-1.f);
  EXPECT_EQ(Check(t), "turns[0].behaviour_log_probs: 4 entries, expected one per action token (3)");
  t = ValidTokens();
  t.mutable_turns(0)->set_behaviour_log_probs(2, 0.5f);
  EXPECT_EQ(Check(t),
            "turns[0].behaviour_log_probs[2]: 0.5 is above 0, the log-probability of a "
            "certain action");
  t = ValidTokens();
  t.mutable_turns(0)->add_action_token_versions(7);
  EXPECT_EQ(Check(t),
            "turns[0].action_token_versions: 4 entries, expected none or one per action "
            "token (3)");
  t = ValidTokens();
  t.mutable_turns(0)->set_action_token_versions(0, 8);
  EXPECT_EQ(Check(t),
            "turns[0].action_token_versions[0]: 8 is newer than the turn's "
            "policy_version 7");
  t = ValidTokens();
  t.mutable_turns(0)->set_action_token_versions(1, -1);
  EXPECT_EQ(Check(t), "turns[0].action_token_versions[1]: negative");
  t = ValidTokens();
  t.mutable_turns(0)->add_legal_actions(7);
  t.mutable_turns(0)->add_legal_actions(3);
  EXPECT_EQ(Check(t), "turns[0].legal_actions: token ids not non-negative and strictly ascending");
  t = ValidTokens();
  t.mutable_turns(0)->add_observation(1.f);
  EXPECT_EQ(Check(t), "turns[0].observation: 1 floats, a token turn has none or the game's 27");
  t = ValidTokens();
  t.mutable_turns(0)->clear_observation_tokens();
  EXPECT_EQ(Check(t), "turns[0].observation_tokens: empty in a token turn (the prompt is context)");
  // A version list or a prompt without generated tokens is a token turn that lost its action.
  t = Valid();
  t.mutable_turns(0)->add_action_token_versions(1);
  EXPECT_EQ(Check(t), "turns[0].action_tokens: empty, but action_token_versions has 1 entries");
}

TEST(ValidateTrajectory, TokenTurnsHoldAtMostAMillionTokens) {
  auto t = ValidTokens();
  v1::Turn* turn = t.mutable_turns(0);
  for (size_t k = turn->observation_tokens_size() + turn->action_tokens_size();
       k < kMaxTokensPerTurn; ++k) {
    turn->add_observation_tokens(1);
  }
  EXPECT_EQ(Check(t), "ok");
  turn->add_observation_tokens(1);
  EXPECT_EQ(Check(t),
            "turns[0]: 1048577 tokens (prompt and action), more than the limit of "
            "1048576");
}

}  // namespace
}  // namespace rally
