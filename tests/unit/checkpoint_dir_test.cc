#include "common/checkpoint/checkpoint_dir.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "common/util/durable_file.h"

namespace rally {
namespace {

namespace fs = std::filesystem;

class CheckpointDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    run_ = fs::temp_directory_path() / ("rally-checkpoint-dir-" + std::to_string(getpid()));
    fs::remove_all(run_);
    fs::create_directories(run_ / "checkpoints" / "step-10");
    fs::create_directories(run_ / "checkpoints" / "step-20");
    ASSERT_TRUE(
        WriteFileSynced(run_ / "checkpoints" / "step-10" / "manifest.json", "{\"step\": 10}").ok());
    ASSERT_TRUE(
        WriteFileSynced(run_ / "checkpoints" / "step-20" / "manifest.json", "{\"step\": 20}").ok());
  }
  void TearDown() override { fs::remove_all(run_); }
  fs::path run_;
};

TEST_F(CheckpointDirTest, LatestNamesTheNewestCheckpointWithoutItsNewline) {
  const fs::path cps = run_ / "checkpoints";
  EXPECT_EQ(ReadLatestCheckpointName(cps).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteFileSynced(cps / "latest", "step-20\n").ok());
  EXPECT_EQ(ReadLatestCheckpointName(cps).value_or(""), "step-20");
  ASSERT_TRUE(WriteFileSynced(cps / "latest", " \n").ok());
  absl::StatusOr<std::string> empty = ReadLatestCheckpointName(cps);
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(empty.status().message(), (cps / "latest").string() + ": empty (names no checkpoint)");
}

TEST_F(CheckpointDirTest, ResolvesARunACheckpointsDirectoryOrOneCheckpoint) {
  const fs::path cps = run_ / "checkpoints";
  // Nothing names a newest checkpoint yet: not found, saying what was expected.
  absl::StatusOr<std::string> none = ResolveCheckpoint(run_.string());
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("no checkpoint here"), std::string::npos);

  ASSERT_TRUE(WriteFileSynced(cps / "latest", "step-10\n").ok());
  EXPECT_EQ(ResolveCheckpoint(run_.string()).value_or(""), (cps / "step-10").string());
  EXPECT_EQ(ResolveCheckpoint(cps.string()).value_or(""), (cps / "step-10").string());
  EXPECT_EQ(ResolveCheckpoint((cps / "step-20").string()).value_or(""), (cps / "step-20").string());
  // `latest` naming a directory without a manifest names no checkpoint.
  ASSERT_TRUE(WriteFileSynced(cps / "latest", "step-30\n").ok());
  EXPECT_EQ(ResolveCheckpoint(run_.string()).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(CheckpointDirTest, ReadsTheManifestAndCallsAnythingButAnObjectDamage) {
  const fs::path cp = run_ / "checkpoints" / "step-10";
  absl::StatusOr<nlohmann::json> manifest = ReadCheckpointManifestJson(cp);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->value("step", 0), 10);
  for (const char* bad : {"{\"step\": 1", "[1, 2]", ""}) {
    ASSERT_TRUE(WriteFileSynced(cp / "manifest.json", bad).ok());
    absl::StatusOr<nlohmann::json> damaged = ReadCheckpointManifestJson(cp);
    EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss) << bad;
    EXPECT_EQ(damaged.status().message(), (cp / "manifest.json").string() + ": not a JSON object");
  }
  EXPECT_EQ(ReadCheckpointManifestJson(run_).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace rally
