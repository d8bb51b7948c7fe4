// The learner's guard against numbers that are not finite (skipped updates and refused weights),
// and the Trainer's seam to the policy it trains (TurnPolicyLearner: weights and checkpoints).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "common/models/safetensors.h"
#include "services/learner/checkpoint.h"
#include "services/learner/trainer.h"
#include "services/learner/turn_policy_learner.h"

namespace rally {
namespace {

using Outcome = GuardedOptimiser::Outcome;

double CounterValue(prometheus::Registry& registry, const std::string& name,
                    const std::string& label, const std::string& value) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      for (const auto& l : metric.label) {
        if (l.name == label && l.value == value) return metric.counter.value;
      }
    }
  }
  ADD_FAILURE() << "no counter " << name << "{" << label << "=\"" << value << "\"}";
  return -1;
}

std::vector<torch::Tensor> Copies(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> out;
  for (const torch::Tensor& t : tensors) out.push_back(t.detach().clone());
  return out;
}

bool Same(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i], b[i])) return false;
  }
  return true;
}

class GuardedOptimiserTest : public ::testing::Test {
 protected:
  GuardedOptimiserTest()
      : linear_(torch::nn::LinearOptions(3, 2)),
        optimiser_(linear_->parameters(), torch::optim::AdamOptions(0.1)),
        metrics_(registry_),
        guard_(linear_->parameters(), optimiser_, /*dp=*/nullptr, metrics_) {
    torch::manual_seed(0);
  }

  torch::Tensor Loss() { return linear_->forward(torch::ones({4, 3})).pow(2).sum(); }

  double Skipped(const std::string& reason) {
    return CounterValue(registry_, "rally_learner_batches_skipped_total", "reason", reason);
  }
  double Refused(const std::string& destination) {
    return CounterValue(registry_, "rally_learner_weights_refused_total", "destination",
                        destination);
  }
  bool GradientsZero() {
    for (const torch::Tensor& p : linear_->parameters()) {
      if (p.grad().defined() && p.grad().abs().sum().item<double>() != 0) return false;
    }
    return true;
  }

  torch::nn::Linear linear_;
  torch::optim::Adam optimiser_;
  prometheus::Registry registry_;
  TrainerMetrics metrics_;
  GuardedOptimiser guard_;
};

TEST_F(GuardedOptimiserTest, AppliesAFiniteUpdate) {
  const auto before = Copies(linear_->parameters());
  EXPECT_EQ(guard_.Update(Loss()).value(), Outcome::kApplied);
  EXPECT_FALSE(Same(before, Copies(linear_->parameters())));
  EXPECT_EQ(Skipped("non_finite_loss"), 0);
  EXPECT_EQ(Skipped("non_finite_gradient"), 0);
  EXPECT_EQ(guard_.skipped(), 0);
}

TEST_F(GuardedOptimiserTest, SkipsAnUpdateWhoseLossIsNotFinite) {
  const auto before = Copies(linear_->parameters());
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity()}) {
    EXPECT_EQ(guard_.Update(Loss() * bad).value(), Outcome::kSkipped);
  }
  EXPECT_TRUE(Same(before, Copies(linear_->parameters())));
  EXPECT_TRUE(GradientsZero());
  EXPECT_TRUE(optimiser_.state().empty());  // Adam never stepped: its moments are untouched
  EXPECT_EQ(Skipped("non_finite_loss"), 2);
  EXPECT_EQ(Skipped("non_finite_gradient"), 0);
  EXPECT_EQ(guard_.skipped(), 2);
  // The next finite batch trains as if the bad ones had never come.
  EXPECT_EQ(guard_.Update(Loss()).value(), Outcome::kApplied);
  EXPECT_FALSE(Same(before, Copies(linear_->parameters())));
}

