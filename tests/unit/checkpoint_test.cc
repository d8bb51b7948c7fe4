#include "services/learner/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/models/safetensors.h"
#include "nlohmann/json.hpp"

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

// A fresh `dir` with job-1's checkpoints at `steps` (version = step + 1), the parameters
// differing at each; returns each step's parameters.
std::map<int64_t, std::vector<torch::Tensor>> SaveCheckpointsAt(const fs::path& dir,
                                                                const std::vector<int64_t>& steps) {
  fs::remove_all(dir);
  torch::manual_seed(1);
  PolicyNet a(6, std::vector<int>{16}, 4);
  torch::optim::Adam opt_a(a->parameters(), torch::optim::AdamOptions(1e-2));
  LearnerState state{"job-1", "g", {}, 0, 0, {{{"g", "0"}, 0.5}}};
  std::map<int64_t, std::vector<torch::Tensor>> saved;
  for (int64_t s : steps) {
    Step(a, opt_a, static_cast<int>(s));
    state.step = s;
    state.version = s + 1;
    EXPECT_TRUE(SaveCheckpoint(dir.string(), state, a, opt_a, 3).ok());
    for (const auto& p : a->parameters()) saved[s].push_back(p.detach().clone());
  }
  return saved;
}

// A restarted learner (another initialisation) resumes job-1 from `dir` at `step`, with `params`.
void ExpectResumesAt(const fs::path& dir, int64_t step, const std::vector<torch::Tensor>& params) {
  torch::manual_seed(99);
  PolicyNet b(6, std::vector<int>{16}, 4);
  torch::optim::Adam opt_b(b->parameters(), torch::optim::AdamOptions(1e-2));
  auto loaded = LoadLatestCheckpoint(dir.string(), "job-1", b, opt_b);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->step, step);
  EXPECT_EQ(loaded->version, step + 1);
  auto pb = b->parameters();
  ASSERT_EQ(pb.size(), params.size());
  for (size_t i = 0; i < pb.size(); ++i) EXPECT_TRUE(torch::equal(pb[i], params[i])) << i;
}

TEST(Checkpoint, ADamagedLatestCheckpointResumesFromTheNewestIntactOne) {
  const fs::path dir =
      fs::temp_directory_path() / ("rally-ckpt-damaged-" + std::to_string(getpid()));
  auto saved = SaveCheckpointsAt(dir, {10, 20, 30});
  // Nothing is left half-written under a temporary name.
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  }
  auto expect_resumed_at = [&](int64_t step) { ExpectResumesAt(dir, step, saved[step]); };
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

