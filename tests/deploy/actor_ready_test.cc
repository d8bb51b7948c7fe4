// The probe scripts of deploy/k8s/base, which read ports on loopback with bash alone.
// actor-ready.sh, the actors' readiness: ready while the episode counter on the metrics endpoint
// rises, not ready at its first reading, when the counter stands still for longer than the window,
// or when the counter is missing; and it reads the real rally-actor's endpoint (the counter's name
// is the one the actor exports).
// server-healthy.sh, the replay's probes under mutual TLS: healthy while its gRPC port accepts
// connections and the gauges named are 0, unhealthy when the port is closed or a gauge is missing
// or not 0; and it reads the real rally-replay (the gauge's name is the one the replay exports).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/net/free_port.h"
#include "tests/deploy/manifests.h"
#include "tests/integration/process.h"

namespace rally::deploy {
namespace {

// An HTTP server on loopback that answers every request with `body` (settable), like a metrics
// endpoint.
class FakeMetricsEndpoint {
 public:
  FakeMetricsEndpoint() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), len);
    listen(fd_, 8);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeMetricsEndpoint() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }

  int port() const { return port_; }
  void SetBody(const std::string& body) {
    std::lock_guard<std::mutex> lock(mu_);
    body_ = body;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const int client = accept(fd_, nullptr, nullptr);
      if (client < 0) continue;
      // The whole request, which may come in pieces, before the answer.
      std::string request;
      char buffer[1024];
      ssize_t n;
      while (request.find("\r\n\r\n") == std::string::npos &&
             (n = read(client, buffer, sizeof(buffer))) > 0) {
        request.append(buffer, n);
      }
      std::string response = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n";
      {
        std::lock_guard<std::mutex> lock(mu_);
        response += body_;
      }
      (void)!write(client, response.data(), response.size());
      close(client);
    }
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::string body_;
  std::thread thread_;
};

class ActorReadiness : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveProgram("bash")) GTEST_SKIP() << "the probe needs bash, which is not installed";
    state_ =
        (std::filesystem::temp_directory_path() / absl::StrCat("actor-ready-", getpid())).string();
    std::filesystem::remove(state_);
  }
  void TearDown() override { std::filesystem::remove(state_); }

  // Runs the probe once; its exit code (0: ready) and output.
  CommandResult Probe(int port, int window_s) {
    return RunCommand(absl::StrCat("bash ", SourcePath("deploy/k8s/base/actor-ready.sh"), " ", port,
                                   " rally_actor_episodes_total ", window_s, " ", state_));
  }

  std::string state_;
};

TEST_F(ActorReadiness, ReadyWhileTheEpisodeCounterRises) {
  FakeMetricsEndpoint endpoint;
  endpoint.SetBody("# TYPE rally_actor_episodes_total counter\nrally_actor_episodes_total 0\n");
  EXPECT_EQ(Probe(endpoint.port(), 60).exit_code, 1) << "the first reading is only a baseline";
  endpoint.SetBody("rally_actor_episodes_total 128\n");
  EXPECT_EQ(Probe(endpoint.port(), 60).exit_code, 0);
  // Unchanged, but changed within the window: still ready.
  EXPECT_EQ(Probe(endpoint.port(), 60).exit_code, 0);
}

