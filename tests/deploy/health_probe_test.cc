// Each gRPC server (control, replay, learner) answers grpc.health.v1 Check for the whole server
// ("") with SERVING as soon as it listens, before it has a job or even reaches control. A service
// name nobody registered is not SERVING, so the check tells the two apart. This is why the probes
// of deploy/k8s, which cannot speak mutual TLS, may stand in for the health check with a TCP
// connect to the gRPC port (control, learners) or a listening port and a gauge (the replay).
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/net/free_port.h"
#include "tests/integration/process.h"

namespace rally::deploy {
namespace {

// Polls the health service at `address` for `service` until SERVING or `timeout`.
bool BecomesServing(const std::string& address, const std::string& service,
                    std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (rally::testing::HealthServing(address, service)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

class GrpcHealth : public ::testing::TestWithParam<std::string> {};

TEST_P(GrpcHealth, ServerAnswersTheProbesHealthCheck) {
  const std::string binary = GetParam();
  const std::string dir = rally::testing::TempDir("health-" + binary);
  const int port = FreePort();
  ASSERT_GT(port, 0);
  // Control unreachable: the probes must not depend on it.
  std::vector<std::string> args = {absl::StrCat("--port=", port), "--metrics_port=0"};
  if (binary == "rally-control") {
    args.push_back("--db=" + dir + "/control.sqlite");
  } else {
    args.push_back("--control=127.0.0.1:1");
  }
  rally::testing::Process process(binary, args, dir + "/log");
  const std::string address = absl::StrCat("127.0.0.1:", port);
  EXPECT_TRUE(BecomesServing(address, "", std::chrono::seconds(60)))
      << binary << " never answered SERVING:\n"
      << rally::testing::ReadFile(dir + "/log");
  EXPECT_FALSE(rally::testing::HealthServing(address, "no.such.Service"));
  process.Stop();
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Deploy, GrpcHealth,
                         ::testing::Values("rally-control", "rally-replay", "rally-learner"),
                         [](const auto& info) {
                           std::string name = info.param.substr(6);  // without "rally-"
                           name[0] = static_cast<char>(std::toupper(name[0]));
                           return name;
                         });

}  // namespace
}  // namespace rally::deploy
