// The learner's guard against numbers that are not finite: skipped updates and refused weights.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "services/learner/trainer.h"

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

}  // namespace
}  // namespace rally
