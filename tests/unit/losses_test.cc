#include "common/rl/losses.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "common/config/job_config.h"

namespace rally {
namespace {

// A batch of `legal.size()` turns over legal.front().size() actions; `legal` is 0/1 per action.
TurnBatch Batch(const std::vector<std::vector<int>>& legal, const std::vector<int64_t>& actions,
                const std::vector<float>& advantages, const std::vector<float>& behaviour,
                const std::vector<float>& rewards = {}, const std::vector<int>& dones = {}) {
  const int64_t t = static_cast<int64_t>(legal.size());
  const int64_t a = static_cast<int64_t>(legal.front().size());
  std::vector<int> flat;
  for (const auto& row : legal) flat.insert(flat.end(), row.begin(), row.end());
  TurnBatch b;
  b.observations = torch::zeros({t, 1});
  b.legal_mask = torch::tensor(flat).reshape({t, a}).to(torch::kBool);
  b.actions = torch::tensor(actions);
  b.advantages = torch::tensor(advantages);
  b.behaviour_log_probs = torch::tensor(behaviour);
  b.rewards = rewards.empty() ? torch::zeros({t}) : torch::tensor(rewards);
  b.dones = dones.empty() ? torch::ones({t}, torch::kBool) : torch::tensor(dones).to(torch::kBool);
  return b;
}

std::vector<double> Values(const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

TEST(ComputeLoss, PpoClipsOnBothSidesAndKeepsThePessimisticTerm) {
  // Two legal actions with equal logits: pi(a) = 1/2 on every turn. r = pi / mu.
  //   turn  A   mu    r    r A   clip(r) A  min
  //   0    +1  1/4    2    2     1.2        1.2   (A > 0, r > 1 + eps: clipped)
  //   1    -1  1      1/2  -0.5  -0.8       -0.8  (A < 0, r < 1 - eps: clipped)
  //   2    +2  1/2    1    2     2          2
  //   3    +1  1      1/2  0.5   0.8        0.5   (A > 0, r < 1 - eps: not clipped)
  //   4    -1  1/4    2    -2    -1.2       -2    (A < 0, r > 1 + eps: not clipped)
  // L = -(1.2 - 0.8 + 2 + 0.5 - 2) / 5 = -0.18.
  const float q = std::log(0.25f), h = std::log(0.5f);
  TurnBatch b = Batch({{1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, {0, 1, 0, 1, 0}, {1, -1, 2, 1, -1},
                      {q, 0, h, 0, q});
  torch::Tensor logits = torch::zeros({5, 2}, torch::requires_grad());
  LossOptions o;
  o.algorithm = Algorithm::kPpo;
  o.clip_epsilon = 0.2;
  o.entropy_coef = 0.1;
  LossTerms l =
      ComputeLossFromLogits(logits, torch::Tensor(), b, o, torch::Tensor(), torch::Tensor());
  EXPECT_NEAR(l.policy_loss, -0.18, 1e-6);
  EXPECT_NEAR(l.entropy, std::log(2.0), 1e-6);
  EXPECT_NEAR(l.loss.item<double>(), -0.18 - 0.1 * std::log(2.0), 1e-6);
  EXPECT_NEAR(l.clip_fraction, 4.0 / 5, 1e-9);
  EXPECT_NEAR(l.mean_importance_weight, (2 + 0.5 + 1 + 0.5 + 2) / 5.0, 1e-6);
  EXPECT_NEAR(l.magnet_kl, 0.0, 1e-6);  // pi is the uniform magnet
  // The clipped turns give no gradient; the others do. (The entropy's gradient is 0 at uniform.)
  l.loss.backward();
  torch::Tensor g = logits.grad().abs().sum(1);
  EXPECT_EQ(g[0].item<float>(), 0.f);
  EXPECT_EQ(g[1].item<float>(), 0.f);
  EXPECT_GT(g[2].item<float>(), 0.f);
  EXPECT_GT(g[3].item<float>(), 0.f);
  EXPECT_GT(g[4].item<float>(), 0.f);
}

TEST(ComputeVtrace, ThreeStepTargetsWithLambdaAndRhoTruncation) {
  // gamma = 0.9, lambda = 0.5, rho_bar = c_bar = 1. pi/mu = 2, 1/2, 1, so
  //   rho = 1, 1/2, 1 and c = lambda min(1, pi/mu) = 1/2, 1/4, 1/2.
  // V = 0.5, -0.2, 0.3; rewards 0, 0, 1; the last turn is done (value after it 0).
  // t=2: delta = 1 (1 + 0 - 0.3) = 0.7; v_2 = 0.3 + 0.7 = 1.0; pg_2 = 1 (1 + 0 - 0.3) = 0.7
  // t=1: delta = 0.5 (0 + 0.9 * 0.3 + 0.2) = 0.235; v_1 - V = 0.235 + 0.9 * 0.25 * 0.7 = 0.3925
  //      v_1 = 0.1925; pg_1 = 0.5 (0 + 0.9 * 1.0 + 0.2) = 0.55
  // t=0: delta = 1 (0 + 0.9 * -0.2 - 0.5) = -0.68; v_0 - V = -0.68 + 0.9 * 0.5 * 0.3925
  //      = -0.503375, v_0 = -0.003375; pg_0 = 1 (0 + 0.9 * 0.1925 - 0.5) = -0.32675
  // Check v_0 against the sum form: 0.5 + d0 + g c0 d1 + g^2 c0 c1 d2
  //   = 0.5 - 0.68 + 0.10575 + 0.070875 = -0.003375.
  LossOptions o;
  o.discount = 0.9;
  o.vtrace_lambda = 0.5;
  torch::Tensor log_rhos = torch::tensor({std::log(2.0f), std::log(0.5f), 0.f});
  torch::Tensor values = torch::tensor({0.5f, -0.2f, 0.3f});
  VtraceReturns v = ComputeVtrace(log_rhos, values, torch::tensor({0.f, 0.f, 1.f}),
                                  torch::tensor({0, 0, 1}).to(torch::kBool), o);
  std::vector<double> vs = Values(v.vs), pg = Values(v.pg_advantages), rho = Values(v.rhos);
  EXPECT_NEAR(vs[0], -0.003375, 1e-6);
  EXPECT_NEAR(vs[1], 0.1925, 1e-6);
  EXPECT_NEAR(vs[2], 1.0, 1e-6);
  EXPECT_NEAR(pg[0], -0.32675, 1e-6);
  EXPECT_NEAR(pg[1], 0.55, 1e-6);
  EXPECT_NEAR(pg[2], 0.7, 1e-6);
  EXPECT_NEAR(rho[0], 1.0, 1e-6);
  EXPECT_NEAR(rho[1], 0.5, 1e-6);
  EXPECT_NEAR(rho[2], 1.0, 1e-6);
}

TEST(ComputeVtrace, ValuesDoNotLeakAcrossASequenceBoundary) {
  // Seat 0: V = 0.5, 0.3, rewards 0, 1, done at its last turn. Seat 1: V = 100, reward -1.
  // gamma = 0.9, on-policy (rho = c = 1), lambda = 1.
  // Seat 0, t=1: v = 1, pg = 1 - 0.3 = 0.7 (seat 1's V = 100 must not enter).
  //         t=0: v = 0.5 + (0.9 * 0.3 - 0.5) + 0.9 * 0.7 = 0.9, pg = 0.9 * 1 - 0.5 = 0.4.
  // Seat 1, t=0: v = -1, pg = -1 - 100 = -101.
  LossOptions o;
  o.discount = 0.9;
  VtraceReturns v =
      ComputeVtrace(torch::zeros({3}), torch::tensor({0.5f, 0.3f, 100.f}),
                    torch::tensor({0.f, 1.f, -1.f}), torch::tensor({0, 1, 1}).to(torch::kBool), o);
  std::vector<double> vs = Values(v.vs), pg = Values(v.pg_advantages);
  EXPECT_NEAR(vs[0], 0.9, 1e-6);
  EXPECT_NEAR(vs[1], 1.0, 1e-6);
  EXPECT_NEAR(vs[2], -1.0, 1e-6);
  EXPECT_NEAR(pg[0], 0.4, 1e-6);
  EXPECT_NEAR(pg[1], 0.7, 1e-6);
  EXPECT_NEAR(pg[2], -101.0, 1e-4);
}

TEST(ComputeLoss, VtracePolicyAndValueTermsOnTheThreeStepSequence) {
  // The sequence of ThreeStepTargetsWithLambdaAndRhoTruncation with pi(a) = 1/2 on every turn:
  // mu = 1/4, 1, 1/2 gives pi/mu = 2, 1/2, 1.
  TurnBatch b = Batch({{1, 1}, {1, 1}, {1, 1}}, {0, 1, 0}, {0, 0, 0},
                      {std::log(0.25f), 0.f, std::log(0.5f)}, {0, 0, 1}, {0, 0, 1});
  torch::Tensor logits = torch::zeros({3, 2}, torch::requires_grad());
  torch::Tensor values = torch::tensor({0.5f, -0.2f, 0.3f}, torch::requires_grad());
  LossOptions o;
  o.algorithm = Algorithm::kVtrace;
  o.discount = 0.9;
  o.vtrace_lambda = 0.5;
  o.value_coef = 0.5;
  LossTerms l = ComputeLossFromLogits(logits, values, b, o, torch::Tensor(), torch::Tensor());
  // policy = -mean(pg_s log pi(a_s)) = -(-0.32675 + 0.55 + 0.7) / 3 * log(1/2)
  const double policy = -(-0.32675 + 0.55 + 0.7) / 3 * std::log(0.5);
  // value = 0.5 mean((v_s - V_s)^2) with v_s - V_s = -0.503375, 0.3925, 0.7
  const double value = 0.5 * (0.503375 * 0.503375 + 0.3925 * 0.3925 + 0.7 * 0.7) / 3;
  EXPECT_NEAR(l.policy_loss, policy, 1e-6);
  EXPECT_NEAR(l.value_loss, value, 1e-6);
  EXPECT_NEAR(l.loss.item<double>(), policy + 0.5 * value, 1e-6);
  EXPECT_NEAR(l.mean_importance_weight, (1 + 0.5 + 1) / 3.0, 1e-6);
  // d loss / d V_s = value_coef * (V_s - v_s) / T: the targets carry no gradient.
  l.loss.backward();
  std::vector<double> gv = Values(values.grad());
  EXPECT_NEAR(gv[0], 0.5 * 0.503375 / 3, 1e-6);
  EXPECT_NEAR(gv[1], 0.5 * -0.3925 / 3, 1e-6);
  EXPECT_NEAR(gv[2], 0.5 * -0.7 / 3, 1e-6);
}

TEST(ComputeLoss, KlAndMagnetSumOnlyOverLegalActions) {
  // Row 0: action 1 illegal (its logit 5 would dominate if it leaked), logits ln 3 and 0 on
  // actions 0 and 2, so pi = (3/4, 0, 1/4). Row 1: all legal, equal logits, pi uniform.
  // Uniform magnet over the legal actions:
  //   row 0: 3/4 ln(3/4 / 1/2) + 1/4 ln(1/4 / 1/2) = 3/4 ln 1.5 - 1/4 ln 2; row 1: 0.
  // Reference (1/4, 0, 3/4) with log 0 = -inf at the illegal action, and uniform in row 1:
  //   row 0: 3/4 ln 3 + 1/4 ln(1/3) = 1/2 ln 3; row 1: 0.
  TurnBatch b = Batch({{1, 0, 1}, {1, 1, 1}}, {0, 0}, {0, 0}, {0, 0});
  torch::Tensor logits =
      torch::tensor({{std::log(3.f), 5.f, 0.f}, {0.f, 0.f, 0.f}}).requires_grad_();
  const float inf = std::numeric_limits<float>::infinity();
  torch::Tensor reference =
      torch::tensor({{std::log(0.25f), -inf, std::log(0.75f)},
                     {std::log(1 / 3.f), std::log(1 / 3.f), std::log(1 / 3.f)}});
  LossOptions o;
  o.rho_bar = 0;  // REINFORCE weight 1; advantages are 0, so the policy term is 0
  o.kl_coef = 2;
  o.magnet_coef = 3;
  LossTerms l = ComputeLossFromLogits(logits, torch::Tensor(), b, o, reference, torch::Tensor());
  const double magnet = (0.75 * std::log(1.5) - 0.25 * std::log(2.0)) / 2;
  const double kl = 0.5 * std::log(3.0) / 2;
  EXPECT_NEAR(l.magnet_kl, magnet, 1e-6);
  EXPECT_NEAR(l.kl, kl, 1e-6);
  EXPECT_NEAR(l.loss.item<double>(), 2 * kl + 3 * magnet, 1e-6);
  l.loss.backward();
  EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>());
  EXPECT_EQ(logits.grad()[0][1].item<float>(), 0.f);  // the illegal logit gets no gradient
  // An explicit magnet (as an EMA net gives) equal to the reference gives the same KL.
  LossTerms m = ComputeLossFromLogits(logits, torch::Tensor(), b, o, torch::Tensor(), reference);
  EXPECT_NEAR(m.magnet_kl, kl, 1e-6);
  EXPECT_EQ(m.kl, 0.0);  // no reference policy
}

TEST(ComputeLoss, ReinforceIsReinforceLoss) {
  torch::manual_seed(3);
  PolicyNet net(1, std::vector<int>{4}, 3);
  TurnBatch b = Batch({{1, 0, 1}, {1, 1, 1}, {0, 1, 1}}, {2, 1, 1}, {1, -0.5, 2},
                      {std::log(0.4f), std::log(0.2f), std::log(0.7f)});
  b.observations = torch::tensor({{0.1f}, {-1.f}, {2.f}});
  LossOptions o;
  o.entropy_coef = 0.05;
  o.rho_bar = 1;
  LossTerms a = ComputeLoss(net, b, o, torch::Tensor(), torch::Tensor());
  LossTerms r = ReinforceLoss(net, b, 0.05, 1);
  EXPECT_NEAR(a.loss.item<double>(), r.loss.item<double>(), 1e-7);
  EXPECT_NEAR(a.policy_loss, r.policy_loss, 1e-7);
  EXPECT_NEAR(a.entropy, r.entropy, 1e-7);
  EXPECT_NEAR(a.mean_importance_weight, r.mean_importance_weight, 1e-7);
}

TEST(ComputeLoss, ValueLossTrainsTheValueHeadAndTorsoNeverThePolicyOutput) {
  torch::manual_seed(4);
  PolicyNet net(1, std::vector<int>{4}, 2);
  TurnBatch b = Batch({{1, 1}, {1, 1}, {1, 1}}, {0, 1, 0}, {0, 0, 0}, {-0.7f, -0.7f, -0.7f},
                      {0, 0, 1}, {0, 0, 1});
  b.observations = torch::tensor({{0.3f}, {-0.6f}, {1.2f}});
  auto Gradients = [&](double value_coef) {
    LossOptions o;
    o.algorithm = Algorithm::kVtrace;
    o.value_coef = value_coef;
    net->zero_grad();
    ComputeLoss(net, b, o, torch::Tensor(), torch::Tensor()).loss.backward();
    std::map<std::string, torch::Tensor> g;
    for (const auto& p : net->named_parameters()) {
      g[p.key()] =
          p.value().grad().defined() ? p.value().grad().clone() : torch::zeros_like(p.value());
    }
    return g;
  };
  auto without = Gradients(0.0);
  auto with = Gradients(1.0);
  // The policy term sends nothing into the value head (its targets carry no gradient)...
  EXPECT_EQ(without.at("value.weight").abs().sum().item<float>(), 0.f);
  EXPECT_EQ(without.at("value.bias").abs().sum().item<float>(), 0.f);
  // ...and the value loss trains the value head and the shared hidden layer, never the policy
  // output layer.
  EXPECT_GT(with.at("value.bias").abs().sum().item<float>(), 0.f);
  EXPECT_TRUE(torch::equal(with.at("layers.2.weight"), without.at("layers.2.weight")));
  EXPECT_TRUE(torch::equal(with.at("layers.2.bias"), without.at("layers.2.bias")));
  EXPECT_FALSE(torch::equal(with.at("layers.0.weight"), without.at("layers.0.weight")));
}

TEST(ComputeLoss, ExtremeBehaviourLogProbsGiveAFiniteLossAndGradient) {
  // One turn recorded with log mu = -1e30 (pi/mu overflows to inf unclamped) and one with
  // +1e30 (pi/mu underflows to 0), under either sign of advantage and of reward; the others
  // are ordinary. Every algorithm's loss, terms and gradients stay finite, and no importance
  // weight exceeds e^kMaxLogImportanceRatio.
  TurnBatch b =
      Batch({{1, 1}, {1, 1}, {1, 1}, {1, 1}, {1, 1}}, {0, 1, 0, 1, 0}, {1, -1, 1, -1, 0},
            {-1e30f, -1e30f, 1e30f, 1e30f, std::log(0.5f)}, {1, -1, 1, -1, 0}, {0, 1, 0, 1, 1});
  for (Algorithm algorithm : {Algorithm::kReinforce, Algorithm::kPpo, Algorithm::kVtrace}) {
    for (double rho_bar : {1.0, 0.0}) {
      SCOPED_TRACE(testing::Message()
                   << "algorithm " << static_cast<int>(algorithm) << ", rho_bar " << rho_bar);
      torch::Tensor logits = torch::zeros({5, 2}, torch::requires_grad());
      torch::Tensor values = torch::tensor({0.5f, -0.2f, 0.3f, 0.f, 1.f}, torch::requires_grad());
      LossOptions o;
      o.algorithm = algorithm;
      o.rho_bar = rho_bar;
      o.c_bar = rho_bar;
      o.entropy_coef = 0.01;
      LossTerms l = ComputeLossFromLogits(logits, values, b, o, torch::Tensor(), torch::Tensor());
      EXPECT_TRUE(std::isfinite(l.loss.item<double>()));
      EXPECT_TRUE(std::isfinite(l.policy_loss));
      EXPECT_TRUE(std::isfinite(l.value_loss));
      EXPECT_TRUE(std::isfinite(l.mean_importance_weight));
      EXPECT_LE(l.mean_importance_weight, std::exp(kMaxLogImportanceRatio));
      l.loss.backward();
      EXPECT_TRUE(torch::isfinite(logits.grad()).all().item<bool>()) << logits.grad();
      if (values.grad().defined()) {
        EXPECT_TRUE(torch::isfinite(values.grad()).all().item<bool>()) << values.grad();
      }
    }
  }
}

TEST(ComputeVtrace, ExtremeLogRhosGiveFiniteTargetsWithTruncationOff) {
  // rho_bar = c_bar = 0 turns truncation off (weights 1); a large bar keeps the clamped
  // weight e^kMaxLogImportanceRatio, finite.
  for (double bar : {0.0, 1e30}) {
    SCOPED_TRACE(testing::Message() << "bar " << bar);
    LossOptions o;
    o.rho_bar = bar;
    o.c_bar = bar;
    VtraceReturns v =
        ComputeVtrace(torch::tensor({1e30f, -1e30f, 0.f}), torch::tensor({0.5f, -0.2f, 0.3f}),
                      torch::tensor({0.f, 0.f, 1.f}), torch::tensor({0, 0, 1}).to(torch::kBool), o);
    EXPECT_TRUE(torch::isfinite(v.vs).all().item<bool>()) << v.vs;
    EXPECT_TRUE(torch::isfinite(v.pg_advantages).all().item<bool>()) << v.pg_advantages;
    EXPECT_TRUE(torch::isfinite(v.rhos).all().item<bool>()) << v.rhos;
    EXPECT_LE(v.rhos.max().item<double>(), std::exp(kMaxLogImportanceRatio) * (1 + 1e-6));
  }
}

TEST(UpdateEma, MovesTheTargetTowardTheSource) {
  torch::manual_seed(5);
  PolicyNet target(2, std::vector<int>{3}, 2);
  PolicyNet source(2, std::vector<int>{3}, 2);
  std::vector<torch::Tensor> before;
  for (const auto& p : target->parameters()) before.push_back(p.detach().clone());
  UpdateEma(target, source, 0.75);
  auto t = target->parameters();
  auto s = source->parameters();
  for (size_t i = 0; i < t.size(); ++i) {
    EXPECT_TRUE(torch::allclose(t[i], 0.75 * before[i] + 0.25 * s[i].detach()));
  }
}

TEST(PolicyLogProbs, IsTheMaskedPolicyWithoutGradient) {
  torch::manual_seed(6);
  PolicyNet net(1, std::vector<int>{4}, 3);
  TurnBatch b = Batch({{1, 0, 1}, {0, 1, 1}}, {0, 1}, {0, 0}, {0, 0});
  b.observations = torch::tensor({{0.5f}, {-0.5f}});
  torch::Tensor lp = PolicyLogProbs(net, b);
  EXPECT_FALSE(lp.requires_grad());
  EXPECT_TRUE(torch::allclose(lp, MaskedLogSoftmax(net->forward(b.observations), b.legal_mask)));
  EXPECT_NEAR(lp.exp().sum(1)[0].item<double>(), 1.0, 1e-6);
  EXPECT_EQ(lp.exp()[0][1].item<float>(), 0.f);
}

TEST(ParseAlgorithm, KnowsEveryNameTheJobSpecAccepts) {
  EXPECT_EQ(ParseAlgorithm("reinforce_rae").value(), Algorithm::kReinforce);
  EXPECT_EQ(ParseAlgorithm("ppo").value(), Algorithm::kPpo);
  EXPECT_EQ(ParseAlgorithm("vtrace").value(), Algorithm::kVtrace);
  EXPECT_EQ(ParseAlgorithm("a2c").status().code(), absl::StatusCode::kInvalidArgument);
  for (const char* name : {"reinforce_rae", "ppo", "vtrace"}) {
    auto c = ParseJobConfig(
        std::string("game: tictactoe\nstop: {max_learner_steps: 1}\nlearner: {algorithm: ") + name +
            "}\n",
        "a.yaml");
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE(ParseAlgorithm(c->learner.algorithm).ok());
  }
}

TEST(PolicyNet, ValueHeadBesideThePolicyOutput) {
  torch::manual_seed(7);
  PolicyNet net(3, std::vector<int>{5, 4}, 6);
  torch::Tensor x = torch::rand({2, 3});
  auto [logits, values] = net->forward_with_value(x);
  EXPECT_TRUE(torch::equal(logits, net->forward(x)));
  EXPECT_EQ(values.sizes(), (std::vector<int64_t>{2}));
  // Weights saved before the value head existed still import; the value head stays as it was.
  std::vector<NamedTensor> old;
  for (NamedTensor& t : ExportParameters(net)) {
    if (t.name.rfind("value.", 0) != 0) old.push_back(std::move(t));
  }
  ASSERT_EQ(old.size(), 6u);
  torch::manual_seed(8);
  PolicyNet other(3, std::vector<int>{5, 4}, 6);
  ASSERT_TRUE(ImportParameters(other, old).ok());
  EXPECT_TRUE(torch::equal(other->forward(x), logits));
  // Only the value head may be missing.
  old.pop_back();
  EXPECT_EQ(ImportParameters(other, old).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rally