TEST_F(GuardedOptimiserTest, SkipsAnUpdateWithAGradientThatIsNotFinite) {
  // sqrt at 0: the loss is 0, its gradient inf.
  const torch::Tensor w = linear_->weight;
  torch::Tensor loss = (w - w.detach()).sqrt().sum() + Loss();
  ASSERT_TRUE(std::isfinite(loss.item<double>()));
  const auto before = Copies(linear_->parameters());
  EXPECT_EQ(guard_.Update(loss).value(), Outcome::kSkipped);
  EXPECT_TRUE(Same(before, Copies(linear_->parameters())));
  EXPECT_TRUE(GradientsZero());
  EXPECT_TRUE(optimiser_.state().empty());
  EXPECT_EQ(Skipped("non_finite_gradient"), 1);
  EXPECT_EQ(Skipped("non_finite_loss"), 0);
}

TEST_F(GuardedOptimiserTest, StopsWithoutApplyingWhenThisRankHasNoBatch) {
  const auto before = Copies(linear_->parameters());
  EXPECT_EQ(guard_.Update(torch::Tensor()).value(), Outcome::kStopped);
  EXPECT_TRUE(Same(before, Copies(linear_->parameters())));
  EXPECT_EQ(guard_.skipped(), 0);
}

TEST_F(GuardedOptimiserTest, RefusesToHandOutWeightsThatAreNotFinite) {
  EXPECT_TRUE(guard_.WeightsFinite(GuardedOptimiser::Destination::kPublish));
  EXPECT_EQ(Refused("publish"), 0);
  {
    torch::NoGradGuard no_grad;
    linear_->bias[1] = std::numeric_limits<float>::quiet_NaN();
  }
  EXPECT_FALSE(guard_.WeightsFinite(GuardedOptimiser::Destination::kPublish));
  EXPECT_FALSE(guard_.WeightsFinite(GuardedOptimiser::Destination::kCheckpoint));
  EXPECT_FALSE(guard_.WeightsFinite(GuardedOptimiser::Destination::kPublish));
  EXPECT_EQ(Refused("publish"), 2);
  EXPECT_EQ(Refused("checkpoint"), 1);
}

TEST(AllFinite, LooksAtEveryElementOfEveryDefinedTensor) {
  EXPECT_TRUE(AllFinite({}));
  EXPECT_TRUE(AllFinite({torch::Tensor(), torch::zeros({2, 2})}));
  torch::Tensor t = torch::zeros({3, 5});
  t[2][4] = -std::numeric_limits<float>::infinity();
  EXPECT_FALSE(AllFinite({torch::ones({7}), t}));
  t[2][4] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(AllFinite({t}));
}

JobConfig HiddenFive() {
  JobConfig config;
  config.policy.hidden = {5};
  return config;
}

// One Adam step on the sum of the squared parameters: moves them and gives Adam its moments.
void SquaresStep(const std::vector<torch::Tensor>& parameters, torch::optim::Adam& optimiser) {
  torch::Tensor loss = torch::zeros({});
  for (const torch::Tensor& p : parameters) loss = loss + p.pow(2).sum();
  optimiser.zero_grad();
  loss.backward();
  optimiser.step();
}

bool SameValues(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i], b[i])) return false;
  }
  return true;
}

TEST(TrainerTurnPolicyLearner, PublishesEveryParameterWithItsVersionAndStep) {
  torch::manual_seed(3);
  TurnPolicyLearner learner(HiddenFive(), /*observation_size=*/4, /*num_actions=*/3);
  const std::vector<torch::Tensor> parameters = learner.Parameters();
  // 4 -> 5 hidden, 5 -> 3 policy logits, 5 -> 1 value: a weight and a bias each.
  ASSERT_EQ(parameters.size(), 6u);
  int64_t elements = 0;
  for (const torch::Tensor& p : parameters) elements += p.numel();
  EXPECT_EQ(elements, 4 * 5 + 5 + 5 * 3 + 3 + 5 * 1 + 1);

  absl::StatusOr<TensorSet> set = DecodeSafetensors(learner.EncodeWeights(7, 41));
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->metadata.at("policy_version"), "7");
  EXPECT_EQ(set->metadata.at("learner_step"), "41");
  ASSERT_EQ(set->tensors.size(), parameters.size());
  // Every published tensor is one of the parameters, byte for byte.
  for (const NamedTensor& t : set->tensors) {
    bool found = false;
    for (const torch::Tensor& p : parameters) {
      const torch::Tensor c = p.detach().contiguous();
      if (c.sizes().vec() != t.shape || t.data.size() != c.numel() * sizeof(float)) continue;
      found = found || std::memcmp(t.data.data(), c.data_ptr<float>(), t.data.size()) == 0;
    }
    EXPECT_TRUE(found) << t.name;
  }
}

