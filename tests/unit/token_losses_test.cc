#include "common/rl/token_losses.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "common/checkpoint/checkpoint_dir.h"
#include "common/games/registry.h"
#include "common/lm/game_tokenizer.h"
#include "common/lm/hf_checkpoint.h"
#include "common/lm/lm_checkpoint.h"
#include "common/lm/lm_policy.h"
#include "rally/v1/replay.grpc.pb.h"
#include "services/actor/generation_worker.h"
#include "services/actor/text_selfplay.h"
#include "services/learner/checkpoint.h"
#include "services/learner/token_policy_learner.h"
#include "services/replay/validate.h"

namespace rally {
namespace {

namespace fs = std::filesystem;

// --- The loss on hand-made tensors: vocab 3, two rows.
// Row 0: prompt [0], action [1, 2] (length 3). Row 1: prompt [2], action [0], one pad (length 2).
// Logits are logs of unnormalised probabilities, so each distribution is known exactly:
//   row 0, position 0 -> p = [.25, .5, .25] predicts token 1: pi = .5
//   row 0, position 1 -> p = [.25, .25, .5] predicts token 2: pi = .5
//   row 1, position 0 -> p = [.25, .25, .5] predicts token 0: pi = .25
// Every other position predicts no action token and holds junk.
TokenBatch HandBatch() {
  TokenBatch b;
  b.tokens = torch::tensor({0, 1, 2, 2, 0, 0}, torch::kInt64).view({2, 3});
  b.lengths = torch::tensor({3, 2}, torch::kInt64);
  b.action_mask = torch::tensor({0.f, 1.f, 1.f, 0.f, 1.f, 0.f}).view({2, 3});
  b.advantages = torch::tensor({1.f, -2.f});
  // mu: .25 and 1 on row 0's tokens (ratios 2 and .5), .5 on row 1's (ratio .5).
  b.behaviour_log_probs =
      torch::tensor({0.f, std::log(0.25f), 0.f, 0.f, std::log(0.5f), 0.f}).view({2, 3});
  b.action_tokens = 3;
  // Both rows are one seat's two turns (one sequence), worth G = 1 to it.
  b.prompt_lengths = torch::tensor({1, 1}, torch::kInt64);
  b.returns = torch::tensor({1.f, 1.f});
  b.sequence_order = torch::tensor({0, 1}, torch::kInt64);
  b.sequence_dones = torch::tensor({0.f, 1.f});
  return b;
}

torch::Tensor HandLogits(float junk) {
  auto l = [](double a, double b, double c) {
    return std::vector<float>{static_cast<float>(std::log(a)), static_cast<float>(std::log(b)),
                              static_cast<float>(std::log(c))};
  };
  std::vector<float> v;
  for (const auto& row :
       {l(1, 2, 1), l(1, 1, 2), std::vector<float>{junk, -junk, 3 * junk}, l(1, 1, 2),
        std::vector<float>{-junk, junk, 0}, std::vector<float>{2 * junk, 0, junk}}) {
    v.insert(v.end(), row.begin(), row.end());
  }
  return torch::tensor(v).view({2, 3, 3}).requires_grad_(true);
}

const double kLogHalf = std::log(0.5);
// H([.25, .5, .25]) = H([.25, .25, .5]) = 1.5 log 2.
const double kEntropy = 1.5 * std::log(2.0);

TEST(TokenLosses, TokenLogProbsReadsTheNextTokenUnderThePreviousPosition) {
  torch::Tensor lp = TokenLogProbs(HandLogits(1.f), HandBatch().tokens);
  ASSERT_EQ(lp.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_FLOAT_EQ(lp[0][0].item<float>(), 0.f);
  EXPECT_NEAR(lp[0][1].item<double>(), kLogHalf, 1e-6);
  EXPECT_NEAR(lp[0][2].item<double>(), kLogHalf, 1e-6);
  EXPECT_NEAR(lp[1][1].item<double>(), std::log(0.25), 1e-6);
}

TEST(TokenLosses, ReinforceWithTruncatedWeightsMatchesHandComputation) {
  LossOptions options;
  options.algorithm = Algorithm::kReinforce;
  options.rho_bar = 1;
  options.entropy_coef = 0.1;
  torch::Tensor logits = HandLogits(1.f);
  LossTerms terms = TokenLoss(logits, HandBatch(), options, torch::Tensor());
  // w = [min(1, 2), .5, .5], A = [1, 1, -2], log pi = [log .5, log .5, log .25]:
  // policy = -(1/3) sum w A log pi:
  const double policy = -(1.0 * 1 * kLogHalf + 0.5 * 1 * kLogHalf + 0.5 * -2 * std::log(0.25)) / 3;
  EXPECT_NEAR(terms.policy_loss, policy, 1e-6);
  EXPECT_NEAR(policy, kLogHalf / 6, 1e-12);  // the same, simplified by hand
  EXPECT_NEAR(terms.entropy, kEntropy, 1e-6);
  EXPECT_NEAR(terms.loss.item<double>(), policy - 0.1 * kEntropy, 1e-6);
  EXPECT_NEAR(terms.mean_importance_weight, 2.0 / 3, 1e-6);
  EXPECT_EQ(terms.kl, 0);

  // Gradient of the policy term at row 0, position 0: -(1/3) w A (onehot(1) - p).
  options.entropy_coef = 0;
  TokenLoss(logits, HandBatch(), options, torch::Tensor()).loss.backward();
  torch::Tensor g = logits.grad()[0][0];
  EXPECT_NEAR(g[0].item<double>(), 1.0 / 12, 1e-6);
  EXPECT_NEAR(g[1].item<double>(), -1.0 / 6, 1e-6);
  EXPECT_NEAR(g[2].item<double>(), 1.0 / 12, 1e-6);
}

TEST(TokenLosses, RhoBarOffWeighsEveryTokenOne) {
  LossOptions options;
  options.rho_bar = 0;
  LossTerms terms = TokenLoss(HandLogits(1.f), HandBatch(), options, torch::Tensor());
  EXPECT_NEAR(terms.policy_loss, -(kLogHalf + kLogHalf - 2 * std::log(0.25)) / 3, 1e-6);
  EXPECT_NEAR(terms.mean_importance_weight, 1.0, 1e-6);
}

TEST(TokenLosses, PpoClipsEachTokensRatio) {
  LossOptions options;
  options.algorithm = Algorithm::kPpo;
  options.clip_epsilon = 0.2;
  LossTerms terms = TokenLoss(HandLogits(1.f), HandBatch(), options, torch::Tensor());
  // r = [2, .5, .5], A = [1, 1, -2]: min(2, 1.2) = 1.2; min(.5, .8) = .5; min(-1, -1.6) = -1.6.
  EXPECT_NEAR(terms.policy_loss, -(1.2 + 0.5 - 1.6) / 3, 1e-6);
  EXPECT_NEAR(terms.clip_fraction, 1.0, 1e-9);
  EXPECT_NEAR(terms.mean_importance_weight, 3.0 / 3, 1e-6);
}

TEST(TokenLosses, ExactKlToTheReferenceOverTheVocabulary) {
  LossOptions options;
  options.entropy_coef = 0;
  options.kl_coef = 0.5;
  // A uniform reference: KL(p || u) = log 3 - H(p) at every action position.
  torch::Tensor reference = torch::zeros({2, 3, 3});
  LossTerms terms = TokenLoss(HandLogits(1.f), HandBatch(), options, reference);
  const double kl = std::log(3.0) - kEntropy;
  EXPECT_NEAR(terms.kl, kl, 1e-6);
  EXPECT_NEAR(terms.loss.item<double>(), kLogHalf / 6 + 0.5 * kl, 1e-6);
}

TEST(TokenLosses, MaskedPositionsChangeNeitherLossNorGradient) {
  LossOptions options;
  options.entropy_coef = 0.3;
  options.kl_coef = 0.2;
  torch::Tensor reference = torch::randn({2, 3, 3});
  torch::Tensor a = HandLogits(1.f);
  torch::Tensor b = HandLogits(1e4f);
  LossTerms ta = TokenLoss(a, HandBatch(), options, reference);
  LossTerms tb = TokenLoss(b, HandBatch(), options, reference);
  EXPECT_DOUBLE_EQ(ta.loss.item<double>(), tb.loss.item<double>());
  ta.loss.backward();
  tb.loss.backward();
  EXPECT_TRUE(torch::equal(a.grad(), b.grad()));
  // Positions that predict no action token get no gradient at all.
  EXPECT_EQ(a.grad()[0][2].abs().sum().item<double>(), 0);
  EXPECT_EQ(a.grad()[1][1].abs().sum().item<double>(), 0);
  EXPECT_EQ(a.grad()[1][2].abs().sum().item<double>(), 0);
  EXPECT_GT(a.grad()[1][0].abs().sum().item<double>(), 0);
  // Even a NaN there stays out.
  torch::Tensor c = HandLogits(std::nanf(""));
  LossTerms tc = TokenLoss(c, HandBatch(), options, reference);
  EXPECT_DOUBLE_EQ(tc.loss.item<double>(), ta.loss.item<double>());
  tc.loss.backward();
  EXPECT_TRUE(torch::equal(c.grad(), a.grad()));
}

TEST(TokenLosses, VtraceWithoutValuesIsRefused) {
  LossOptions options;
  options.algorithm = Algorithm::kVtrace;
  EXPECT_THROW(TokenLoss(HandLogits(1.f), HandBatch(), options, torch::Tensor()), c10::Error);
  EXPECT_THROW(TokenLoss(HandLogits(1.f), HandBatch(), options, torch::Tensor(),
                         torch::zeros({3})),  // one value per row, not three
               c10::Error);
}

TEST(TokenLosses, VtraceAlongTheSeatsTurnsMatchesHandComputation) {
  // V = [.5, -.25]. Per-turn ratios: row 0 2 * .5 = 1 (rho 1, c 1), row 1 .5 (rho .5, c .5).
  // gamma = lambda = 1, rewards [0, 1], row 1 ends the sequence:
  //   row 1: delta = .5 (1 - (-.25)) = .625, v1 = -.25 + .625 = .375, A1 = .625;
  //   row 0: delta = 1 (0 + (-.25) - .5) = -.75, v0 = .5 - .75 + 1 * .625 = .375,
  //          A0 = 1 (0 + v1 - .5) = -.125.
  // policy = -(1/3) (A0 (log .5 + log .5) + A1 log .25) = -(1/3)(-.125 + .625) 2 log .5;
  // value_loss = .5 * ((.375 - .5)^2 + (.375 + .25)^2) / 2 = .1015625.
  LossOptions options;
  options.algorithm = Algorithm::kVtrace;
  options.value_coef = 0.5;
  torch::Tensor values = torch::tensor({0.5f, -0.25f}).requires_grad_(true);
  torch::Tensor logits = HandLogits(1.f);
  LossTerms terms = TokenLoss(logits, HandBatch(), options, torch::Tensor(), values);
  const double policy = -(1.0 / 3) * (-0.125 + 0.625) * 2 * kLogHalf;
  EXPECT_NEAR(terms.policy_loss, policy, 1e-6);
  EXPECT_NEAR(terms.value_loss, 0.1015625, 1e-6);
  EXPECT_NEAR(terms.loss.item<double>(), policy + 0.5 * 0.1015625, 1e-6);
  EXPECT_NEAR(terms.mean_importance_weight, (1 + 1 + 0.5) / 3.0, 1e-6);  // rho per token
  // d loss / d V_b = value_coef * (V_b - v_b) / 2: the targets carry no gradient.
  terms.loss.backward();
  EXPECT_NEAR(values.grad()[0].item<double>(), 0.5 * (0.5 - 0.375) / 2, 1e-6);
  EXPECT_NEAR(values.grad()[1].item<double>(), 0.5 * (-0.25 - 0.375) / 2, 1e-6);
  // Two one-turn sequences instead: each turn's target is its own reward.
  TokenBatch split = HandBatch();
  split.sequence_dones = torch::tensor({1.f, 1.f});
  LossTerms apart = TokenLoss(HandLogits(1.f), split, options, torch::Tensor(), values.detach());
  // row 0: v0 = .5 + (1 - .5) = 1, A0 = .5 (reward 1 at its own end); row 1 as before.
  EXPECT_NEAR(apart.policy_loss, -(1.0 / 3) * (0.5 * 2 * kLogHalf + 0.625 * 2 * kLogHalf), 1e-6);
  EXPECT_NEAR(apart.value_loss, 0.5 * (0.25 + 0.390625) / 2, 1e-6);
}

TEST(TokenLosses, MagnetIsTheKlOfTheLegalAnswersToUniformAtTheFirstAnswerToken) {
  // Row 0's first answer token (position 0) has p = [.25, .5, .25]; over legal {0, 1}:
  // pi_L = [1/3, 2/3], KL = 1/3 log 1/3 + 2/3 log 2/3 + log 2. Row 1 (p = [.25, .25, .5]) with
  // every token legal: KL = -1.5 log 2 + log 3.
  TokenBatch batch = HandBatch();
  batch.legal_answers = torch::tensor({1, 1, 0, 1, 1, 1}, torch::kBool).view({2, 3});
  const double kl0 = std::log(1.0 / 3) / 3 + 2 * std::log(2.0 / 3) / 3 + std::log(2.0);
  const double kl1 = -1.5 * std::log(2.0) + std::log(3.0);
  LossOptions options;
  options.rho_bar = 0;
  const LossTerms off = TokenLoss(HandLogits(1.f), batch, options, torch::Tensor());
  EXPECT_NEAR(off.magnet_kl, (kl0 + kl1) / 2, 1e-6);  // reported even at coefficient 0
  options.magnet_coef = 2;
  const LossTerms on = TokenLoss(HandLogits(1.f), batch, options, torch::Tensor());
  EXPECT_NEAR(on.loss.item<double>() - off.loss.item<double>(), 2 * (kl0 + kl1) / 2, 1e-6);
  // A row without legal answers has no magnet; junk logits elsewhere change nothing.
  batch.legal_answers[1].fill_(false);
  EXPECT_NEAR(TokenLoss(HandLogits(1e30f), batch, options, torch::Tensor()).magnet_kl, kl0, 1e-6);
  // The magnet's gradient lies on the legal tokens only: d KL / d logit = pi_L (log pi_L - mean).
  torch::Tensor logits = HandLogits(1.f);
  options.magnet_coef = 1;
  const LossTerms magnet_only = TokenLoss(logits, batch, options, torch::Tensor());
  torch::Tensor policy_logits = HandLogits(1.f);
  options.magnet_coef = 0;
  const LossTerms without = TokenLoss(policy_logits, batch, options, torch::Tensor());
  magnet_only.loss.backward();
  without.loss.backward();
  const torch::Tensor grad = (logits.grad() - policy_logits.grad())[0][0];
  const double mean = (std::log(1.0 / 3) + 2 * std::log(2.0 / 3)) / 3;
  EXPECT_NEAR(grad[0].item<double>(), (std::log(1.0 / 3) - mean) / 3, 1e-6);
  EXPECT_NEAR(grad[1].item<double>(), 2 * (std::log(2.0 / 3) - mean) / 3, 1e-6);
  EXPECT_EQ(grad[2].item<double>(), 0.0);
}

// --- Batches from episodes.
v1::Turn TokenTurn(int seat, std::vector<uint32_t> prompt, std::vector<uint32_t> action,
                   float log_mu) {
  v1::Turn t;
  t.set_seat(seat);
  for (uint32_t id : prompt) t.add_observation_tokens(id);
  for (uint32_t id : action) {
    t.add_action_tokens(id);
    t.add_behaviour_log_probs(log_mu);
  }
  return t;
}

v1::Trajectory TwoSeatEpisode(float return0, uint32_t end) {
  v1::Trajectory e;
  e.set_game("tictactoe");
  e.set_opponent_id("latest");
  *e.add_turns() = TokenTurn(0, {5, 6}, {7, end}, -0.5f);
  *e.add_turns() = TokenTurn(1, {5}, {8, 9}, -0.25f);  // cut: does not end with `end`
  e.add_returns(return0);
  e.add_returns(-return0);
  e.add_learning_seats(0);
  e.add_learning_seats(1);
  return e;
}

TEST(TokenBatches, RowsMasksAndRoleConditionedAdvantages) {
  const uint32_t end = 10;
  v1::Trajectory first = TwoSeatEpisode(1.f, end);
  v1::Trajectory second = TwoSeatEpisode(-1.f, end);
  RoleBaselines baselines(0.95);
  TokenBatchOptions options;
  options.answer_ended = [&](const v1::Turn& t) {
    return t.action_tokens(t.action_tokens_size() - 1) == end;
  };
  options.vocab = 16;
  auto batch = BuildTokenBatch({&first, &second}, baselines, options);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->tokens.sizes(), (std::vector<int64_t>{4, 4}));
  EXPECT_TRUE(torch::equal(batch->tokens[0], torch::tensor({5, 6, 7, 10}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(batch->tokens[1], torch::tensor({5, 8, 9, 0}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(batch->lengths, torch::tensor({4, 3, 4, 3}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(batch->action_mask[0], torch::tensor({0.f, 0.f, 1.f, 1.f})));
  // The cut turn is masked entirely.
  EXPECT_EQ(batch->action_mask[1].sum().item<float>(), 0.f);
  EXPECT_EQ(batch->cut_turns, 2);
  EXPECT_EQ(batch->action_tokens, 4);
  EXPECT_FLOAT_EQ(batch->behaviour_log_probs[0][2].item<float>(), -0.5f);
  EXPECT_FLOAT_EQ(batch->behaviour_log_probs[0][1].item<float>(), 0.f);
  // Episode 1: baselines 0, A = R. Then b0 = .05, b1 = -.05; episode 2: A = -1 - .05, 1 + .05.
  EXPECT_FLOAT_EQ(batch->advantages[0].item<float>(), 1.f);
  EXPECT_FLOAT_EQ(batch->advantages[1].item<float>(), -1.f);
  EXPECT_FLOAT_EQ(batch->advantages[2].item<float>(), -1.05f);
  EXPECT_FLOAT_EQ(batch->advantages[3].item<float>(), 1.05f);
  EXPECT_NEAR(baselines.baseline("tictactoe", "0"), 0.95 * 0.05 - 0.05, 1e-12);
  EXPECT_EQ(batch->episodes, 2);
  EXPECT_DOUBLE_EQ(batch->mean_return, 0);
  // Without the predicate nothing is taken to be cut.
  options.answer_ended = nullptr;
  RoleBaselines fresh;
  auto uncut = BuildTokenBatch({&first}, fresh, options);
  ASSERT_TRUE(uncut.ok());
  EXPECT_EQ(uncut->action_tokens, 4);
  EXPECT_EQ(EpisodeTokens(first), 4 + 3);
  // The states, the seats' values and V-trace's sequences: each episode's two seats alone.
  EXPECT_TRUE(torch::equal(batch->prompt_lengths, torch::tensor({2, 1, 2, 1}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(batch->returns, torch::tensor({1.f, -1.f, -1.f, 1.f})));
  EXPECT_TRUE(torch::equal(batch->sequence_dones, torch::tensor({1.f, 1.f, 1.f, 1.f})));
  EXPECT_FALSE(batch->legal_answers.defined());
}

TEST(TokenBatches, SequencesFollowEachSeatAndLegalAnswersMarkTheirTokens) {
  // Seat 0 plays turns 0 and 2, seat 1 turn 1: sequence order [0, 2, 1], each ending once.
  v1::Trajectory e = TwoSeatEpisode(1.f, 10);
  *e.add_turns() = TokenTurn(0, {5, 6, 7}, {11}, -0.5f);
  e.mutable_turns(0)->add_legal_actions(3);
  e.mutable_turns(0)->add_legal_actions(11);
  e.mutable_turns(2)->add_legal_actions(12);
  RoleBaselines baselines;
  TokenBatchOptions options;
  options.vocab = 16;
  options.legal_answers = true;
  auto batch = BuildTokenBatch({&e}, baselines, options);
  ASSERT_TRUE(batch.ok()) << batch.status();
  EXPECT_TRUE(torch::equal(batch->sequence_order, torch::tensor({0, 2, 1}, torch::kInt64)));
  EXPECT_TRUE(torch::equal(batch->sequence_dones, torch::tensor({0.f, 1.f, 1.f})));
  ASSERT_EQ(batch->legal_answers.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(batch->legal_answers.sum().item<int64_t>(), 3);
  EXPECT_TRUE(batch->legal_answers[0][3].item<bool>() && batch->legal_answers[0][11].item<bool>());
  EXPECT_FALSE(batch->legal_answers[1].any().item<bool>());  // no legal answers recorded
  EXPECT_TRUE(batch->legal_answers[2][12].item<bool>());
  e.mutable_turns(2)->set_legal_actions(0, 16);
  auto outside = BuildTokenBatch({&e}, baselines, options);
  ASSERT_FALSE(outside.ok());
  EXPECT_NE(outside.status().message().find("episode 0 turn 2: legal answer token 16"),
            std::string::npos)
      << outside.status();
}

TEST(TokenBatches, RefusesBadTurnsNamingThem) {
  v1::Trajectory e = TwoSeatEpisode(1.f, 10);
  e.mutable_turns(1)->add_behaviour_log_probs(0.f);
  RoleBaselines baselines;
  TokenBatchOptions options;
  auto batch = BuildTokenBatch({&e}, baselines, options);
  ASSERT_FALSE(batch.ok());
  EXPECT_NE(batch.status().message().find("episode 0 turn 1"), std::string::npos) << batch.status();
  e = TwoSeatEpisode(1.f, 10);
  options.vocab = 8;  // token 10 and 9 fall outside
  EXPECT_FALSE(BuildTokenBatch({&e}, baselines, options).ok());
  options.vocab = 0;
  options.max_seq_len = 3;  // a 4-token row
  EXPECT_FALSE(BuildTokenBatch({&e}, baselines, options).ok());
}

TEST(TokenBatches, TokenBudgetTakesWholeEpisodesUntilTheNextWouldPassIt) {
  TokenBudget budget(100);
  EXPECT_TRUE(budget.Take(40));
  EXPECT_TRUE(budget.Take(60));  // exactly the budget
  EXPECT_TRUE(budget.full());
  EXPECT_FALSE(budget.Take(1));
  EXPECT_EQ(budget.tokens(), 100);

  TokenBudget partial(100);
  EXPECT_TRUE(partial.Take(70));
  EXPECT_FALSE(partial.full());
  EXPECT_FALSE(partial.Take(31));  // would pass it: starts the next batch
  EXPECT_TRUE(partial.Take(30));
  EXPECT_EQ(partial.tokens(), 100);

  TokenBudget longer(100);
  EXPECT_TRUE(longer.Take(250));  // the first episode joins however long it is
  EXPECT_TRUE(longer.full());
  EXPECT_FALSE(longer.Take(1));
}

// --- The learner.
JobConfig TinyJob() {
  JobConfig config;
  config.seed = 7;
  config.game.name = "tictactoe";
  config.policy.kind = "transformer";
  config.policy.transformer.layers = 1;
  config.policy.transformer.d_model = 16;
  config.policy.transformer.heads = 2;
  config.policy.transformer.kv_heads = 1;
  config.policy.transformer.d_ff = 32;
  config.policy.transformer.vocab = kByteTokenizerVocab;
  config.policy.transformer.max_seq_len = 32;
  config.policy.tokenizer = "byte";
  config.policy.prompt = "compact";
  config.learner.algorithm = "reinforce_rae";
  config.learner.learning_rate = 1e-3;
  return config;
}

std::vector<uint32_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

// A compact text game episode: answers end with "\n", the byte tokenizer's end of answer.
v1::Trajectory TextEpisode() {
  v1::Trajectory e;
  e.set_game("tictactoe");
  e.set_opponent_id("latest");
  *e.add_turns() = TokenTurn(0, Bytes("board ..."), Bytes("[4]\n"), -5.5f);
  *e.add_turns() = TokenTurn(1, Bytes("board x.."), Bytes("[0]\n"), -5.5f);
  e.add_returns(1.f);
  e.add_returns(-1.f);
  e.add_learning_seats(0);
  e.add_learning_seats(1);
  return e;
}

std::vector<float> Floats(const NamedTensor& t) {
  std::vector<float> v(t.data.size() / sizeof(float));
  std::memcpy(v.data(), t.data.data(), t.data.size());
  return v;
}

// --- What the actor records for the magnet.
TEST(TokenBatches, TheActorRecordsTheTokensOfTheLegalAnswersAtEachDecision) {
  std::shared_ptr<const Game> kuhn = *LoadGame("kuhn_poker");
  std::unique_ptr<Tokenizer> tokenizer =
      *OpenTokenizer(kGameTokenizerName, *kuhn, PromptStyle::kCompact);
  auto token = [&](const std::string& answer) {
    const std::vector<int32_t> ids = tokenizer->Encode(answer);
    EXPECT_EQ(ids.size(), 1u) << answer;
    return ids.empty() ? -1 : ids[0];
  };
  std::vector<int32_t> no_bet = {token("[Check]\n"), token("[Bet]\n")};
  std::vector<int32_t> facing_bet = {token("[Call]\n"), token("[Fold]\n")};
  std::sort(no_bet.begin(), no_bet.end());
  std::sort(facing_bet.begin(), facing_bet.end());
  TransformerConfig config = TinyJob().policy.transformer;
  config.vocab = tokenizer->VocabSize();
  config.max_seq_len = 128;  // a Kuhn seat's whole context fits
  GenerationWorkerOptions worker_options;
  worker_options.tokenizer = tokenizer.get();
  worker_options.kv_cache_tokens = 8 * config.max_seq_len;
  std::unique_ptr<GenerationWorker> worker =
      *GenerationWorker::Create(*Transformer::Create(config, 3), worker_options);
  // The model answers seat 1 after a random seat 0: its legal answers depend on that move.
  TextEpisodeOptions options;
  options.opponent_seat = 0;
  options.max_new_tokens = 4;
  bool saw[2] = {false, false};
  for (uint64_t seed = 1; seed < 40 && !(saw[0] && saw[1]); ++seed) {
    std::mt19937_64 rng(seed);
    absl::StatusOr<v1::Trajectory> t = PlayTextEpisode(kuhn, *tokenizer, *worker, options, rng);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_TRUE(ValidateTrajectory(*kuhn, *t).ok()) << ValidateTrajectory(*kuhn, *t);
    ASSERT_GE(t->turns_size(), 1);
    const v1::Turn& first = t->turns(0);
    const std::vector<int32_t> prompt(first.observation_tokens().begin(),
                                      first.observation_tokens().end());
    const bool faces_bet = tokenizer->Decode(prompt).find("Opp [Bet]") != std::string::npos;
    saw[faces_bet] = true;
    EXPECT_EQ(std::vector<int32_t>(first.legal_actions().begin(), first.legal_actions().end()),
              faces_bet ? facing_bet : no_bet);
  }
  EXPECT_TRUE(saw[0] && saw[1]);
  // Under the byte tokenizer an answer is several tokens: no legal answers are recorded.
  std::unique_ptr<Tokenizer> bytes = MakeByteTokenizer();
  TransformerConfig byte_config = TinyJob().policy.transformer;
  byte_config.max_seq_len = 128;
  worker_options.tokenizer = bytes.get();
  std::unique_ptr<GenerationWorker> byte_worker =
      *GenerationWorker::Create(*Transformer::Create(byte_config, 3), worker_options);
  std::mt19937_64 rng(1);
  absl::StatusOr<v1::Trajectory> t = PlayTextEpisode(kuhn, *bytes, *byte_worker, options, rng);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->turns(0).legal_actions_size(), 0);
}

TEST(TokenPolicyLearner, OneStepLowersTheLossOnItsBatchAndChangesWeights) {
  auto learner = TokenPolicyLearner::Create(TinyJob(), torch::kCPU);
  ASSERT_TRUE(learner.ok()) << learner.status();
  v1::Trajectory episode = TextEpisode();
  ASSERT_TRUE((*learner)->SetBatch({&episode}).ok());
  EXPECT_EQ((*learner)->batch().action_tokens, 8);
  EXPECT_EQ((*learner)->batch().cut_turns, 0);
  torch::optim::Adam adam((*learner)->Parameters(), torch::optim::AdamOptions(1e-3));
  (*learner)->ToDevice(torch::kCPU);
  (*learner)->Begin();
  (*learner)->PrepareBatch();
  LossOptions options;
  options.rho_bar = 0;  // weight 1: the loss is a fixed function of the weights
  const TensorSet before = (*learner)->model().ExportWeights();
  LossTerms first = (*learner)->Loss(options);
  adam.zero_grad();
  first.loss.backward();
  adam.step();
  LossTerms second = (*learner)->Loss(options);
  EXPECT_LT(second.loss.item<double>(), first.loss.item<double>());
  const TensorSet after = (*learner)->model().ExportWeights();
  ASSERT_EQ(before.tensors.size(), after.tensors.size());
  for (size_t i = 0; i < before.tensors.size(); ++i) {
    EXPECT_NE(before.tensors[i].data, after.tensors[i].data) << before.tensors[i].name;
  }
  // Published weights: the model's tensors under their names, with version and step.
  auto published = DecodeSafetensors((*learner)->EncodeWeights(5, 9));
  ASSERT_TRUE(published.ok());
  EXPECT_EQ(published->metadata.at("policy_version"), "5");
  EXPECT_EQ(published->metadata.at("learner_step"), "9");
  ASSERT_EQ(published->tensors.size(), after.tensors.size());
  std::map<std::string, std::string> by_name;  // decoded sets come sorted by name
  for (const NamedTensor& t : published->tensors) by_name[t.name] = t.data;
  for (const NamedTensor& t : after.tensors) EXPECT_EQ(by_name[t.name], t.data) << t.name;
}

// A replay shard that answers the first sample request with `episodes` in one response, then
// ends the stream.
class OneResponseReplay final : public v1::ReplayService::Service {
 public:
  explicit OneResponseReplay(std::vector<v1::Trajectory> episodes) : episodes_(episodes) {}
  grpc::Status Sample(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<v1::SampleResponse, v1::SampleRequest>* stream) override {
    if (!stream->Read(&first_request_)) return grpc::Status::OK;
    v1::SampleResponse response;
    for (const v1::Trajectory& e : episodes_) *response.add_items()->mutable_trajectory() = e;
    stream->Write(response);
    return grpc::Status::OK;
  }
  v1::SampleRequest first_request_;

 private:
  std::vector<v1::Trajectory> episodes_;
};

TEST(TokenPolicyLearner, BatchesFromTheStreamsArePackedByTokens) {
  // Three episodes of 26 tokens each (two turns of 9 prompt and 4 answer tokens).
  v1::Trajectory episode = TextEpisode();
  ASSERT_EQ(EpisodeTokens(episode), 26);
  OneResponseReplay replay({episode, episode, episode});
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&replay);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(port, 0);

  JobConfig config = TinyJob();
  config.learner.batch_tokens = 60;  // two episodes (52); a third would pass it
  auto learner = TokenPolicyLearner::Create(config, torch::kCPU);
  ASSERT_TRUE(learner.ok());
  BatchSourceOptions options;
  options.replay_addresses = {"127.0.0.1:" + std::to_string(port)};
  options.table = "selfplay";
  options.batch_episodes = 3;
  std::atomic<int64_t> version{4};
  (*learner)->OpenBatches(options, version, nullptr);
  absl::StatusOr<bool> first = (*learner)->NextBatch();
  ASSERT_TRUE(first.ok() && *first) << first.status();
  EXPECT_EQ((*learner)->batch().episodes, 2);
  EXPECT_EQ((*learner)->batch().tokens.size(0), 4);  // two turns each
  absl::StatusOr<bool> second = (*learner)->NextBatch();
  ASSERT_TRUE(second.ok() && *second) << second.status();
  EXPECT_EQ((*learner)->batch().episodes, 1);  // the one left over; then the stream ended
  absl::StatusOr<bool> third = (*learner)->NextBatch();
  ASSERT_TRUE(third.ok());
  EXPECT_FALSE(*third);
  EXPECT_TRUE((*learner)->FinishBatches().ok());
  EXPECT_EQ(replay.first_request_.table(), "selfplay");
  EXPECT_EQ(replay.first_request_.batch_size(), 3);
  EXPECT_EQ(replay.first_request_.policy_version(), 4);
  server->Shutdown();
}

TEST(TokenPolicyLearner, MasksAnswersCutBeforeTheirEnd) {
  auto learner = TokenPolicyLearner::Create(TinyJob(), torch::kCPU);
  ASSERT_TRUE(learner.ok());
  v1::Trajectory episode = TextEpisode();
  // Seat 1's answer ran out of tokens before its newline.
  *episode.mutable_turns(1) = TokenTurn(1, Bytes("board x.."), Bytes("[0] and"), -5.5f);
  ASSERT_TRUE((*learner)->SetBatch({&episode}).ok());
  EXPECT_EQ((*learner)->batch().cut_turns, 1);
  EXPECT_EQ((*learner)->batch().action_tokens, 4);
  EXPECT_EQ((*learner)->batch().action_mask[1].sum().item<float>(), 0.f);
}

TEST(TokenPolicyLearner, TrainsOnCutAnswersWhenTheJobDoesNotMaskThem) {
  JobConfig config = TinyJob();
  config.learner.mask_cut_answers = false;
  auto learner = TokenPolicyLearner::Create(config, torch::kCPU);
  ASSERT_TRUE(learner.ok());
  v1::Trajectory episode = TextEpisode();
  *episode.mutable_turns(1) = TokenTurn(1, Bytes("board x.."), Bytes("[0] and"), -5.5f);
  ASSERT_TRUE((*learner)->SetBatch({&episode}).ok());
  EXPECT_EQ((*learner)->batch().cut_turns, 0);
  // "[4]\n" (4 tokens) and the cut "[0] and" (7): every generated token is trained.
  EXPECT_EQ((*learner)->batch().action_tokens, 11);
  EXPECT_EQ((*learner)->batch().action_mask[1].sum().item<float>(), 7.f);
}

TEST(TokenPolicyLearner, RefusesWhatItCannotTrainNamingIt) {
  JobConfig config = TinyJob();
  config.learner.algorithm = "a2c";
  auto unknown = TokenPolicyLearner::Create(config, torch::kCPU);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown algorithm 'a2c'"), std::string::npos);
  config = TinyJob();
  config.learner.magnet = "ema";
  config.learner.magnet_coef = 0.1;
  auto ema = TokenPolicyLearner::Create(config, torch::kCPU);
  ASSERT_FALSE(ema.ok());
  EXPECT_NE(ema.status().message().find("learner.magnet ema has no token-level form"),
            std::string::npos)
      << ema.status();
  // Under the byte tokenizer "[4]\n" is four tokens: no magnet over legal answer tokens.
  config.learner.magnet = "uniform";
  auto bytes = TokenPolicyLearner::Create(config, torch::kCPU);
  ASSERT_FALSE(bytes.ok());
  EXPECT_NE(bytes.status().message().find("the answer [0]\\n is 4 tokens"), std::string::npos)
      << bytes.status();
  // The game tokenizer makes each answer one token.
  config.policy.tokenizer = "game";
  config.policy.transformer.vocab = 259 + 9;
  EXPECT_TRUE(TokenPolicyLearner::Create(config, torch::kCPU).ok());
}

// A vtrace learner of TinyJob whose value head is set to w = 0.1 * (1, 2, ..., d), b = 0.3.
std::unique_ptr<TokenPolicyLearner> VtraceLearner(JobConfig config = TinyJob()) {
  config.learner.algorithm = "vtrace";
  auto learner = TokenPolicyLearner::Create(config, torch::kCPU);
  EXPECT_TRUE(learner.ok()) << learner.status();
  torch::NoGradGuard no_grad;
  const torch::nn::Linear& head = (*learner)->value_head();
  EXPECT_TRUE(head);
  head->weight.copy_(0.1 * torch::arange(1, config.policy.transformer.d_model + 1).view({1, -1}));
  head->bias.fill_(0.3);
  return *std::move(learner);
}

TEST(TokenPolicyLearner, VtraceValueLossAndAdvantagesMatchASlowReference) {
  std::unique_ptr<TokenPolicyLearner> learner = VtraceLearner();
  v1::Trajectory episode = TextEpisode();
  *episode.add_turns() = TokenTurn(0, Bytes("board x.o ..."), Bytes("[8]\n"), -5.5f);
  ASSERT_TRUE(learner->SetBatch({&episode}).ok());
  learner->Begin();
  learner->PrepareBatch();
  LossOptions options;
  options.algorithm = Algorithm::kVtrace;
  options.rho_bar = 0;  // no truncation, c = lambda = 1: v = G and A = G - V(x)
  options.c_bar = 0;
  options.value_coef = 0.5;
  options.entropy_coef = 0;
  const LossTerms terms = learner->Loss(options);

  // The reference, one turn at a time: V(x) = w . h + b with h the final hidden state at the
  // prompt's last token (the model run on the prompt alone), log pi of each answer token from
  // the model run on the whole row.
  const Transformer& model = learner->model();
  const torch::nn::Linear& head = learner->value_head();
  double value_loss = 0, policy_sum = 0;
  int action_tokens = 0;
  for (const v1::Turn& t : episode.turns()) {
    std::vector<int64_t> prompt(t.observation_tokens().begin(), t.observation_tokens().end());
    std::vector<int64_t> row = prompt;
    row.insert(row.end(), t.action_tokens().begin(), t.action_tokens().end());
    const int64_t p = static_cast<int64_t>(prompt.size());
    torch::Tensor hidden =
        *model.ForwardHidden(torch::tensor(prompt).view({1, -1}), torch::tensor({p}));
    double v = head->bias.item<double>();
    for (int64_t j = 0; j < hidden.size(2); ++j) {
      v += head->weight[0][j].item<double>() * hidden[0][p - 1][j].item<double>();
    }
    const double g = episode.returns(t.seat());
    value_loss += 0.5 * (g - v) * (g - v) / episode.turns_size();
    torch::Tensor logits = *model.Forward(torch::tensor(row).view({1, -1}),
                                          torch::tensor({static_cast<int64_t>(row.size())}));
    torch::Tensor log_pi = torch::log_softmax(logits[0].to(torch::kDouble), -1);
    for (size_t j = prompt.size(); j < row.size(); ++j) {
      policy_sum += (g - v) * log_pi[j - 1][row[j]].item<double>();
      ++action_tokens;
    }
  }
  EXPECT_NEAR(terms.value_loss, value_loss, 1e-4 * (1 + value_loss));
  EXPECT_NEAR(terms.policy_loss, -policy_sum / action_tokens,
              1e-4 * (1 + std::abs(policy_sum / action_tokens)));
  EXPECT_GT(value_loss, 0.01);  // the head is not at its targets: the test can fail
  // The value loss trains the head; the model's weights are all that is published.
  learner->Loss(options).loss.backward();
  EXPECT_GT(head->weight.grad().abs().sum().item<double>(), 0);
  auto published = DecodeSafetensors(learner->EncodeWeights(1, 1));
  ASSERT_TRUE(published.ok());
  EXPECT_EQ(published->tensors.size(), ExpectedTensors(model.config()).size());
  for (const NamedTensor& t : published->tensors) {
    EXPECT_EQ(t.name.find("value_head"), std::string::npos) << t.name;
  }
  EXPECT_EQ(learner->Parameters().size(), model.parameters().size() + 2);
}

class TokenCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rally-token-ckpt-" + std::to_string(getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  // A learner of `config` trained one step on TextEpisode, checkpointed at step 3, version 2.
  std::unique_ptr<TokenPolicyLearner> TrainedAndSaved(torch::optim::Adam** adam_out,
                                                      const JobConfig& config = TinyJob()) {
    auto learner = TokenPolicyLearner::Create(config, torch::kCPU);
    EXPECT_TRUE(learner.ok()) << learner.status();
    adam_ = std::make_unique<torch::optim::Adam>((*learner)->Parameters(),
                                                 torch::optim::AdamOptions(1e-3));
    v1::Trajectory episode = TextEpisode();
    EXPECT_TRUE((*learner)->SetBatch({&episode}).ok());
    (*learner)->Begin();
    LossOptions options;
    options.algorithm = *ParseAlgorithm(config.learner.algorithm);
    adam_->zero_grad();
    (*learner)->Loss(options).loss.backward();
    adam_->step();
    LearnerState state;
    state.job_id = "job";
    state.game = "tictactoe";
    state.step = 3;
    state.version = 2;
    absl::Status saved = (*learner)->SaveCheckpoint(dir_.string(), state, *adam_, 2);
    EXPECT_TRUE(saved.ok()) << saved;
    *adam_out = adam_.get();
    return *std::move(learner);
  }
  fs::path dir_;
  std::unique_ptr<torch::optim::Adam> adam_;
};

TEST_F(TokenCheckpointTest, SaveRestoreKeepsWeightsAdamAndBaselines) {
  torch::optim::Adam* adam = nullptr;
  std::unique_ptr<TokenPolicyLearner> saved = TrainedAndSaved(&adam);
  JobConfig other = TinyJob();
  other.seed = 99;  // different initial weights
  auto restored = TokenPolicyLearner::Create(other, torch::kCPU);
  ASSERT_TRUE(restored.ok());
  torch::optim::Adam adam2((*restored)->Parameters(), torch::optim::AdamOptions(1e-3));
  auto state = (*restored)->Restore(dir_.string(), "job", adam2);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->step, 3);
  EXPECT_EQ(state->version, 2);
  EXPECT_EQ((*restored)->baselines().values(), saved->baselines().values());
  EXPECT_NEAR((*restored)->baselines().baseline("tictactoe", "0"), 0.05, 1e-12);
  const TensorSet a = saved->model().ExportWeights();
  const TensorSet b = (*restored)->model().ExportWeights();
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) EXPECT_EQ(a.tensors[i].data, b.tensors[i].data);
  const std::vector<torch::Tensor> p1 = saved->Parameters();
  const std::vector<torch::Tensor> p2 = (*restored)->Parameters();
  for (size_t i = 0; i < p1.size(); ++i) {
    torch::optim::AdamParamState& s1 = AdamState(*adam, p1[i]);
    torch::optim::AdamParamState& s2 = AdamState(adam2, p2[i]);
    EXPECT_EQ(s1.step(), 1);
    EXPECT_EQ(s2.step(), 1);
    EXPECT_TRUE(torch::equal(s1.exp_avg(), s2.exp_avg()));
    EXPECT_TRUE(torch::equal(s1.exp_avg_sq(), s2.exp_avg_sq()));
  }
  // Another job's checkpoint is not this one's.
  EXPECT_EQ((*restored)->Restore(dir_.string(), "other", adam2).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(TokenCheckpointTest, TheManifestRecordsTheSamplingTheActorsDrewFrom) {
  JobConfig config = TinyJob();
  config.policy.temperature = 0.7;
  config.policy.top_p = 0.9;
  config.policy.top_k = 5;
  torch::optim::Adam* adam = nullptr;
  std::unique_ptr<TokenPolicyLearner> saved = TrainedAndSaved(&adam, config);
  absl::StatusOr<std::string> cp = ResolveCheckpoint(dir_.string());
  ASSERT_TRUE(cp.ok()) << cp.status();
  absl::StatusOr<LmCheckpoint> read = ReadLmCheckpoint(*cp);
  ASSERT_TRUE(read.ok()) << read.status();
  absl::StatusOr<SamplingOptions> sampling = CheckpointSampling(*read);
  ASSERT_TRUE(sampling.ok()) << sampling.status();
  EXPECT_DOUBLE_EQ(sampling->temperature, 0.7);
  EXPECT_DOUBLE_EQ(sampling->top_p, 0.9);
  EXPECT_EQ(sampling->top_k, 5);
}

JobConfig VtraceJob() {
  JobConfig config = TinyJob();
  config.learner.algorithm = "vtrace";
  return config;
}

TEST_F(TokenCheckpointTest, TheValueHeadAndItsAdamStateRoundTrip) {
  torch::optim::Adam* adam = nullptr;
  std::unique_ptr<TokenPolicyLearner> saved = TrainedAndSaved(&adam, VtraceJob());
  EXPECT_TRUE(fs::exists(dir_ / "step-3" / "value_head.safetensors"));
  // One step from zero moved the head (the value loss's gradient is not zero).
  EXPECT_GT(saved->value_head()->weight.abs().sum().item<double>(), 0);
  JobConfig other = VtraceJob();
  other.seed = 99;
  auto restored = TokenPolicyLearner::Create(other, torch::kCPU);
  ASSERT_TRUE(restored.ok());
  torch::optim::Adam adam2((*restored)->Parameters(), torch::optim::AdamOptions(1e-3));
  auto state = (*restored)->Restore(dir_.string(), "job", adam2);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_TRUE(torch::equal(saved->value_head()->weight, (*restored)->value_head()->weight));
  EXPECT_TRUE(torch::equal(saved->value_head()->bias, (*restored)->value_head()->bias));
  const std::vector<torch::Tensor> p1 = saved->Parameters();
  const std::vector<torch::Tensor> p2 = (*restored)->Parameters();
  ASSERT_EQ(p1.size(), p2.size());
  for (size_t i = 0; i < p1.size(); ++i) {  // the head's two tensors included, last
    EXPECT_TRUE(torch::equal(p1[i], p2[i])) << i;
    EXPECT_EQ(AdamState(adam2, p2[i]).step(), 1) << i;
    EXPECT_TRUE(torch::equal(AdamState(*adam, p1[i]).exp_avg(), AdamState(adam2, p2[i]).exp_avg()));
  }
  // export-hf holds the model's tensors only.
  const fs::path out = dir_ / "hf";
  ASSERT_TRUE(ExportLmCheckpointToHf((dir_ / "step-3").string(), out.string(), "fp32").ok());
  auto hf = LoadHfDirectory(out.string());
  ASSERT_TRUE(hf.ok()) << hf.status();
  EXPECT_EQ(hf->weights.tensors.size(), ExpectedTensors(saved->model().config()).size());
  // A damaged head is refused by its checksum, naming the file.
  std::ofstream(dir_ / "step-3" / "value_head.safetensors") << "junk";
  auto damaged = (*restored)->Restore(dir_.string(), "job", adam2);
  ASSERT_FALSE(damaged.ok());
  EXPECT_NE(damaged.status().message().find("value_head.safetensors"), std::string::npos)
      << damaged.status();
}

TEST_F(TokenCheckpointTest, ACheckpointWithoutAValueHeadLoadsWithAFreshHead) {
  torch::optim::Adam* adam = nullptr;
  std::unique_ptr<TokenPolicyLearner> saved = TrainedAndSaved(&adam);  // reinforce_rae: no head
  EXPECT_FALSE(fs::exists(dir_ / "step-3" / "value_head.safetensors"));
  auto restored = TokenPolicyLearner::Create(VtraceJob(), torch::kCPU);
  ASSERT_TRUE(restored.ok());
  torch::optim::Adam adam2((*restored)->Parameters(), torch::optim::AdamOptions(1e-3));
  auto state = (*restored)->Restore(dir_.string(), "job", adam2);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->step, 3);
  const TensorSet a = saved->model().ExportWeights();
  const TensorSet b = (*restored)->model().ExportWeights();
  for (size_t i = 0; i < a.tensors.size(); ++i) EXPECT_EQ(a.tensors[i].data, b.tensors[i].data);
  EXPECT_EQ((*restored)->value_head()->weight.abs().sum().item<double>(), 0);
  EXPECT_EQ((*restored)->value_head()->bias.item<double>(), 0);
  const std::vector<torch::Tensor> params = (*restored)->Parameters();
  EXPECT_EQ(AdamState(adam2, params[0]).step(), 1);  // the model's moments restored
}

TEST_F(TokenCheckpointTest, ExportHfLoadsBackToTheSameTensors) {
  torch::optim::Adam* adam = nullptr;
  std::unique_ptr<TokenPolicyLearner> saved = TrainedAndSaved(&adam);
  const fs::path out = dir_ / "hf";
  absl::Status exported = ExportLmCheckpointToHf((dir_ / "step-3").string(), out.string(), "fp32");
  ASSERT_TRUE(exported.ok()) << exported;
  auto hf = LoadHfDirectory(out.string());
  ASSERT_TRUE(hf.ok()) << hf.status();
  EXPECT_EQ(HfConfigJson(hf->config), HfConfigJson(saved->model().config()));
  EXPECT_EQ(hf->model_type, "llama");
  EXPECT_EQ(hf->tokenizer_path, "");  // the byte tokenizer has no file
  const TensorSet want = saved->model().ExportWeights();
  ASSERT_EQ(hf->weights.tensors.size(), want.tensors.size());
  for (size_t i = 0; i < want.tensors.size(); ++i) {
    EXPECT_EQ(hf->weights.tensors[i].name, want.tensors[i].name);
    EXPECT_EQ(Floats(hf->weights.tensors[i]), Floats(want.tensors[i]));
  }
  // bf16 rounds, within bf16's precision.
  ASSERT_TRUE(
      ExportLmCheckpointToHf((dir_ / "step-3").string(), (dir_ / "bf").string(), "bf16").ok());
  auto bf = LoadHfDirectory((dir_ / "bf").string());
  ASSERT_TRUE(bf.ok()) << bf.status();
  std::vector<float> x = Floats(bf->weights.tensors[0]), y = Floats(want.tensors[0]);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], y[i], std::abs(y[i]) / 128 + 1e-30);
  EXPECT_FALSE(ExportLmCheckpointToHf((dir_ / "step-3").string(), out.string(), "int8").ok());
}

TEST_F(TokenCheckpointTest, ReadingNamesWhatIsMissing) {
  torch::optim::Adam* adam = nullptr;
  TrainedAndSaved(&adam);
  const fs::path cp = dir_ / "step-3";
  fs::remove(cp / "weights.safetensors");
  auto read = ReadLmCheckpoint(cp.string());
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.status().message().find("weights.safetensors"), std::string::npos)
      << read.status();
  // An MLP checkpoint's manifest (no policy_kind) is refused as such.
  std::ofstream(cp / "manifest.json") << R"({"job_id": "job", "hidden": [8]})";
  read = ReadLmCheckpoint(cp.string());
  EXPECT_EQ(read.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(read.status().message().find("manifest.json"), std::string::npos);
  EXPECT_EQ(ReadLmCheckpoint((dir_ / "nowhere").string()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(TokenCheckpointTest, ATokenizerFileTravelsWithTheCheckpointAndTheExport) {
  // A minimal byte-level BPE tokenizer.json (the checkpoint copies the file; its content only
  // needs to load).
  fs::create_directories(dir_);
  const fs::path tok = dir_ / "tok.json";
  const std::string text = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": []},
    "pre_tokenizer": {"type": "ByteLevel"}, "added_tokens": []})";
  std::ofstream(tok) << text;
  auto learner = TokenPolicyLearner::Create(TinyJob(), torch::kCPU);
  ASSERT_TRUE(learner.ok());
  // The bytes a checkpoint stores for the file (TokenizerJsonBytes), written with it.
  absl::StatusOr<std::string> bytes =
      TokenizerJsonBytes(tok.string(), **LoadGame("kuhn_poker"), PromptStyle::kCompact);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, text);
  nlohmann::json manifest = {{"job_id", "job"}};
  manifest.update(LmManifestFields((*learner)->model().config(), *bytes));
  EXPECT_EQ(manifest["tokenizer"], "tokenizer.json");
  TensorSet w = (*learner)->model().ExportWeights();
  ASSERT_TRUE(WriteLmCheckpointDirectory(dir_.string(), "step-1", manifest,
                                         {{"weights.safetensors", EncodeSafetensors(w)}}, *bytes)
                  .ok());
  auto read = ReadLmCheckpoint((dir_ / "step-1").string());
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->tokenizer_path, (dir_ / "step-1" / "tokenizer.json").string());
  ASSERT_TRUE(
      ExportLmCheckpointToHf((dir_ / "step-1").string(), (dir_ / "hf").string(), "fp32").ok());
  std::ifstream in(dir_ / "hf" / "tokenizer.json");
  std::string copied((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(copied, text);
  // A damaged copy is caught by its checksum.
  std::ofstream(dir_ / "step-1" / "tokenizer.json") << "{}";
  EXPECT_EQ(ReadLmCheckpoint((dir_ / "step-1").string()).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace rally
