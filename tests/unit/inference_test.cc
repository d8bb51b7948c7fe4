#include "services/actor/inference.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/eval/network_evaluation.h"
#include "common/eval/opponents.h"
#include "common/games/registry.h"
#include "common/games/tictactoe.h"
#include "common/models/policy_net.h"

namespace rally {
namespace {

TEST(SampleAction, FollowsTheProbabilitiesOverLegalActions) {
  std::mt19937_64 rng(3);
  float probs[4] = {0.0f, 0.25f, 0.0f, 0.75f};
  std::vector<int> legal = {1, 2, 3};
  int counts[4] = {0, 0, 0, 0};
  const int n = 40000;
  for (int i = 0; i < n; ++i) ++counts[SampleAction(probs, legal, false, rng).first];
  EXPECT_EQ(counts[0], 0);
  EXPECT_EQ(counts[2], 0);  // legal but probability 0
  // Binomial(40000, 0.25): sd ~87; 5 sd.
  EXPECT_NEAR(counts[1], n / 4, 435);
  EXPECT_EQ(SampleAction(probs, legal, true, rng), std::make_pair(3, 0.75f));
}

std::shared_ptr<NetworkPolicy> UniformPolicy() {
  // All-zero weights give equal logits: the uniform policy over legal actions.
  PolicyNet net(27, std::vector<int>{8}, 9);
  auto tensors = ExportParameters(net);
  for (auto& t : tensors) std::fill(t.data.begin(), t.data.end(), '\0');
  TensorSet set;
  set.tensors = tensors;
  return NetworkPolicy::FromWeights(27, {8}, 9, 5, EncodeSafetensors(set)).value();
}

TEST(InferenceWorker, AnswersWithALegalActionAndItsLogProbability) {
  InferenceWorker worker(4, std::chrono::microseconds(100), 1, nullptr);
  auto policy = UniformPolicy();
  TicTacToeState s;
  s.ApplyAction(4);
  std::vector<std::future<absl::StatusOr<InferenceResponse>>> futures;
  for (int i = 0; i < 10; ++i) {
    InferenceRequest r;
    r.policy = policy;
    r.observation.resize(27);
    s.ObservationTensor(1, r.observation);
    r.legal_actions = s.LegalActions();
    futures.push_back(worker.Submit(std::move(r)));
  }
  for (auto& f : futures) {
    auto resp = f.get();
    ASSERT_TRUE(resp.ok());
    EXPECT_NE(resp->action, 4);
    EXPECT_NEAR(resp->log_prob, std::log(1.0 / 8), 1e-5);
  }
}

TEST(Evaluate, UniformPolicyAgainstPerfectPlayNeverWinsAndSeatsAlternate) {
  TicTacToeGame game;
  auto policy = UniformPolicy();
  std::mt19937_64 rng(11);
  auto perfect = MakeOpponent("perfect", game).value();
  v1::EvalResult r = Evaluate(game, *policy, *perfect, 400, false, rng);
  EXPECT_EQ(r.games(), 400);
  EXPECT_EQ(r.wins(), 0);
  EXPECT_EQ(r.wins() + r.draws() + r.losses(), 400);
  EXPECT_GT(r.losses(), 300);
  EXPECT_EQ(r.policy_version(), 5);
  // Against itself-like random play, the first seat wins more than the second: with both seats
  // alternated the uniform policy wins a share near the average of the two (~0.44).
  auto random = MakeOpponent("random", game).value();
  v1::EvalResult rr = Evaluate(game, *policy, *random, 4000, false, rng);
  EXPECT_NEAR(static_cast<double>(rr.wins()) / 4000, 0.437, 0.03);
}

}  // namespace
}  // namespace rally

namespace rally {
namespace {

TEST(EvaluateExactly, TheUniformPolicyOnKuhnHasExploitabilityElevenTwentyFourths) {
  auto game = LoadGame("kuhn_poker");
  ASSERT_TRUE(game.ok());
  // All-zero weights: equal logits, the uniform policy over legal actions.
  const int obs = (*game)->ObservationSize();
  PolicyNet net(obs, std::vector<int>{8}, (*game)->NumDistinctActions());
  auto tensors = ExportParameters(net);
  for (auto& t : tensors) std::fill(t.data.begin(), t.data.end(), '\0');
  TensorSet set;
  set.tensors = tensors;
  auto policy = NetworkPolicy::FromWeights(obs, {8}, (*game)->NumDistinctActions(), 3,
                                           EncodeSafetensors(set));
  ASSERT_TRUE(policy.ok());
  auto tree = GameTree::Build(**game);
  ASSERT_TRUE(tree.ok());
  auto r = EvaluateExactly(**game, *tree, **policy);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->opponent(), "best_response");
  EXPECT_EQ(r->policy_version(), 3);
  EXPECT_NEAR(r->exploitability(), 11.0 / 24, 1e-6);  // NashConv 11/12, halved
}

}  // namespace
}  // namespace rally
