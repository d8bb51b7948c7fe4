// Mutual TLS between real processes over loopback (common/net/tls.h): certificates made by the
// real `rally certs init`, a rally-replay serving TLS to clients with and without the right
// certificate, the loopback rule for plain text, and a whole `rally run` over mutual TLS.
#include "common/net/tls.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/net/free_port.h"
#include "common/net/server.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "rally/v1/control.grpc.pb.h"
#include "tests/integration/process.h"

namespace rally {
namespace {

using namespace std::chrono_literals;
using grpc::health::v1::HealthCheckResponse;
using testing::ReadFile;

// One `rally certs init` directory, made by the CLI.
std::string MakeCerts(const std::string& dir) {
  const int code = testing::RunToCompletion("rally", {"certs", "init", dir}, dir + ".log", 60s);
  EXPECT_EQ(code, 0) << ReadFile(dir + ".log");
  return dir;
}

TlsFiles Files(const std::string& dir, const std::string& component) {
  return {dir + "/" + component + ".crt", dir + "/" + component + ".key", dir + "/ca.crt"};
}

std::shared_ptr<grpc::ChannelCredentials> RallyCredentials(const std::string& dir,
                                                           const std::string& component) {
  auto security = TransportSecurity::MutualTls(Files(dir, component));
  EXPECT_TRUE(security.ok()) << security.status();
  return security.ok() ? security->ChannelCredentials() : nullptr;
}

// gRPC's own SSL credentials (independent of rally's): the CA of `ca_dir` as root, and the client
// certificate of `cert_dir` if it is not empty.
std::shared_ptr<grpc::ChannelCredentials> SslCredentials(const std::string& ca_dir,
                                                         const std::string& cert_dir) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ReadFile(ca_dir + "/ca.crt");
  if (!cert_dir.empty()) {
    options.pem_private_key = ReadFile(cert_dir + "/client.key");
    options.pem_cert_chain = ReadFile(cert_dir + "/client.crt");
  }
  return grpc::SslCredentials(options);
}

// A health check of the whole server over a connection of its own.
grpc::Status Check(const std::string& address,
                   const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                   HealthCheckResponse* response) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto stub =
      grpc::health::v1::Health::NewStub(grpc::CreateCustomChannel(address, credentials, args));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(5s));
  return stub->Check(&ctx, grpc::health::v1::HealthCheckRequest(), response);
}

bool Serving(const std::string& address,
             const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  HealthCheckResponse response;
  return Check(address, credentials, &response).ok() &&
         response.status() == HealthCheckResponse::SERVING;
}

bool BecomesServing(const std::string& address,
                    const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                    std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (Serving(address, credentials)) return true;
    std::this_thread::sleep_for(200ms);
  }
  return false;
}

// Two CAs: `a_` is the cluster's, `b_` a stranger's.
class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string(testing::TempDir("tls"));
    a_ = new std::string(MakeCerts(*root_ + "/a"));
    b_ = new std::string(MakeCerts(*root_ + "/b"));
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(*root_); }

  // A rally-replay (control unreachable, which its health does not depend on) with `args`.
  std::unique_ptr<testing::Process> StartReplay(int port, std::vector<std::string> args,
                                                const std::string& log) {
    args.insert(args.end(), {absl::StrCat("--port=", port), "--metrics_port=0",
                             "--control=127.0.0.1:1", "--name=replay-tls"});
    return std::make_unique<testing::Process>("rally-replay", args, log);
  }

  static std::string* root_;
  static std::string* a_;
  static std::string* b_;
};
std::string* Tls::root_ = nullptr;
std::string* Tls::a_ = nullptr;
std::string* Tls::b_ = nullptr;

std::vector<std::string> TlsFlags(const std::string& dir, const std::string& component) {
  const TlsFiles f = Files(dir, component);
  return {"--tls_cert=" + f.cert, "--tls_key=" + f.key, "--tls_ca=" + f.ca};
}

