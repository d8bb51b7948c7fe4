// LogTail, what GetJobLogs serves: the last lines of each log in name order, lines that name
// another job left out, a line still being written held back until it ends, and Follow giving
// exactly the complete lines appended since.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/control/job_logs.h"
#include "tests/integration/process.h"

namespace rally {
namespace {

std::vector<std::string> Texts(const std::vector<v1::LogLine>& lines) {
  std::vector<std::string> out;
  for (const v1::LogLine& l : lines) out.push_back(l.process() + "|" + l.line());
  return out;
}

void Append(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::app) << text;
}

TEST(ControlJobLogs, TailsEachLogAndFollowsCompleteLines) {
  const std::string dir = testing::TempDir("job-logs");
  Append(dir + "/learner.log",
         "l1\n{\"msg\":\"a\",\"job_id\":\"job-2\"}\n{\"msg\":\"b\",\"job_id\":\"job-1\"}\nl4\n");
  Append(dir + "/actor-0.log", "a1\na2\na3\npartial");
  Append(dir + "/notes.txt", "not a log\n");
  LogTail tail(dir, "job-1", "");
  auto lines = tail.Tail(3);
  ASSERT_TRUE(lines.ok()) << lines.status();
  // actor-0 before learner; the last 3 complete lines of each, job-2's line left out.
  EXPECT_EQ(Texts(*lines), (std::vector<std::string>{"actor-0|a1", "actor-0|a2", "actor-0|a3",
                                                     "learner|{\"msg\":\"b\",\"job_id\":\"job-1\"}",
                                                     "learner|l4"}));
  EXPECT_TRUE(tail.Follow().empty());
  Append(dir + "/actor-0.log", " line\na5\nnext");
  Append(dir + "/learner.log", "l5\n");
  EXPECT_EQ(Texts(tail.Follow()),
            (std::vector<std::string>{"actor-0|partial line", "actor-0|a5", "learner|l5"}));
  Append(dir + "/replay-0.log", "r1\n");  // a log that appeared is read from its start
  EXPECT_EQ(Texts(tail.Follow()), (std::vector<std::string>{"replay-0|r1"}));
}

TEST(ControlJobLogs, TailReadsBackAcrossBlocksOfALargeLog) {
  const std::string dir = testing::TempDir("job-logs-large");
  std::string text;
  for (int i = 0; i < 20000; ++i) absl::StrAppend(&text, "line ", i, "\n");  // ~228 KB
  Append(dir + "/control.log", text);
  LogTail tail(dir, "job-1", "control");
  auto lines = tail.Tail(10000);
  ASSERT_TRUE(lines.ok()) << lines.status();
  ASSERT_EQ(lines->size(), 10000u);
  EXPECT_EQ(lines->front().line(), "line 10000");
  EXPECT_EQ(lines->back().line(), "line 19999");
  auto all = LogTail(dir, "job-1", "").Tail(30000);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 20000u);
  EXPECT_EQ(all->front().line(), "line 0");
}

TEST(ControlJobLogs, MissingDirectoryOrLogIsNotFound) {
  const std::string dir = testing::TempDir("job-logs-missing");
  EXPECT_EQ(LogTail(dir + "/nope", "job-1", "").Tail(5).status().message(),
            "log directory " + dir + "/nope does not exist here");
  EXPECT_EQ(LogTail(dir, "job-1", "learner").Tail(5).status().message(),
            "no log learner.log in " + dir);
}

}  // namespace
}  // namespace rally
