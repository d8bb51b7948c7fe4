// Per-method gRPC server metrics (common/metrics/grpc_server_metrics.h), recorded on a real
// loopback server that GrpcServer::Start builds, as every rally process's servers are.
#include "common/metrics/grpc_server_metrics.h"

#include <gtest/gtest.h>

#include "common/metrics/process_metrics.h"
#include "common/net/server.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "rally/v1/replay.grpc.pb.h"

namespace rally {
namespace {

// The value of the series `name`{labels} in the process registry (a counter's value, a
// histogram's count); 0 when it is absent.
double Series(const std::string& name, const std::map<std::string, std::string>& labels) {
  for (const auto& family : ProcessRegistry()->Collect()) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      std::map<std::string, std::string> have;
      for (const auto& l : metric.label) have[l.name] = l.value;
      if (have != labels) continue;
      return family.type == prometheus::MetricType::Histogram
                 ? static_cast<double>(metric.histogram.sample_count)
                 : metric.counter.value;
    }
  }
  return 0;
}

TEST(GrpcServerMetrics, MethodLabelsComeFromTheDescriptorPool) {
  EXPECT_EQ(GrpcMethodLabels("/rally.v1.ReplayService/Insert"),
            std::make_pair(std::string("rally.v1.ReplayService"), std::string("Insert")));
  EXPECT_EQ(GrpcMethodLabels("/grpc.health.v1.Health/Check"),
            std::make_pair(std::string("grpc.health.v1.Health"), std::string("Check")));
  const auto unknown = std::make_pair(std::string("unknown"), std::string("unknown"));
  EXPECT_EQ(GrpcMethodLabels("/rally.v1.ReplayService/NoSuchMethod"), unknown);
  EXPECT_EQ(GrpcMethodLabels("/rally.v1.NoSuchService/Insert"), unknown);
  EXPECT_EQ(GrpcMethodLabels("/rally.v1.ReplayService.Insert"), unknown);
  EXPECT_EQ(GrpcMethodLabels("no slash"), unknown);
  EXPECT_EQ(GrpcMethodLabels(""), unknown);
}

TEST(GrpcServerMetrics, CodeNames) {
  EXPECT_EQ(GrpcCodeName(0), "OK");
  EXPECT_EQ(GrpcCodeName(4), "DEADLINE_EXCEEDED");
  EXPECT_EQ(GrpcCodeName(12), "UNIMPLEMENTED");
  EXPECT_EQ(GrpcCodeName(16), "UNAUTHENTICATED");
  EXPECT_EQ(GrpcCodeName(17), "UNKNOWN");
  EXPECT_EQ(GrpcCodeName(-1), "UNKNOWN");
}

TEST(GrpcServerMetrics, EveryCallIsCountedByMethodAndCode) {
  const std::map<std::string, std::string> check = {
      {"grpc_service", "grpc.health.v1.Health"}, {"grpc_method", "Check"}, {"grpc_type", "unary"}};
  auto with_code = [](std::map<std::string, std::string> labels, const std::string& code) {
    labels["grpc_code"] = code;
    return labels;
  };
  const double started = Series("grpc_server_started_total", check);
  const double ok = Series("grpc_server_handled_total", with_code(check, "OK"));
  const double not_found = Series("grpc_server_handled_total", with_code(check, "NOT_FOUND"));
  const double timed = Series("grpc_server_handling_seconds", check);

  const std::map<std::string, std::string> info = {
      {"grpc_service", "rally.v1.ReplayService"}, {"grpc_method", "Info"}, {"grpc_type", "unary"}};
  const double unimplemented =
      Series("grpc_server_handled_total", with_code(info, "UNIMPLEMENTED"));

  // The generated base class answers UNIMPLEMENTED for every method.
  v1::ReplayService::Service replay;
  auto server = GrpcServer::Start("127.0.0.1", 0, {&replay});
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = grpc::health::v1::Health::NewStub(MakeChannel((*server)->address()));
  for (int i = 0; i < 3; ++i) {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(stub->Check(&ctx, req, &resp).ok());
  }
  {
    // The health service answers NOT_FOUND for a service it does not know.
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    req.set_service("no.such.Service");
    grpc::health::v1::HealthCheckResponse resp;
    EXPECT_EQ(stub->Check(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    auto replay_stub = v1::ReplayService::NewStub(MakeChannel((*server)->address()));
    grpc::ClientContext ctx;
    v1::InfoRequest req;
    v1::InfoResponse resp;
    EXPECT_EQ(replay_stub->Info(&ctx, req, &resp).error_code(), grpc::StatusCode::UNIMPLEMENTED);
  }
  (*server)->Shutdown();  // every call has finished and been recorded

  EXPECT_EQ(Series("grpc_server_started_total", check), started + 4);
  EXPECT_EQ(Series("grpc_server_handled_total", with_code(check, "OK")), ok + 3);
  EXPECT_EQ(Series("grpc_server_handled_total", with_code(check, "NOT_FOUND")), not_found + 1);
  EXPECT_EQ(Series("grpc_server_handling_seconds", check), timed + 4);
  EXPECT_EQ(Series("grpc_server_handled_total", with_code(info, "UNIMPLEMENTED")),
            unimplemented + 1);
}

TEST(GrpcServerMetrics, AStreamIsTimedUntilItsStatus) {
  const std::map<std::string, std::string> watch = {{"grpc_service", "grpc.health.v1.Health"},
                                                    {"grpc_method", "Watch"},
                                                    {"grpc_type", "server_stream"}};
  const double started = Series("grpc_server_started_total", watch);
  const double timed = Series("grpc_server_handling_seconds", watch);
  v1::ReplayService::Service replay;
  auto server = GrpcServer::Start("127.0.0.1", 0, {&replay});
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = grpc::health::v1::Health::NewStub(MakeChannel((*server)->address()));
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  auto stream = stub->Watch(&ctx, req);
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  EXPECT_EQ(Series("grpc_server_started_total", watch), started + 1);
  EXPECT_EQ(Series("grpc_server_handling_seconds", watch), timed);  // still open
  ctx.TryCancel();
  while (stream->Read(&resp)) {
  }
  stream->Finish();
  (*server)->Shutdown();
  EXPECT_EQ(Series("grpc_server_handling_seconds", watch), timed + 1);
}

}  // namespace
}  // namespace rally