TEST_F(Tls, AServerAcceptsOnlyClientsWithACertificateOfItsCa) {
  const int port = FreePort();
  ASSERT_GT(port, 0);
  const std::string address = absl::StrCat("127.0.0.1:", port);
  const std::string log = *root_ + "/replay.log";
  auto replay = StartReplay(port, TlsFlags(*a_, "replay"), log);
  const auto client = RallyCredentials(*a_, "client");
  ASSERT_TRUE(BecomesServing(address, client, 60s)) << ReadFile(log);
  EXPECT_NE(ReadFile(log).find("\"transport\":\"mutual TLS as replay\""), std::string::npos);

  const std::vector<std::pair<std::string, std::shared_ptr<grpc::ChannelCredentials>>> refused = {
      {"a plain-text client", grpc::InsecureChannelCredentials()},
      {"a client certificate of another CA", SslCredentials(*a_, *b_)},
      {"a client without a certificate", SslCredentials(*a_, "")},
      // Rally's client checks the server: a client of the other cluster refuses this server.
      {"a client of another CA that checks the server", RallyCredentials(*b_, "client")},
  };
  for (const auto& [what, credentials] : refused) {
    HealthCheckResponse response;
    grpc::Status s = Check(address, credentials, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << what << ": " << s.error_message();
    // The server keeps serving the clients it should.
    EXPECT_TRUE(Serving(address, client)) << "after " << what;
  }
  // Any component's certificate of the CA will do.
  EXPECT_TRUE(Serving(address, RallyCredentials(*a_, "actor")));
  // gRPC's standard SSL client, which also checks the server's name (127.0.0.1 is in it).
  EXPECT_TRUE(Serving(address, SslCredentials(*a_, *a_)));
  // Setting up TLS started no thread before the process's signal handling: SIGTERM stops it
  // cleanly.
  EXPECT_EQ(replay->Stop(), 0) << ReadFile(log);
}

TEST_F(Tls, TheEnvironmentNamesTheFilesWhenFlagsDoNot) {
  const int port = FreePort();
  ASSERT_GT(port, 0);
  const std::string address = absl::StrCat("127.0.0.1:", port);
  const std::string log = *root_ + "/replay-env.log";
  const TlsFiles f = Files(*a_, "replay");
  setenv("RALLY_TLS_CERT", f.cert.c_str(), 1);
  setenv("RALLY_TLS_KEY", f.key.c_str(), 1);
  setenv("RALLY_TLS_CA", f.ca.c_str(), 1);
  auto replay = StartReplay(port, {}, log);  // the child inherits the environment
  unsetenv("RALLY_TLS_CERT");
  unsetenv("RALLY_TLS_KEY");
  unsetenv("RALLY_TLS_CA");
  EXPECT_TRUE(BecomesServing(address, RallyCredentials(*a_, "client"), 60s)) << ReadFile(log);
  EXPECT_FALSE(Serving(address, grpc::InsecureChannelCredentials()));
}

// A JobService whose GetJob answers with the caller's component as the job id.
class PeerEcho : public v1::JobService::Service {
 public:
  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest*,
                      v1::Job* job) override {
    job->set_id(PeerComponent(*context));
    return grpc::Status::OK;
  }
};

std::string EchoedPeer(const std::string& address,
                       const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto stub = v1::JobService::NewStub(grpc::CreateCustomChannel(address, credentials, args));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(5s));
  v1::Job job;
  grpc::Status s = stub->GetJob(&ctx, v1::GetJobRequest(), &job);
  return s.ok() ? job.id() : "error: " + s.error_message();
}

TEST_F(Tls, PeerComponentIsTheCommonNameOfTheCallersCertificate) {
  const TransportSecurity saved = CurrentTransportSecurity();
  PeerEcho echo;
  {
    auto control = TransportSecurity::MutualTls(Files(*a_, "control"));
    ASSERT_TRUE(control.ok()) << control.status();
    SetTransportSecurity(*control);
    auto server = GrpcServer::Start("127.0.0.1", 0, {&echo});
    ASSERT_TRUE(server.ok()) << server.status();
    EXPECT_EQ(EchoedPeer((*server)->address(), RallyCredentials(*a_, "actor")), "actor");
    EXPECT_EQ(EchoedPeer((*server)->address(), RallyCredentials(*a_, "learner")), "learner");
    // MakeChannel speaks the process's TLS, as control.
    EXPECT_EQ(EchoedPeer((*server)->address(), CurrentTransportSecurity().ChannelCredentials()),
              "control");
  }
  SetTransportSecurity(TransportSecurity::PlainText());
  auto plain = GrpcServer::Start("127.0.0.1", 0, {&echo});
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(EchoedPeer((*plain)->address(), grpc::InsecureChannelCredentials()), "");
  SetTransportSecurity(saved);
}

// Every process refuses to listen beyond loopback in plain text, before it does anything else.
TEST_F(Tls, PlainTextBeyondLoopbackIsRefusedUnlessInsecure) {
  for (const std::string binary :
       {"rally-control", "rally-replay", "rally-learner", "rally-actor"}) {
    const std::string log = *root_ + "/" + binary + "-0.0.0.0.log";
    std::vector<std::string> args = {"--host=0.0.0.0", "--port=0", "--metrics_port=0"};
    args.push_back(binary == "rally-control" ? "--db=" + *root_ + "/refused.sqlite"
                                             : "--control=127.0.0.1:1");
    const int code = testing::RunToCompletion(binary, args, log, 60s);
    EXPECT_EQ(code, 1) << binary << ":\n" << ReadFile(log);
    EXPECT_NE(ReadFile(log).find("refusing to listen on 0.0.0.0 in plain text"), std::string::npos)
        << binary << ":\n"
        << ReadFile(log);
    EXPECT_NE(ReadFile(log).find("--insecure"), std::string::npos) << binary;
  }
  EXPECT_FALSE(std::filesystem::exists(*root_ + "/refused.sqlite"));  // control opened nothing

  // --insecure: plain text on every address.
  const int port = FreePort();
  ASSERT_GT(port, 0);
  const std::string log = *root_ + "/replay-insecure.log";
  auto insecure = StartReplay(port, {"--host=0.0.0.0", "--insecure"}, log);
  EXPECT_TRUE(
      BecomesServing(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials(), 60s))
      << ReadFile(log);
  insecure->Stop();

  // With TLS, any address.
  const int tls_port = FreePort();
  ASSERT_GT(tls_port, 0);
  std::vector<std::string> args = TlsFlags(*a_, "replay");
  args.push_back("--host=0.0.0.0");
  auto tls = StartReplay(tls_port, args, *root_ + "/replay-0.0.0.0-tls.log");
  EXPECT_TRUE(
      BecomesServing(absl::StrCat("127.0.0.1:", tls_port), RallyCredentials(*a_, "client"), 60s))
      << ReadFile(*root_ + "/replay-0.0.0.0-tls.log");
}