TEST(TrainerTurnPolicyLearner, ACheckpointCarriesWeightsOptimiserAndBaselinesToAFreshLearner) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("rally-turn-learner-" + std::to_string(getpid())))
          .string();
  std::filesystem::remove_all(dir);
  // A checkpoint of a net of the same shape, with baselines, as an earlier run wrote it.
  torch::manual_seed(1);
  PolicyNet earlier(4, std::vector<int>{5}, 3);
  torch::optim::Adam earlier_optimiser(earlier->parameters(), torch::optim::AdamOptions(0.1));
  SquaresStep(earlier->parameters(), earlier_optimiser);
  LearnerState earlier_state{"job-1", "g", {}, 5, 3, {{{"g", "0"}, 0.25}}, 4, {5}, 3};
  ASSERT_TRUE(SaveCheckpoint(dir, earlier_state, earlier, earlier_optimiser, 2).ok());

  torch::manual_seed(2);
  TurnPolicyLearner resumed(HiddenFive(), 4, 3);
  torch::optim::Adam resumed_optimiser(resumed.Parameters(), torch::optim::AdamOptions(0.1));
  absl::StatusOr<LearnerState> state = resumed.Restore(dir, "job-1", resumed_optimiser);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->step, 5);
  EXPECT_EQ(state->version, 3);
  EXPECT_TRUE(SameValues(resumed.Parameters(), earlier->parameters()));
  LearnerState described{"job-1", "g", {}, 6, 4};
  resumed.DescribeModel(described);
  EXPECT_EQ(described.observation_size, 4);
  EXPECT_EQ(described.hidden, std::vector<int>{5});
  EXPECT_EQ(described.num_actions, 3);
  EXPECT_DOUBLE_EQ((described.baselines.at({"g", "0"})), 0.25);
  EXPECT_EQ(described.step, 6);  // the Trainer's part is left as it was

  // The resumed learner checkpoints in its turn (its baselines: the restored ones, as no batch
  // has been decoded); a third learner resumes from that.
  SquaresStep(resumed.Parameters(), resumed_optimiser);
  ASSERT_TRUE(
      resumed.SaveCheckpoint(dir, LearnerState{"job-1", "g", {}, 6, 4}, resumed_optimiser, 2).ok());
  torch::manual_seed(3);
  TurnPolicyLearner third(HiddenFive(), 4, 3);
  torch::optim::Adam third_optimiser(third.Parameters(), torch::optim::AdamOptions(0.1));
  state = third.Restore(dir, "job-1", third_optimiser);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->step, 6);
  EXPECT_EQ(state->version, 4);
  EXPECT_DOUBLE_EQ((state->baselines.at({"g", "0"})), 0.25);
  EXPECT_EQ(state->hidden, std::vector<int>{5});
  EXPECT_TRUE(SameValues(third.Parameters(), resumed.Parameters()));
  // Adam's moments came along: one more identical step keeps the two identical.
  SquaresStep(resumed.Parameters(), resumed_optimiser);
  SquaresStep(third.Parameters(), third_optimiser);
  EXPECT_TRUE(SameValues(third.Parameters(), resumed.Parameters()));

  EXPECT_TRUE(absl::IsNotFound(third.Restore(dir, "job-2", third_optimiser).status()));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rally