TEST(Checkpoint, RetentionNeverRemovesTheCheckpointJustWritten) {
  // A run resumed from step 20 because step-30 was damaged saves step 21 keeping only one: the
  // damaged, higher-numbered step-30 must not count as the newest and push step 21 out.
  const fs::path dir =
      fs::temp_directory_path() / ("rally-ckpt-retention-" + std::to_string(getpid()));
  SaveCheckpointsAt(dir, {10, 20, 30});
  Overwrite(dir / "step-30/weights.safetensors", "cut");
  PolicyNet net(6, std::vector<int>{16}, 4);
  torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-2));
  ASSERT_EQ(LoadLatestCheckpoint(dir.string(), "job-1", net, opt)->step, 20);
  LearnerState state{"job-1", "g", {}, 21, 22, {}};
  ASSERT_TRUE(SaveCheckpoint(dir.string(), state, net, opt, 1).ok());
  EXPECT_TRUE(fs::exists(dir / "step-21/weights.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "step-20"));
  std::vector<torch::Tensor> params;
  for (const auto& p : net->parameters()) params.push_back(p.detach().clone());
  ExpectResumesAt(dir, 21, params);
  fs::remove_all(dir);
}

// Each way a checkpoint's files can be damaged without being cut short: the loader reports it as
// damage (no exception, nothing loaded from it) and resumes from the checkpoint before.
TEST(Checkpoint, EveryKindOfDamageFallsBackWithoutThrowing) {
  struct Damage {
    const char* what;
    std::function<void(const fs::path&)> apply;  // given the damaged checkpoint's directory
  };
  const auto edit_manifest = [](const fs::path& cp, const std::function<void(nlohmann::json&)>& f) {
    nlohmann::json m = nlohmann::json::parse(ReadAll(cp / "manifest.json"));
    f(m);
    Overwrite(cp / "manifest.json", m.dump());
  };
  // `file` replaced by `bytes` as a writer that got it wrong would have written it: with its
  // checksum in the manifest, so that the loader's later checks are the ones to catch it.
  const auto rewrite = [&](const fs::path& cp, const std::string& file, const std::string& bytes) {
    Overwrite(cp / file, bytes);
    edit_manifest(cp, [&](nlohmann::json& m) { m["checksums"][file] = FileChecksum(bytes); });
  };
  // The optimiser file re-encoded with its first tensor changed by `f`.
  const auto edit_moments = [&](const fs::path& cp, const std::function<void(NamedTensor&)>& f) {
    auto set = DecodeSafetensors(ReadAll(cp / "optimizer.safetensors"));
    ASSERT_TRUE(set.ok()) << set.status();
    f(set->tensors.front());
    rewrite(cp, "optimizer.safetensors", EncodeSafetensors(*set));
  };
  const std::vector<Damage> damages = {
      {"job_id not a string",
       [&](const fs::path& cp) { edit_manifest(cp, [](nlohmann::json& m) { m["job_id"] = 7; }); }},
      {"a baseline without its role",
       [&](const fs::path& cp) {
         edit_manifest(cp, [](nlohmann::json& m) {
           m["baselines"] = nlohmann::json::array({{{"game", "g"}, {"value", 1.0}}});
         });
       }},
      {"an RNG state of the wrong length",
       [&](const fs::path& cp) {
         edit_manifest(cp, [](nlohmann::json& m) { m["cpu_rng_state_hex"] = "00ff"; });
       }},
      {"weights whose byte offsets are text",
       [&](const fs::path& cp) {
         // The safetensors header (8 bytes of length, then JSON) rewritten with one tensor's
         // offsets as strings; the data after it unchanged.
         const std::string w = ReadAll(cp / "weights.safetensors");
         uint64_t n = 0;
         for (int i = 0; i < 8; ++i)
           n |= static_cast<uint64_t>(static_cast<uint8_t>(w[i])) << (8 * i);
         nlohmann::json header = nlohmann::json::parse(w.substr(8, n));
         for (auto& [name, entry] : header.items()) {
           if (name == "__metadata__") continue;
           entry["data_offsets"] = {std::to_string(entry["data_offsets"][0].get<uint64_t>()),
                                    std::to_string(entry["data_offsets"][1].get<uint64_t>())};
           break;
         }
         const std::string json = header.dump();
         std::string out;
         for (int i = 0; i < 8; ++i)
           out.push_back(static_cast<char>((json.size() >> (8 * i)) & 0xff));
         rewrite(cp, "weights.safetensors", out + json + w.substr(8 + n));
       }},
      {"one bit of a weight flipped (it parses as well as the right one)",
       [&](const fs::path& cp) {
         std::string w = ReadAll(cp / "weights.safetensors");
         w[w.size() - 3] ^= 0x10;
         Overwrite(cp / "weights.safetensors", w);
       }},
      {"one bit of a moment flipped",
       [&](const fs::path& cp) {
         std::string o = ReadAll(cp / "optimizer.safetensors");
         o[o.size() - 1] ^= 0x01;
         Overwrite(cp / "optimizer.safetensors", o);
       }},
      {"checksums that are not strings",
       [&](const fs::path& cp) {
         edit_manifest(cp, [](nlohmann::json& m) { m["checksums"]["weights.safetensors"] = 7; });
       }},
      {"moments of float64",
       [&](const fs::path& cp) {
         edit_moments(cp, [](NamedTensor& t) {
           t.dtype = "F64";
           t.data += t.data;
         });
       }},
      {"moments of another shape (the same bytes)",
       [&](const fs::path& cp) {
         edit_moments(cp, [](NamedTensor& t) {
           t.shape = {1, static_cast<int64_t>(t.data.size() / 4)};
         });
       }},
  };
  for (const Damage& damage : damages) {
    SCOPED_TRACE(damage.what);
    const fs::path dir =
        fs::temp_directory_path() / ("rally-ckpt-kinds-" + std::to_string(getpid()));
    auto saved = SaveCheckpointsAt(dir, {5, 10});
    damage.apply(dir / "step-10");
    ExpectResumesAt(dir, 5, saved[5]);
    fs::remove_all(dir);
  }
}

// The manifest records each file's CRC-32C: a changed byte is DATA_LOSS naming the file and both
// checksums; a checkpoint written before checksums were recorded still loads.
TEST(Checkpoint, AChangedByteIsFoundByItsChecksum) {
  const fs::path dir = fs::temp_directory_path() / ("rally-ckpt-crc-" + std::to_string(getpid()));
  auto saved = SaveCheckpointsAt(dir, {5});
  const fs::path cp = dir / "step-5";
  nlohmann::json manifest = nlohmann::json::parse(ReadAll(cp / "manifest.json"));
  const std::string weights = ReadAll(cp / "weights.safetensors");
  ASSERT_EQ(manifest["checksums"]["weights.safetensors"], FileChecksum(weights));
  EXPECT_EQ(manifest["checksums"]["optimizer.safetensors"],
            FileChecksum(ReadAll(cp / "optimizer.safetensors")));
  EXPECT_EQ(FileChecksum("123456789"), "crc32c:e3069283");  // the CRC-32C check value

  std::string flipped = weights;
  flipped[flipped.size() / 2 + 40] ^= 0x04;
  Overwrite(cp / "weights.safetensors", flipped);
  PolicyNet net(6, std::vector<int>{16}, 4);
  torch::optim::Adam opt(net->parameters());
  const auto before = net->parameters()[0].detach().clone();
  auto loaded = LoadLatestCheckpoint(dir.string(), "job-1", net, opt);
  ASSERT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << loaded.status();
  const std::string message(loaded.status().message());
  EXPECT_NE(message.find((cp / "weights.safetensors").string()), std::string::npos) << message;
  EXPECT_NE(message.find("its checksum is " + FileChecksum(flipped)), std::string::npos) << message;
  EXPECT_NE(message.find("records " + FileChecksum(weights)), std::string::npos) << message;
  EXPECT_TRUE(torch::equal(net->parameters()[0], before));  // nothing was loaded

  // Without checksums (an older checkpoint), the same bytes are trusted.
  Overwrite(cp / "weights.safetensors", weights);
  manifest.erase("checksums");
  Overwrite(cp / "manifest.json", manifest.dump());
  ExpectResumesAt(dir, 5, saved[5]);
  fs::remove_all(dir);
}

TEST(Checkpoint, NothingToResumeIsNotFound) {
  PolicyNet net(6, std::vector<int>{16}, 4);
  torch::optim::Adam opt(net->parameters());
  EXPECT_EQ(LoadLatestCheckpoint("/nonexistent/rally", "j", net, opt).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadLatestCheckpoint("", "j", net, opt).status().code(), absl::StatusCode::kNotFound);
}

// Found by tests/fuzz/checkpoint_manifest_fuzz (corpus file regression-float-hidden-width): a
// float or out-of-range number where the manifest has an integer was converted unchecked
// (undefined for 1e300 into an int); it is damage, naming the field.
TEST(CheckpointManifest, NumbersThatAreNotIntegersInRangeAreDamage) {
  for (const char* json : {
           R"({"job_id": "job-1", "hidden": [1e300]})",
           R"({"job_id": "job-1", "hidden": [16, 4294967296]})",
           R"({"job_id": "job-1", "observation_size": 27.5})",
           R"({"job_id": "job-1", "num_actions": -3000000000})",
           R"({"job_id": "job-1", "learner_step": 18446744073709551615})",
           R"({"job_id": "job-1", "policy_version": 1e19})",
           R"({"job_id": "job-1", "adam_steps": {"w": 1e300}})",
           R"({"job_id": "job-1", "hidden": {"a": 1}})",
       }) {
    auto m = ParseCheckpointManifest(json, "job-1", "cp/manifest.json");
    EXPECT_EQ(m.status().code(), absl::StatusCode::kDataLoss) << json;
    EXPECT_NE(m.status().message().find("cp/manifest.json is damaged"), std::string::npos)
        << m.status();
  }
  auto m = ParseCheckpointManifest(
      R"({"job_id": "job-1", "hidden": [16, 8], "learner_step": 9007199254740993,
          "num_actions": -1, "adam_steps": {"w": 3}})",
      "job-1", "cp/manifest.json");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->state.hidden, (std::vector<int>{16, 8}));
  EXPECT_EQ(m->state.step, 9007199254740993);
  EXPECT_EQ(m->state.num_actions, -1);
  EXPECT_EQ(m->adam_steps.at("w"), 3);
  EXPECT_EQ(ParseCheckpointManifest(R"({"job_id": "job-2"})", "job-1", "m").status().code(),
            absl::StatusCode::kNotFound);
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

TEST(Checkpoint, AResumedLearnerNumbersAboveEveryVersionThatMayHaveBeenPublished) {
  // Nothing reserved (a first run, or another job's file): the checkpoint's version goes on.
  EXPECT_EQ(FirstVersionAfterRestart(0, -1), 0);
  EXPECT_EQ(FirstVersionAfterRestart(40, -1), 40);
  // Reserved through 127 before the restart: 128 on, whatever the checkpoint's version.
  EXPECT_EQ(FirstVersionAfterRestart(50, 127), 128);
  EXPECT_EQ(FirstVersionAfterRestart(0, 63), 64);
  // A reservation below the checkpoint's version (not written since) does not move it back.
  EXPECT_EQ(FirstVersionAfterRestart(200, 127), 200);
  // Reservations lost: a gap far beyond the checkpoint rather than a number used twice.
  const absl::StatusOr<int64_t> lost = absl::DataLossError("versions.json is not ...");
  EXPECT_EQ(FirstVersionAfterRestart(50, lost), 50 + kVersionsSkippedWhenReservationsAreLost);
  EXPECT_GT(kVersionsSkippedWhenReservationsAreLost, 1000 * kVersionBlock);
}

}  // namespace
}  // namespace rally