TEST_F(Tls, UnusableFilesStopAProcessAtStartNamingFlagAndFile) {
  std::vector<std::string> args = TlsFlags(*a_, "replay");
  args[1] = "--tls_key=" + *a_ + "/missing.key";
  args.insert(args.end(), {"--port=0", "--metrics_port=0", "--control=127.0.0.1:1"});
  const std::string log = *root_ + "/replay-missing-key.log";
  EXPECT_EQ(testing::RunToCompletion("rally-replay", args, log, 60s), 1) << ReadFile(log);
  EXPECT_NE(ReadFile(log).find("--tls_key " + *a_ + "/missing.key: cannot read it"),
            std::string::npos)
      << ReadFile(log);

  // A certificate of another CA.
  args = TlsFlags(*b_, "control");
  args.back() = "--tls_ca=" + *a_ + "/ca.crt";
  args.insert(args.end(), {"--port=0", "--db=" + *root_ + "/bad-ca.sqlite"});
  const std::string control_log = *root_ + "/control-bad-ca.log";
  EXPECT_EQ(testing::RunToCompletion("rally-control", args, control_log, 60s), 1)
      << ReadFile(control_log);
  EXPECT_NE(ReadFile(control_log).find("is not a valid certificate of --tls_ca " + *a_ + "/ca.crt"),
            std::string::npos)
      << ReadFile(control_log);

  // The CLI's --certs names its files.
  const std::string cli_log = *root_ + "/cli-missing-certs.log";
  EXPECT_EQ(testing::RunToCompletion(
                "rally", {"list", "--control=127.0.0.1:1", "--certs=" + *root_ + "/nowhere"},
                cli_log, 60s),
            1);
  EXPECT_NE(ReadFile(cli_log).find("--tls_cert " + *root_ + "/nowhere/client.crt: cannot read it"),
            std::string::npos)
      << ReadFile(cli_log);
}

// A small job through every process of `rally run`, each with its own component's certificate.
TEST_F(Tls, RallyRunTrainsAJobOverMutualTls) {
  const std::string dir = *root_ + "/run";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/job.yaml") << R"(name: tls
seed: 3
game:
  name: tictactoe
policy:
  hidden: [16]
actors:
  count: 1
  envs_per_actor: 8
  threads: 1
  max_batch: 8
  batch_timeout_us: 500
replay:
  tables:
    - name: selfplay
      max_size: 64
learner:
  batch_episodes: 8
  learning_rate: 0.001
  publish_every_steps: 2
  checkpoint_every_steps: 5
evaluation:
  games: 10
  every_seconds: 0.5
  opponents: [random]
stop:
  max_learner_steps: 10
  max_wall_seconds: 120
)";
  const std::string workdir = dir + "/work";
  const int code =
      testing::RunToCompletion("rally",
                               {"run", dir + "/job.yaml", "--certs=" + *a_, "--workdir=" + workdir,
                                "--quiet", "--summary-json=" + dir + "/summary.json"},
                               dir + "/rally.out", 240s);
  ASSERT_EQ(code, 0) << ReadFile(dir + "/rally.out");
  auto summary = nlohmann::json::parse(ReadFile(dir + "/summary.json"));
  EXPECT_EQ(summary["state"], "SUCCEEDED") << summary.dump(2);
  EXPECT_EQ(summary["learner_steps"].get<int64_t>(), 10);
  // The actor reached the learner's weights and the replay, the evaluator played its games.
  EXPECT_GE(summary["actor_policy_version_max"].get<int64_t>(), 1) << summary.dump(2);
  EXPECT_GE(summary["trajectories_inserted"].get<int64_t>(), 10 * 8);
  EXPECT_EQ(summary["eval"]["random"]["games"].get<int>(), 10) << summary.dump(2);
  for (const char* process : {"control", "replay", "learner", "evaluator", "actor-0"}) {
    EXPECT_NE(ReadFile(workdir + "/logs/" + process + ".log").find("\"msg\":\"stopped\""),
              std::string::npos)
        << process << " did not stop cleanly";
  }
  for (const char* server : {"control", "replay", "learner"}) {
    EXPECT_NE(ReadFile(workdir + "/logs/" + server + ".log")
                  .find(absl::StrCat("\"transport\":\"mutual TLS as ", server, "\"")),
              std::string::npos)
        << server << ":\n"
        << ReadFile(workdir + "/logs/" + server + ".log");
  }
}

}  // namespace
}  // namespace rally
