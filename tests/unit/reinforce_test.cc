#include "common/rl/reinforce.h"

#include <gtest/gtest.h>

namespace rally {
namespace {

v1::Trajectory Episode(float r0, float r1, const std::string& opponent = "latest") {
  v1::Trajectory t;
  t.set_game("g");
  t.set_opponent_id(opponent);
  t.add_returns(r0);
  t.add_returns(r1);
  if (opponent == "latest") {
    t.add_learning_seats(0);
    t.add_learning_seats(1);
  } else {
    t.add_learning_seats(1);
  }
  for (int i = 0; i < 3; ++i) {
    v1::Turn* turn = t.add_turns();
    turn->set_seat(opponent == "latest" ? i % 2 : 1);
    turn->add_observation(static_cast<float>(i));
    turn->add_observation(1.f);
    turn->add_legal_actions(0);
    turn->add_legal_actions(2);
    turn->set_action(i == 1 ? 2 : 0);
    turn->add_behaviour_log_probs(std::log(0.5f));
  }
  return t;
}

TEST(BuildTurnBatch, EveryTurnOfARoleGetsItsEpisodeAdvantage) {
  RoleBaselines baselines(0.95);
  v1::Trajectory a = Episode(1, -1);
  v1::Trajectory b = Episode(-1, 1);
  auto batch = BuildTurnBatch({&a, &b}, 2, 3, baselines);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->advantages.size(0), 6);
  auto adv = batch->advantages;
  // Turns are played by seats 0, 1, 0; rows hold seat 0's turns 0 and 2, then seat 1's turn 1.
  // Episode a: seat 0 A = 1 - 0, seat 1 A = -1 - 0.
  EXPECT_FLOAT_EQ(adv[0].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(adv[1].item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(adv[2].item<float>(), -1.0f);
  // Episode b, baselines now 0.05 and -0.05: seat 0 A = -1 - 0.05, seat 1 A = 1 + 0.05.
  EXPECT_FLOAT_EQ(adv[3].item<float>(), -1.05f);
  EXPECT_FLOAT_EQ(adv[4].item<float>(), -1.05f);
  EXPECT_FLOAT_EQ(adv[5].item<float>(), 1.05f);
  EXPECT_EQ(batch->actions[2].item<int64_t>(), 2);  // turn 1
  EXPECT_TRUE(batch->legal_mask[0][2].item<bool>());
  EXPECT_FALSE(batch->legal_mask[0][1].item<bool>());
  EXPECT_FLOAT_EQ(batch->observations[1][0].item<float>(), 2.f);  // turn 2
  EXPECT_FLOAT_EQ(batch->observations[2][0].item<float>(), 1.f);  // turn 1
}

TEST(BuildTurnBatch, TheWinObjectiveValuesADrawLikeALoss) {
  RoleBaselines baselines(0.5);
  v1::Trajectory a = Episode(1, -1);
  v1::Trajectory b = Episode(0, 0);
  auto batch = BuildTurnBatch({&a, &b}, 2, 3, baselines, Objective::kWin);
  ASSERT_TRUE(batch.ok()) << batch.status();
  // Rows: a seat 0 (win: 1), a seat 1 (loss: 0), b seat 0 (draw: 0), b seat 1 (draw: 0).
  const std::vector<float> rewards = {0, 1, 0, 0, 0, 0};
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(batch->rewards[i].item<float>(), rewards[i]) << i;
  // Advantages against baselines of the win values: a: 1 - 0, 0 - 0; then b: baselines 0.5, 0.
  const std::vector<float> adv = {1, 1, 0, -0.5f, -0.5f, 0};
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(batch->advantages[i].item<float>(), adv[i]) << i;
  EXPECT_DOUBLE_EQ(batch->mean_return, 0.0);  // the game's returns: 1, -1, 0, 0
}

TEST(BuildTurnBatch, EachSeatsRewardsSumToItsReturnAndEndWithADone) {
  RoleBaselines baselines(0.95);
  v1::Trajectory a = Episode(1, -1);
  v1::Trajectory b = Episode(-1, 1);
  b.mutable_turns(0)->set_reward(0.25f);  // seat 0 got 0.25 of its -1 after its first turn
  auto batch = BuildTurnBatch({&a, &b}, 2, 3, baselines);
  ASSERT_TRUE(batch.ok()) << batch.status();
  // Rows: a seat 0 (turns 0, 2), a seat 1 (turn 1), b seat 0 (turns 0, 2), b seat 1 (turn 1).
  // The return lands on the seat's last turn, less what its Turn.reward already paid.
  const std::vector<float> rewards = {0, 1, -1, 0.25f, -1.25f, 1};
  const std::vector<bool> dones = {false, true, true, false, true, true};
  for (int i = 0; i < 6; ++i) {
    EXPECT_FLOAT_EQ(batch->rewards[i].item<float>(), rewards[i]) << "row " << i;
    EXPECT_EQ(batch->dones[i].item<bool>(), dones[i]) << "row " << i;
  }
}

TEST(BuildTurnBatch, FixedOpponentGamesUseTheirOwnBaseline) {
  RoleBaselines baselines(0.95);
  v1::Trajectory vs_random = Episode(-1, 1, "random");
  v1::Trajectory self = Episode(-1, 1);
  ASSERT_TRUE(BuildTurnBatch({&vs_random, &self}, 2, 3, baselines).ok());
  EXPECT_NEAR(baselines.baseline("g", "1/random"), 0.05, 1e-12);
  EXPECT_NEAR(baselines.baseline("g", "1"), 0.05, 1e-12);
  EXPECT_NEAR(baselines.baseline("g", "0"), -0.05, 1e-12);
  EXPECT_EQ(BaselineRole(vs_random, 1), "1/random");
}

TEST(BuildTurnBatch, EverySnapshotOfThePoolSharesOneBaseline) {
  RoleBaselines baselines(0.95);
  v1::Trajectory a = Episode(-1, 1, "snapshot-10");
  v1::Trajectory b = Episode(-1, 1, "snapshot-20");
  ASSERT_TRUE(BuildTurnBatch({&a, &b}, 2, 3, baselines).ok());
  EXPECT_EQ(BaselineRole(a, 1), "1/snapshot");
  EXPECT_EQ(BaselineRole(b, 0), "0/snapshot");
  // Two updates of one key: 0.05, then 0.95 * 0.05 + 0.05.
  EXPECT_NEAR(baselines.baseline("g", "1/snapshot"), 0.0975, 1e-12);
  EXPECT_EQ(baselines.values().size(), 1u);  // (g, 1/snapshot): seat 1 learns in both
  // An id that only looks like a snapshot keeps its own role.
  v1::Trajectory c = Episode(-1, 1, "snapshot-x");
  EXPECT_EQ(BaselineRole(c, 1), "1/snapshot-x");
}

TEST(BuildTurnBatch, RejectsObservationsOfTheWrongSize) {
  RoleBaselines baselines;
  v1::Trajectory a = Episode(1, -1);
  a.mutable_turns(1)->add_observation(3.f);
  EXPECT_EQ(BuildTurnBatch({&a}, 2, 3, baselines).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BuildTurnBatch, RejectsActionsOutsideTheActionSpace) {
  RoleBaselines baselines;
  v1::Trajectory a = Episode(1, -1);
  a.mutable_turns(1)->set_action(3);
  EXPECT_EQ(BuildTurnBatch({&a}, 2, 3, baselines).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::Trajectory b = Episode(1, -1);
  b.mutable_turns(0)->add_legal_actions(7);
  EXPECT_EQ(BuildTurnBatch({&b}, 2, 3, baselines).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ReinforceLoss, MatchesTheFormulaOnAHandComputedBatch) {
  torch::manual_seed(0);
  PolicyNet net(2, std::vector<int>{4}, 3);
  RoleBaselines baselines(0.95);
  v1::Trajectory a = Episode(1, -1);
  auto batch = BuildTurnBatch({&a}, 2, 3, baselines).value();
  torch::Tensor logp;
  {
    torch::NoGradGuard g;
    logp = MaskedLogSoftmax(net->forward(batch.observations), batch.legal_mask);
  }
  // Behaviour = current policy: every importance weight is exactly 1.
  batch.behaviour_log_probs = logp.gather(1, batch.actions.unsqueeze(1)).squeeze(1).clone();
  double expected_pg = 0, expected_h = 0;
  for (int t = 0; t < 3; ++t) {
    expected_pg -= batch.advantages[t].item<double>() *
                   logp[t][batch.actions[t].item<int64_t>()].item<double>() / 3.0;
    for (int act : {0, 2}) {
      double lp = logp[t][act].item<double>();
      expected_h -= std::exp(lp) * lp / 3.0;
    }
  }
  LossTerms loss = ReinforceLoss(net, batch, 0.1, 1.0);
  EXPECT_NEAR(loss.policy_loss, expected_pg, 1e-6);
  EXPECT_NEAR(loss.entropy, expected_h, 1e-6);
  EXPECT_NEAR(loss.loss.item<double>(), expected_pg - 0.1 * expected_h, 1e-6);
  EXPECT_NEAR(loss.mean_importance_weight, 1.0, 1e-6);
  // Illegal action 1 has probability 0.
  EXPECT_LT(logp[0][1].item<double>(), -1e8);
}

TEST(ReinforceLoss, TruncatesImportanceWeightsOfStaleActions) {
  torch::manual_seed(0);
  PolicyNet net(2, std::vector<int>{4}, 3);
  RoleBaselines baselines(0.95);
  v1::Trajectory a = Episode(1, -1);
  auto batch = BuildTurnBatch({&a}, 2, 3, baselines).value();
  torch::Tensor chosen;
  {
    torch::NoGradGuard g;
    chosen = MaskedLogSoftmax(net->forward(batch.observations), batch.legal_mask)
                 .gather(1, batch.actions.unsqueeze(1))
                 .squeeze(1);
  }
  // Actor thought turn 0 twice as likely as the learner does now (w = 0.5); turn 1 half as
  // likely (pi/mu = 2, truncated to 1); turn 2 equally likely (w = 1).
  batch.behaviour_log_probs = chosen.clone();
  batch.behaviour_log_probs[0] += std::log(2.0);
  batch.behaviour_log_probs[1] -= std::log(2.0);
  LossTerms loss = ReinforceLoss(net, batch, 0.0, 1.0);
  EXPECT_NEAR(loss.mean_importance_weight, (0.5 + 1 + 1) / 3.0, 1e-6);
  double expected = 0;
  double w[3] = {0.5, 1, 1};
  for (int t = 0; t < 3; ++t) {
    expected -= w[t] * batch.advantages[t].item<double>() * chosen[t].item<double>() / 3.0;
  }
  EXPECT_NEAR(loss.policy_loss, expected, 1e-6);
  // rho_bar = 0 turns the correction off.
  EXPECT_NEAR(ReinforceLoss(net, batch, 0.0, 0.0).mean_importance_weight, 1.0, 1e-9);
}

TEST(ReinforceLoss, ExtremeBehaviourLogProbsGiveAFiniteLossAndGradient) {
  torch::manual_seed(0);
  PolicyNet net(2, std::vector<int>{4}, 3);
  RoleBaselines baselines(0.95);
  v1::Trajectory a = Episode(1, -1);
  auto batch = BuildTurnBatch({&a}, 2, 3, baselines).value();
  // log mu = -1e30: pi/mu overflows to inf; +1e30: it underflows to 0.
  batch.behaviour_log_probs = torch::tensor({-1e30f, 1e30f, -1e30f});
  // A cap far above any weight a learner would use: the clamped log-ratio alone bounds the weight.
  for (double rho_bar : {1.0, 0.0, 1e30}) {
    SCOPED_TRACE(testing::Message() << "rho_bar " << rho_bar);
    net->zero_grad();
    LossTerms loss = ReinforceLoss(net, batch, 0.01, rho_bar);
    EXPECT_TRUE(std::isfinite(loss.loss.item<double>()));
    EXPECT_TRUE(std::isfinite(loss.policy_loss));
    EXPECT_LE(loss.mean_importance_weight, std::exp(kMaxLogImportanceRatio) * (1 + 1e-6));
    loss.loss.backward();
    for (const torch::Tensor& p : net->parameters()) {
      if (p.grad().defined()) EXPECT_TRUE(torch::isfinite(p.grad()).all().item<bool>());
    }
  }
}

}  // namespace
}  // namespace rally
