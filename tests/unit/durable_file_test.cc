#include "common/util/durable_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace rally {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class DurableFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rally-durable-file-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(DurableFileTest, WritesTruncatesAndReplacesWithoutLeavingATemporaryFile) {
  ASSERT_TRUE(WriteFileSynced(dir_ / "a", std::string(10000, 'x')).ok());
  EXPECT_EQ(ReadAll(dir_ / "a"), std::string(10000, 'x'));
  ASSERT_TRUE(WriteFileSynced(dir_ / "a", "short").ok());  // truncated, not overwritten in place
  EXPECT_EQ(ReadAll(dir_ / "a"), "short");
  ASSERT_TRUE(ReplaceFileDurably(dir_ / "a", "replaced\n").ok());
  EXPECT_EQ(ReadAll(dir_ / "a"), "replaced\n");
  EXPECT_FALSE(fs::exists(dir_ / "a.tmp"));
  ASSERT_TRUE(ReplaceFileDurably(dir_ / "new", "").ok());  // a new, empty file
  EXPECT_TRUE(fs::exists(dir_ / "new"));
  EXPECT_EQ(fs::file_size(dir_ / "new"), 0u);
  EXPECT_TRUE(SyncDirectory(dir_).ok());
}

TEST_F(DurableFileTest, ErrorsNameThePath) {
  const fs::path missing = dir_ / "no-such-dir" / "f";
  absl::Status s = WriteFileSynced(missing, "x");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(missing.string()), std::string::npos) << s;
  s = ReplaceFileDurably(missing, "x");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no-such-dir"), std::string::npos) << s;
  s = SyncDirectory(dir_ / "no-such-dir");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no-such-dir"), std::string::npos) << s;
}

}  // namespace
}  // namespace rally
