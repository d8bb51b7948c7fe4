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

TEST_F(DurableFileTest, ReadsAFileWholeAndNamesAMissingOrUnreadableOne) {
  std::string bytes(200000, '\0');  // larger than one read, with NULs and every byte value
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7919 % 256);
  ASSERT_TRUE(WriteFileSynced(dir_ / "blob", bytes).ok());
  absl::StatusOr<std::string> read = ReadFileBytes(dir_ / "blob");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, bytes);
  ASSERT_TRUE(WriteFileSynced(dir_ / "empty", "").ok());
  EXPECT_EQ(ReadFileBytes(dir_ / "empty").value_or("x"), "");

  absl::StatusOr<std::string> missing = ReadFileBytes(dir_ / "missing");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), (dir_ / "missing").string() + ": no such file");
  // A directory is no file to read.
  EXPECT_EQ(ReadFileBytes(dir_).status().code(), absl::StatusCode::kNotFound);
  if (geteuid() != 0) {  // root reads a file whatever its mode
    fs::permissions(dir_ / "blob", fs::perms::none);
    absl::StatusOr<std::string> denied = ReadFileBytes(dir_ / "blob");
    EXPECT_EQ(denied.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_EQ(denied.status().message(),
              (dir_ / "blob").string() + ": cannot be opened: Permission denied");
  }
}

}  // namespace
}  // namespace rally
