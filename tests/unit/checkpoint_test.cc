#include "services/learner/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace rally {
namespace {

namespace fs = std::filesystem;

void Step(PolicyNet& net, torch::optim::Adam& opt, int seed) {
  torch::manual_seed(seed);
  auto x = torch::rand({8, 6});
  auto loss = net->forward(x).pow(2).mean();
  opt.zero_grad();
  loss.backward();
  opt.step();
}

TEST(Checkpoint, ResumingContinuesExactlyWhereTrainingStopped) {
  std::string dir =
      (fs::temp_directory_path() / ("rally-ckpt-" + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  torch::manual_seed(1);
  PolicyNet a(6, std::vector<int>{16}, 4);
  torch::optim::Adam opt_a(a->parameters(), torch::optim::AdamOptions(1e-2));
  for (int i = 0; i < 3; ++i) Step(a, opt_a, i);
  LearnerState state{"job-1", "g", {{"max_turns", "4"}},
                     3,       2,   {{{"g", "0"}, 0.25}, {{"g", "1"}, -0.5}}};
  ASSERT_TRUE(SaveCheckpoint(dir, state, a, opt_a, 2).ok());

  torch::manual_seed(99);  // a different initialisation, as after a restart
  PolicyNet b(6, std::vector<int>{16}, 4);
  torch::optim::Adam opt_b(b->parameters(), torch::optim::AdamOptions(1e-2));
  auto loaded = LoadLatestCheckpoint(dir, "job-1", b, opt_b);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->step, 3);
  EXPECT_EQ(loaded->version, 2);
  EXPECT_EQ(loaded->game_params, (GameParameters{{"max_turns", "4"}}));
  EXPECT_DOUBLE_EQ((loaded->baselines.at({"g", "1"})), -0.5);
  auto pa = a->parameters();
  auto pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
  // The optimiser's moments came back too: one more identical step keeps them identical (a fresh
  // Adam would take a different step).
  Step(a, opt_a, 7);
  Step(b, opt_b, 7);
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::allclose(pa[i], pb[i], 0, 1e-7));

  // Another job's checkpoint is not resumed.
  EXPECT_EQ(LoadLatestCheckpoint(dir, "job-2", b, opt_b).status().code(),
            absl::StatusCode::kNotFound);
  // Retention keeps the newest two.
  for (int64_t s : {4, 5, 6}) {
    state.step = s;
    ASSERT_TRUE(SaveCheckpoint(dir, state, a, opt_a, 2).ok());
  }
  EXPECT_FALSE(fs::exists(fs::path(dir) / "step-3"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "step-4"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "step-5"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "step-6/optimizer.safetensors"));
  EXPECT_EQ(LoadLatestCheckpoint(dir, "job-1", b, opt_b)->step, 6);
}

TEST(Checkpoint, NothingToResumeIsNotFound) {
  PolicyNet net(6, std::vector<int>{16}, 4);
  torch::optim::Adam opt(net->parameters());
  EXPECT_EQ(LoadLatestCheckpoint("/nonexistent/rally", "j", net, opt).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadLatestCheckpoint("", "j", net, opt).status().code(), absl::StatusCode::kNotFound);
}

TEST(Checkpoint, ReservedVersionsBelongToTheirJob) {
  const std::string dir =
      (fs::temp_directory_path() / ("rally-versions-" + std::to_string(getpid()))).string();
  fs::remove_all(dir);
  EXPECT_EQ(*ReservedVersions(dir, "job-1"), -1);  // nothing reserved yet
  EXPECT_EQ(*ReservedVersions("", "job-1"), -1);
  ASSERT_TRUE(ReserveVersions(dir, "job-1", 63).ok());  // creates the directory
  ASSERT_TRUE(ReserveVersions(dir, "job-1", 127).ok());
  EXPECT_EQ(*ReservedVersions(dir, "job-1"), 127);
  EXPECT_EQ(*ReservedVersions(dir, "job-2"), -1);  // another job's reservation is not this one's
  EXPECT_FALSE(fs::exists(fs::path(dir) / "versions.json.tmp"));
  {
    std::ofstream damaged(fs::path(dir) / "versions.json");
    damaged << "{\"job_id\": \"job-1\", \"reserved_";
  }
  auto damaged = ReservedVersions(dir, "job-1");
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(damaged.status().message().find("versions.json is not"), std::string::npos)
      << damaged.status();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace rally
