#include "services/learner/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

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

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void Overwrite(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

TEST(Checkpoint, ADamagedLatestCheckpointResumesFromTheNewestIntactOne) {
  const fs::path dir =
      fs::temp_directory_path() / ("rally-ckpt-damaged-" + std::to_string(getpid()));
  fs::remove_all(dir);
  torch::manual_seed(1);
  PolicyNet a(6, std::vector<int>{16}, 4);
  torch::optim::Adam opt_a(a->parameters(), torch::optim::AdamOptions(1e-2));
  LearnerState state{"job-1", "g", {}, 0, 0, {}};
  // Checkpoints at steps 10, 20 and 30, the parameters differing at each.
  std::map<int64_t, std::vector<torch::Tensor>> saved;
  for (int64_t s : {10, 20, 30}) {
    Step(a, opt_a, static_cast<int>(s));
    state.step = s;
    state.version = s + 1;
    ASSERT_TRUE(SaveCheckpoint(dir.string(), state, a, opt_a, 3).ok());
    for (const auto& p : a->parameters()) saved[s].push_back(p.detach().clone());
  }
  // Nothing is left half-written under a temporary name.
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  }
  auto expect_resumed_at = [&](int64_t step) {
    torch::manual_seed(99);
    PolicyNet b(6, std::vector<int>{16}, 4);
    torch::optim::Adam opt_b(b->parameters(), torch::optim::AdamOptions(1e-2));
    auto loaded = LoadLatestCheckpoint(dir.string(), "job-1", b, opt_b);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_EQ(loaded->step, step);
    EXPECT_EQ(loaded->version, step + 1);
    auto pb = b->parameters();
    for (size_t i = 0; i < pb.size(); ++i) EXPECT_TRUE(torch::equal(pb[i], saved[step][i])) << i;
  };
  expect_resumed_at(30);

  // The newest one's weights cut short (a copy cut off, a disk error): the one before it.
  const std::string weights = ReadAll(dir / "step-30/weights.safetensors");
  Overwrite(dir / "step-30/weights.safetensors", weights.substr(0, weights.size() / 2));
  expect_resumed_at(20);
  // Its manifest parses but a field has the wrong type: the same.
  Overwrite(dir / "step-20/manifest.json", "{\"job_id\": \"job-1\", \"learner_step\": \"twenty\"}");
  expect_resumed_at(10);
  // `latest` names a checkpoint that is not there: the newest that is.
  Overwrite(dir / "latest", "step-40\n");
  expect_resumed_at(10);

  // A model of another shape is not damage: no fallback, the import's error.
  Overwrite(dir / "latest", "step-10\n");
  PolicyNet wider(6, std::vector<int>{32}, 4);
  torch::optim::Adam opt_w(wider->parameters());
  auto misfit = LoadLatestCheckpoint(dir.string(), "job-1", wider, opt_w);
  EXPECT_FALSE(misfit.ok());
  EXPECT_NE(misfit.status().code(), absl::StatusCode::kDataLoss) << misfit.status();

  // Every checkpoint damaged: DATA_LOSS naming the file `latest` points at.
  Overwrite(dir / "step-10/optimizer.safetensors", "");
  PolicyNet c(6, std::vector<int>{16}, 4);
  torch::optim::Adam opt_c(c->parameters());
  auto none = LoadLatestCheckpoint(dir.string(), "job-1", c, opt_c);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kDataLoss) << none.status();
  EXPECT_NE(none.status().message().find("step-10/optimizer.safetensors"), std::string::npos)
      << none.status();
  fs::remove_all(dir);
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