TEST_F(ActorReadiness, NotReadyWhenTheCounterStandsStillLongerThanTheWindow) {
  FakeMetricsEndpoint endpoint;
  endpoint.SetBody("rally_actor_episodes_total 5\n");
  Probe(endpoint.port(), 1);
  endpoint.SetBody("rally_actor_episodes_total 6\n");
  ASSERT_EQ(Probe(endpoint.port(), 1).exit_code, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  const CommandResult stalled = Probe(endpoint.port(), 1);
  EXPECT_EQ(stalled.exit_code, 1);
  EXPECT_NE(stalled.output.find("not playing"), std::string::npos) << stalled.output;
}

TEST_F(ActorReadiness, NotReadyWithoutTheCounterOrTheEndpoint) {
  FakeMetricsEndpoint endpoint;
  endpoint.SetBody("rally_actor_episodes_by_opponent_total{opponent_kind=\"latest\"} 3\n");
  EXPECT_EQ(Probe(endpoint.port(), 60).exit_code, 1);
  int closed = 0;
  {
    FakeMetricsEndpoint gone;
    closed = gone.port();
  }
  EXPECT_EQ(Probe(closed, 60).exit_code, 1);
}

TEST_F(ActorReadiness, ReadsTheRealActorsEndpoint) {
  // An actor with no control to talk to serves its metrics but plays nothing.
  const std::string log = (std::filesystem::temp_directory_path() /
                           absl::StrCat("actor-ready-actor-", getpid(), ".log"))
                              .string();
  rally::testing::Process actor("rally-actor", {"--metrics_port=0", "--control=127.0.0.1:1"}, log);
  const std::string metrics =
      rally::testing::WaitForLogField(log, "started", "metrics", std::chrono::seconds(30));
  ASSERT_FALSE(metrics.empty()) << rally::testing::ReadFile(log);
  const int port = std::stoi(metrics.substr(metrics.rfind(':') + 1));
  const CommandResult first = Probe(port, 0);
  EXPECT_EQ(first.exit_code, 1);
  EXPECT_NE(first.output.find("not playing: rally_actor_episodes_total is 0"), std::string::npos)
      << first.output;
  actor.Stop();
  std::filesystem::remove(log);
}

class ServerHealth : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveProgram("bash")) GTEST_SKIP() << "the probe needs bash, which is not installed";
  }

  // Runs the probe once; its exit code (0: healthy) and output.
  static CommandResult Probe(int grpc_port, int metrics_port) {
    return RunCommand(absl::StrCat("bash ", SourcePath("deploy/k8s/base/server-healthy.sh"), " ",
                                   grpc_port, " ", metrics_port, " rally_replay_wal_failing"));
  }
};

TEST_F(ServerHealth, HealthyWhileTheGrpcPortListensAndTheGaugeIsZero) {
  FakeMetricsEndpoint grpc;  // only accepts connections, as far as the probe is concerned
  FakeMetricsEndpoint metrics;
  metrics.SetBody("# TYPE rally_replay_wal_failing gauge\nrally_replay_wal_failing 0\n");
  const CommandResult healthy = Probe(grpc.port(), metrics.port());
  EXPECT_EQ(healthy.exit_code, 0) << healthy.output;
  metrics.SetBody("rally_replay_wal_failing 1\n");
  const CommandResult failing = Probe(grpc.port(), metrics.port());
  EXPECT_EQ(failing.exit_code, 1);
  EXPECT_NE(failing.output.find("rally_replay_wal_failing is 1"), std::string::npos)
      << failing.output;
}

TEST_F(ServerHealth, UnhealthyWithoutTheGrpcListenerOrTheGauge) {
  FakeMetricsEndpoint metrics;
  metrics.SetBody("rally_replay_wal_failing 0\n");
  int closed = 0;
  {
    FakeMetricsEndpoint gone;
    closed = gone.port();
  }
  const CommandResult no_listener = Probe(closed, metrics.port());
  EXPECT_EQ(no_listener.exit_code, 1);
  EXPECT_NE(no_listener.output.find("nothing listens on gRPC port"), std::string::npos)
      << no_listener.output;
  FakeMetricsEndpoint grpc;
  metrics.SetBody("rally_replay_wal_bytes_written 0\n");
  EXPECT_EQ(Probe(grpc.port(), metrics.port()).exit_code, 1);
  EXPECT_EQ(Probe(grpc.port(), closed).exit_code, 1);
}

TEST_F(ServerHealth, ReadsTheRealReplay) {
  const std::string dir = rally::testing::TempDir("server-healthy-replay");
  const int port = FreePort();
  ASSERT_GT(port, 0);
  rally::testing::Process replay("rally-replay",
                                 {absl::StrCat("--port=", port), "--metrics_port=0",
                                  "--control=127.0.0.1:1", "--data_dir=" + dir + "/data"},
                                 dir + "/log");
  const std::string metrics =
      rally::testing::WaitForLogField(dir + "/log", "serving", "metrics", std::chrono::seconds(60));
  ASSERT_FALSE(metrics.empty()) << rally::testing::ReadFile(dir + "/log");
  const int metrics_port = std::stoi(metrics.substr(metrics.rfind(':') + 1));
  const CommandResult healthy = Probe(port, metrics_port);
  EXPECT_EQ(healthy.exit_code, 0) << healthy.output;
  replay.Stop();
  EXPECT_EQ(Probe(port, metrics_port).exit_code, 1) << "a stopped replay must not look healthy";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace rally::deploy
