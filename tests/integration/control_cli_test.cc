// The rally CLI's job commands against a real rally-control, and --help of every binary.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "tests/integration/control_cluster.h"

namespace rally {
namespace {

using namespace std::chrono_literals;

// Runs `rally args...`; its output (stdout and stderr) and exit code.
struct Cli {
  explicit Cli(std::string dir) : dir(std::move(dir)) {}
  int Run(const std::vector<std::string>& args, std::string* out) {
    const std::string log = dir + "/cli-" + std::to_string(runs++) + ".out";
    const int code = testing::RunToCompletion("rally", args, log, 30s);
    *out = testing::ReadFile(log);
    return code;
  }
  std::string dir;
  int runs = 0;
};

std::vector<nlohmann::json> JsonLines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    out.push_back(nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false));
  }
  return out;
}

TEST(ControlCli, JobCommandsPrintCanonicalJsonAndTables) {
  const std::string dir = testing::TempDir("control-cli");
  testing::ControlCluster cluster(dir);
  ASSERT_NO_FATAL_FAILURE(cluster.StartControl());
  const std::string control = "--control=" + cluster.control_address();
  const std::string spec = dir + "/job.yaml";
  std::ofstream(spec) << testing::SmallJobSpec("cli", 10);
  Cli cli(dir);
  std::string out;

  ASSERT_EQ(cli.Run({"submit", spec, control, "--output=json", "--request_id=r1"}, &out), 0) << out;
  auto submitted = JsonLines(out);
  ASSERT_EQ(submitted.size(), 1u) << out;
  const std::string id = submitted[0]["id"];
  EXPECT_EQ(submitted[0]["state"], "JOB_STATE_STARTING");  // nothing else runs
  EXPECT_EQ(submitted[0]["requestId"], "r1");
  ASSERT_EQ(cli.Run({"submit", spec, control, "--request_id=r1"}, &out), 0) << out;
  EXPECT_EQ(out, id + "\n");  // the same job

  ASSERT_EQ(cli.Run({"list", control, "--state=starting", "--output=json"}, &out), 0) << out;
  auto listed = JsonLines(out);
  ASSERT_EQ(listed.size(), 1u) << out;
  ASSERT_EQ(listed[0]["jobs"].size(), 1u) << out;
  EXPECT_EQ(listed[0]["jobs"][0]["id"], id);

  ASSERT_EQ(cli.Run({"stop", id, control, "--reason=from the cli", "--output=json"}, &out), 0);
  EXPECT_EQ(JsonLines(out).at(0)["state"], "JOB_STATE_CANCELLED") << out;
  EXPECT_EQ(JsonLines(out).at(0)["reason"], "from the cli") << out;

  // A table: the STATE column starts at the same offset in the header and in the row.
  ASSERT_EQ(cli.Run({"status", id, control}, &out), 0) << out;
  std::istringstream lines(out);
  std::string header, row;
  std::getline(lines, header);
  std::getline(lines, row);
  EXPECT_EQ(header.rfind("ID", 0), 0u) << out;
  ASSERT_NE(header.find("STATE"), std::string::npos) << out;
  EXPECT_EQ(row.find("CANCELLED"), header.find("STATE")) << out;
  // Then the history, one transition a line, also aligned.
  std::string blank, history_header, first;
  std::getline(lines, blank);
  std::getline(lines, history_header);
  std::getline(lines, first);
  EXPECT_EQ(blank, "");
  EXPECT_EQ(first.find("PENDING"), history_header.find("STATE")) << out;
  EXPECT_EQ(first.find("waiting for the cluster"), history_header.find("REASON")) << out;

  // The job has ended: the watch stream carries the job once and ends.
  ASSERT_EQ(cli.Run({"watch", id, control, "--output=json"}, &out), 0) << out;
  auto updates = JsonLines(out);
  ASSERT_EQ(updates.size(), 1u) << out;
  EXPECT_EQ(updates[0]["job"]["state"], "JOB_STATE_CANCELLED");
  EXPECT_EQ(updates[0]["job"]["history"].size(), 3u);

  ASSERT_EQ(cli.Run({"delete", id, control, "--output=json"}, &out), 0) << out;
  EXPECT_EQ(JsonLines(out).at(0)["id"], id);
  EXPECT_EQ(cli.Run({"status", id, control}, &out), 1);
  EXPECT_EQ(out, "rally status: no job '" + id + "'\n");
  EXPECT_EQ(cli.Run({"list", control, "--state=bogus"}, &out), 2);
}

TEST(ControlCli, HelpListsEachBinarysOwnFlags) {
  const std::string dir = testing::TempDir("control-help");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"rally-control", "--data_dirs"},
      {"rally-replay", "--data_dir"},
      {"rally-learner", "--checkpoint_dir"},
      {"rally-actor", "--mode"},
      {"rally", "--output"}};
  for (const auto& [binary, flag] : cases) {
    const std::string log = dir + "/" + binary + ".out";
    testing::RunToCompletion(binary, {"--help"}, log, 30s);
    const std::string help = testing::ReadFile(log);
    EXPECT_EQ(help.find("No flags matched"), std::string::npos) << binary << "\n" << help;
    EXPECT_NE(help.find(flag + " ("), std::string::npos) << binary << "\n" << help;
  }
}

}  // namespace
}  // namespace rally
