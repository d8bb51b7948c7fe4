// The multi-host check (issue 21): rally-control, rally-replay, two rally-learner ranks and two
// self-play rally-actors, each on a machine of its own (a network namespace with its own address,
// tests/integration/netns.h), each started as its pod of deploy/k8s/base starts it: the
// container's command and args, and exactly the container's `env` (RALLY_CONTROL, RALLY_HOST,
// RALLY_ADVERTISE_HOST, RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, RALLY_TLS_*, ...) with the
// pod's fields filled in, read from the manifests themselves. The Service names resolve to the
// machines' addresses; the Secrets' files come from `rally certs init` and make-secrets.sh's
// layout, so every connection is mutual TLS. A seventh machine submits a short job through the
// control API with the client certificate and a bearer token; the job must succeed with both
// ranks training and both actors inserting. Then a process of the seventh machine without a
// certificate must fail to register. Needs root (network namespaces); skipped otherwise.
#include <gtest/gtest.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "nlohmann/json.hpp"
#include "tests/integration/netns.h"
#include "tests/integration/process.h"

namespace rally {
namespace {

using namespace std::chrono_literals;
using testing::ReadFile;

constexpr char kSubnet[] = "10.232.0";
// The learner StatefulSet's replicas, as an overlay sets them; the kustomization's replacement
// copies the count into every rank's WORLD_SIZE.
constexpr int kLearnerReplicas = 2;
// Long enough (a few seconds) for both actors, registered before the job, to insert into it.
constexpr int kSteps = 200;
constexpr char kOutside[] = "outside";  // the seventh machine: the CLI, and the stranger

// A pod of deploy/k8s/base on a machine of its own.
struct Pod {
  std::string machine;   // also the name of its log
  std::string file;      // deploy/k8s/base/FILE
  std::string workload;  // the Deployment's or StatefulSet's name
  std::string name;      // the pod's metadata.name (a Deployment's: any unique name)
  int ordinal;           // a StatefulSet pod's index
};

const std::vector<Pod>& Pods() {
  static const auto* const pods = new std::vector<Pod>{
      {"control", "control.yaml", "rally-control", "rally-control-0", 0},
      {"replay", "replay.yaml", "rally-replay", "rally-replay-0", 0},
      {"learner-0", "learner.yaml", "rally-learner", "rally-learner-0", 0},
      {"learner-1", "learner.yaml", "rally-learner", "rally-learner-1", 1},
      {"actor-0", "actor.yaml", "rally-actor", "rally-actor-0", 0},
      {"actor-1", "actor.yaml", "rally-actor", "rally-actor-1", 1},
  };
  return *pods;
}

// The names the pods dial (Services, and the headless Service's per-pod names) and the machine
// each resolves to.
const std::vector<std::pair<std::string, std::string>>& ServiceNames() {
  static const auto* const names = new std::vector<std::pair<std::string, std::string>>{
      {"rally-control", "control"},
      {"rally-replay", "replay"},
      {"rally-learner-0.rally-learner", "learner-0"},
      {"rally-learner-1.rally-learner", "learner-1"},
  };
  return *names;
}

// How a pod's container starts: its program, its arguments and its whole environment.
struct PodCommand {
  std::string binary;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
};

// The files a pod's volumes hold: the Secrets' keys, laid out as make-secrets.sh makes them.
struct Secrets {
  std::string certs;   // `rally certs init` directory: COMPONENT.crt, COMPONENT.key, ca.crt
  std::string tokens;  // control's tokens file
};

absl::StatusOr<YAML::Node> LoadWorkload(const std::string& file, const std::string& name) {
  const std::string path = testing::SourcePath("deploy/k8s/base/" + file);
  try {
    for (const YAML::Node& object : YAML::LoadAllFromFile(path)) {
      const std::string kind = object["kind"].as<std::string>("");
      if ((kind == "Deployment" || kind == "StatefulSet") &&
          object["metadata"]["name"].as<std::string>("") == name) {
        return object;
      }
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
  return absl::NotFoundError(absl::StrCat(path, " has no Deployment or StatefulSet ", name));
}

absl::Status CopyFile(const std::string& from, const std::filesystem::path& to) {
  std::error_code error;
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing, error);
  if (!error) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("cannot copy ", from, " to ", to.string(), ": ", error.message()));
}

// Fills `dir` with what volume `volume` holds; other kinds than Secrets start empty.
absl::Status FillVolume(const YAML::Node& volume, const Secrets& secrets,
                        const std::filesystem::path& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return absl::InternalError(absl::StrCat("cannot make ", dir.string()));
  if (!volume["secret"]) return absl::OkStatus();
  const std::string secret = volume["secret"]["secretName"].as<std::string>("");
  if (secret == "rally-control-tokens") return CopyFile(secrets.tokens, dir / "tokens");
  if (!absl::StartsWith(secret, "rally-tls-")) {
    return absl::InvalidArgumentError(absl::StrCat("unknown Secret ", secret));
  }
  const std::string component = secret.substr(std::string("rally-tls-").size());
  for (const auto& [from, to] :
       std::vector<std::pair<std::string, std::string>>{{component + ".crt", "tls.crt"},
                                                        {component + ".key", "tls.key"},
                                                        {"ca.crt", "ca.crt"}}) {
    if (absl::Status s = CopyFile(secrets.certs + "/" + from, dir / to); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// `value` with a mount path it starts with replaced by that volume's directory on this host.
std::string HostPath(const std::string& value,
                     const std::vector<std::pair<std::string, std::string>>& mounts) {
  for (const auto& [mount, dir] : mounts) {
    if (value == mount || absl::StartsWith(value, mount + "/")) {
      return dir + value.substr(mount.size());
    }
  }
  return value;
}

// The value of env entry `entry` in `pod` at `address`: a plain value, or a field of the pod.
absl::StatusOr<std::string> EnvValue(const YAML::Node& entry, const Pod& pod,
                                     const std::string& address) {
  if (entry["value"]) return entry["value"].as<std::string>();
  const std::string field = entry["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>("");
  if (field == "status.podIP") return address;
  if (field == "metadata.name") return pod.name;
  if (field == "metadata.labels['apps.kubernetes.io/pod-index']") {
    return absl::StrCat(pod.ordinal);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("env ", entry["name"].as<std::string>(""), ": unsupported valueFrom"));
}

// Volumes mounted by `container` of `workload`, made under `root`: (mountPath, directory) pairs.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> MountVolumes(
    const YAML::Node& workload, const YAML::Node& container, const Secrets& secrets,
    const std::string& root) {
  const YAML::Node spec = workload["spec"];
  std::vector<std::pair<std::string, std::string>> mounts;
  for (const YAML::Node& mount : container["volumeMounts"]) {
    const std::string name = mount["name"].as<std::string>();
    const std::string path = mount["mountPath"].as<std::string>();
    YAML::Node volume;
    for (const YAML::Node& v : spec["template"]["spec"]["volumes"]) {
      if (v["name"].as<std::string>() == name) volume = v;
    }
    for (const YAML::Node& claim : spec["volumeClaimTemplates"]) {
      if (claim["metadata"]["name"].as<std::string>() == name) volume = claim;
    }
    if (!volume) return absl::InvalidArgumentError(absl::StrCat("no volume ", name));
    const std::string dir = root + path;
    if (absl::Status s = FillVolume(volume, secrets, dir); !s.ok()) return s;
    mounts.emplace_back(path, dir);
  }
  return mounts;
}

// `pod`'s container as its manifest starts it on a machine at `address`, with its volumes made
// under `root`.
absl::StatusOr<PodCommand> CommandOfPod(const Pod& pod, const std::string& address,
                                        const Secrets& secrets, const std::string& root) {
  auto workload = LoadWorkload(pod.file, pod.workload);
  if (!workload.ok()) return workload.status();
  const YAML::Node container = (*workload)["spec"]["template"]["spec"]["containers"][0];
  auto mounts = MountVolumes(*workload, container, secrets, root);
  if (!mounts.ok()) return mounts.status();
  PodCommand command;
  for (const YAML::Node& entry : container["env"]) {
    auto value = EnvValue(entry, pod, address);
    if (!value.ok()) return value.status();
    command.env[entry["name"].as<std::string>()] = HostPath(*value, *mounts);
  }
  if (pod.workload == "rally-learner") {  // the kustomization's replacement
    if (!command.env.count("WORLD_SIZE")) {
      return absl::InvalidArgumentError("learner.yaml no longer sets WORLD_SIZE");
    }
    command.env["WORLD_SIZE"] = absl::StrCat(kLearnerReplicas);
  }
  std::vector<std::string> argv;
  for (const YAML::Node& a : container["command"]) argv.push_back(a.as<std::string>());
  for (const YAML::Node& a : container["args"]) argv.push_back(a.as<std::string>());
  if (argv.empty()) return absl::InvalidArgumentError(pod.file + ": no command");
  command.binary = argv[0];
  for (size_t i = 1; i < argv.size(); ++i) {
    std::string arg = argv[i];
    for (const auto& [name, value] : command.env) {  // Kubernetes expands $(NAME) in args
      arg = absl::StrReplaceAll(arg, {{"$(" + name + ")", value}});
    }
    const size_t eq = arg.find('=');  // --flag=PATH
    if (eq != std::string::npos) {
      arg = arg.substr(0, eq + 1) + HostPath(arg.substr(eq + 1), *mounts);
    }
    command.args.push_back(arg);
  }
  return command;
}

// The sum of the samples of `metric` whose labels contain `labels` (e.g. `grpc_method="Register"`)
// in a Prometheus text exposition; -1 when there is none.
double SumOfSeries(const std::string& exposition, const std::string& metric,
                   const std::string& labels) {
  double sum = -1;
  std::istringstream lines(exposition);
  std::string line;
  while (std::getline(lines, line)) {
    if (!absl::StartsWith(line, metric + "{") && !absl::StartsWith(line, metric + " ")) continue;
    if (!labels.empty() && !absl::StrContains(line.substr(0, line.rfind(' ')), labels)) continue;
    sum = std::max(sum, 0.0) + std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
  }
  return sum;
}

int64_t Int64(const nlohmann::json& j) {  // protobuf's JSON writes int64 as a string
  if (j.is_string()) return std::stoll(j.get<std::string>());
  return j.is_number() ? j.get<int64_t>() : -1;
}

std::string JobSpec() {
  return absl::StrCat(R"(name: multi-host
seed: 7
game:
  name: tictactoe
policy:
  hidden: [16]
actors:
  count: 2
  envs_per_actor: 8
  threads: 1
  max_batch: 8
  batch_timeout_us: 500
replay:
  tables:
    - name: selfplay
      max_size: 64
learner:
  batch_episodes: 16
  learning_rate: 0.001
  publish_every_steps: 2
  checkpoint_every_steps: 10
evaluation:
  opponents: []
stop:
  max_learner_steps: )",
                      kSteps, R"(
  max_wall_seconds: 90
)");
}

class MultiHost : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "network namespaces need root";
    dir_ = testing::TempDir("multi-host");
    std::vector<std::string> machines;
    for (const Pod& pod : Pods()) machines.push_back(pod.machine);
    machines.push_back(kOutside);
    auto net = testing::NetworkNamespaces::Create(machines, kSubnet);
    ASSERT_TRUE(net.ok()) << net.status();
    net_ = std::move(*net);
    std::vector<std::pair<std::string, std::string>> hosts;
    for (const auto& [name, machine] : ServiceNames()) {
      hosts.emplace_back(name, net_->Address(machine));
    }
    ASSERT_TRUE(net_->SetHosts(hosts).ok());
  }

  // `rally certs init` for the six pods' addresses, and a tokens file with one admin token.
  void MakeSecrets() {
    std::vector<std::string> addresses;
    for (const Pod& pod : Pods()) addresses.push_back(net_->Address(pod.machine));
    secrets_.certs = dir_ + "/certs";
    const std::string log = dir_ + "/certs.log";
    ASSERT_EQ(
        testing::RunToCompletion(
            "rally", {"certs", "init", secrets_.certs, "--hosts=" + absl::StrJoin(addresses, ",")},
            log, 60s),
        0)
        << ReadFile(log);
    token_file_ = dir_ + "/token";
    std::ofstream(token_file_) << "multi-host-admin-token-0123456789\n";
    secrets_.tokens = dir_ + "/tokens";
    std::ofstream(secrets_.tokens) << "admin multi-host-admin-token-0123456789\n";
  }

  // Starts `pod` on `machine` as its manifest does; `edit` may change the command first.
  void StartPod(const Pod& pod, const std::string& machine,
                const std::function<void(PodCommand&)>& edit = nullptr) {
    auto command = CommandOfPod(pod, net_->Address(machine), secrets_, dir_ + "/pods/" + pod.name);
    ASSERT_TRUE(command.ok()) << pod.name << ": " << command.status();
    if (edit) edit(*command);
    processes_.push_back(
        net_->Start(machine, command->binary, command->args, command->env, Log(machine)));
  }

  // The log of the process started on `machine`.
  std::string Log(const std::string& machine) const { return dir_ + "/" + machine + ".log"; }

  // A pod's /metrics (the manifests' metrics port, 9090), fetched on its machine.
  std::string Metrics(const std::string& machine) const {
    return net_->HttpGet(machine, net_->Address(machine) + ":9090", "/metrics");
  }

  // Runs the CLI on the seventh machine with the client certificate and the admin token.
  int Cli(const std::vector<std::string>& args, const std::string& out,
          std::chrono::seconds timeout) const {
    std::vector<std::string> argv = args;
    argv.insert(argv.end(), {"--certs=" + secrets_.certs, "--token_file=" + token_file_});
    return net_->Run(kOutside, "rally", argv, {{"RALLY_CONTROL", "rally-control:7070"}}, out,
                     timeout);
  }

  // Waits (bounded) for control to count `n` registered workers; the last count seen.
  double WaitForWorkers(double n, std::chrono::seconds timeout) const {
    double workers = -1;
    for (auto end = std::chrono::steady_clock::now() + timeout;
         std::chrono::steady_clock::now() < end; std::this_thread::sleep_for(500ms)) {
      workers = testing::MetricValue(Metrics("control"), "rally_control_workers");
      if (workers == n) break;
    }
    return workers;
  }

  std::string AllLogs() const {
    std::string text;
    for (const Pod& pod : Pods()) {
      absl::StrAppend(&text, "\n--- ", pod.machine, ":\n", ReadFile(Log(pod.machine)));
    }
    return text;
  }

  void TearDown() override {
    // Every process ends (by pid) before its machine goes; the logs stay when the test failed.
    for (auto it = processes_.rbegin(); it != processes_.rend(); ++it) (*it)->Stop();
    processes_.clear();
    if (!dir_.empty() && !HasFailure()) std::filesystem::remove_all(dir_);
  }

  std::string dir_;
  std::unique_ptr<testing::NetworkNamespaces> net_;
  Secrets secrets_;
  std::string token_file_;
  std::vector<std::unique_ptr<testing::Process>> processes_;
};

TEST_F(MultiHost, PodsOnSixMachinesTrainAJobOverMutualTls) {
  // The replacement that sets WORLD_SIZE from the replicas, which this test plays.
  EXPECT_TRUE(absl::StrContains(ReadFile(testing::SourcePath("deploy/k8s/base/kustomization.yaml")),
                                "env.[name=WORLD_SIZE].value"));
  ASSERT_NO_FATAL_FAILURE(MakeSecrets());
  for (const Pod& pod : Pods()) ASSERT_NO_FATAL_FAILURE(StartPod(pod, pod.machine));
  ASSERT_EQ(WaitForWorkers(5, 60s), 5) << AllLogs();

  // The job, from the seventh machine through the control API over mutual TLS.
  std::ofstream(dir_ + "/job.yaml") << JobSpec();
  const std::string submit = dir_ + "/submit.out";
  ASSERT_EQ(Cli({"submit", dir_ + "/job.yaml"}, submit, 30s), 0) << ReadFile(submit);
  const std::string job_id = ReadFile(submit).substr(0, ReadFile(submit).find('\n'));
  const std::string watch = dir_ + "/watch.out";
  EXPECT_EQ(Cli({"watch", job_id, "--output=json"}, watch, 100s), 0) << ReadFile(watch);
  const std::string status = dir_ + "/status.out";
  ASSERT_EQ(Cli({"status", job_id, "--output=json"}, status, 30s), 0) << ReadFile(status);
  const nlohmann::json job = nlohmann::json::parse(ReadFile(status), nullptr, false);
  ASSERT_TRUE(job.is_object()) << ReadFile(status);
  ASSERT_EQ(job.value("state", ""), "JOB_STATE_SUCCEEDED") << job.dump(2) << AllLogs();
  // Ended by its steps, not by stop.max_wall_seconds (which also ends a job SUCCEEDED).
  EXPECT_EQ(job.value("reason", ""), absl::StrCat("reached stop.max_learner_steps (", kSteps, ")"));
  EXPECT_EQ(Int64(job["progress"]["learnerSteps"]), kSteps) << job.dump(2);
  EXPECT_GT(Int64(job["progress"]["trajectoriesInserted"]), 0) << job.dump(2);

  // Both ranks trained every step in one data-parallel group, over the network, to equal weights.
  std::string digest[2];
  for (int rank = 0; rank < 2; ++rank) {
    const std::string machine = absl::StrCat("learner-", rank);
    digest[rank] = testing::WaitForLogField(Log(machine), "training ended", "weights_digest", 60s);
    ASSERT_FALSE(digest[rank].empty()) << ReadFile(Log(machine));
    const auto setup = testing::LogLines(Log(machine), "data parallel");
    ASSERT_FALSE(setup.empty()) << ReadFile(Log(machine));
    EXPECT_EQ(setup.back().value("world_size", 0), kLearnerReplicas);
    EXPECT_EQ(testing::MetricValue(Metrics(machine), "rally_learner_steps_total"), kSteps)
        << machine;
  }
  EXPECT_EQ(digest[0], digest[1]);

  // Each actor played and had its trajectories acknowledged by the replay.
  for (const char* actor : {"actor-0", "actor-1"}) {
    const std::string metrics = Metrics(actor);
    EXPECT_GT(testing::MetricValue(metrics, "rally_actor_trajectories_acked_total"), 0)
        << actor << ":\n"
        << metrics << ReadFile(Log(actor));
  }

  // Every server spoke mutual TLS as its own component, and the workers registered under the
  // addresses their manifests give them (the pod IP), at the manifests' ports.
  for (const char* machine : {"control", "replay", "learner-0", "learner-1"}) {
    const std::string component = std::string(machine).substr(0, std::string(machine).find('-'));
    EXPECT_TRUE(absl::StrContains(ReadFile(Log(machine)),
                                  "\"transport\":\"mutual TLS as " + component + "\""))
        << ReadFile(Log(machine));
  }
  const std::string control_log = ReadFile(Log("control"));
  for (const auto& [machine, port] : std::vector<std::pair<std::string, int>>{
           {"replay", 7071}, {"learner-0", 7072}, {"learner-1", 7072}}) {
    EXPECT_TRUE(absl::StrContains(
        control_log, absl::StrCat("\"address\":\"", net_->Address(machine), ":", port, "\"")))
        << machine << "\n"
        << control_log;
  }
}

// A process of the cluster's network without a certificate of its CA is refused at the handshake:
// the actor pod's settings without RALLY_TLS_* (and with --insecure, without which it would not
// start in plain text on 0.0.0.0) never register, while the same pod with them does, from the
// same machine.
TEST_F(MultiHost, AProcessWithoutACertificateCannotRegister) {
  ASSERT_NO_FATAL_FAILURE(MakeSecrets());
  const Pod& control = Pods()[0];
  const Pod& actor = Pods()[4];
  ASSERT_EQ(control.machine, "control");
  ASSERT_EQ(actor.workload, "rally-actor");
  ASSERT_NO_FATAL_FAILURE(StartPod(control, control.machine));
  ASSERT_EQ(WaitForWorkers(0, 30s), 0) << ReadFile(Log("control"));

  ASSERT_NO_FATAL_FAILURE(StartPod(actor, kOutside, [](PodCommand& c) {
    for (const char* name : {"RALLY_TLS_CERT", "RALLY_TLS_KEY", "RALLY_TLS_CA"}) c.env.erase(name);
    c.args.push_back("--insecure");
  }));
  // It retries every 200 ms: 25 refused attempts, and not one reached the Register method.
  std::this_thread::sleep_for(5s);
  EXPECT_EQ(processes_.back()->Wait(0ms), -1) << "exited:\n" << ReadFile(Log(kOutside));
  EXPECT_EQ(testing::MetricValue(Metrics("control"), "rally_control_workers"), 0);
  EXPECT_LE(
      SumOfSeries(Metrics("control"), "grpc_server_started_total", "grpc_method=\"Register\""), 0);
  EXPECT_FALSE(absl::StrContains(ReadFile(Log(kOutside)), "registered with control"))
      << ReadFile(Log(kOutside));
  processes_.back()->Stop();

  // The same pod with its certificate, on the same machine, registers.
  std::filesystem::rename(Log(kOutside), Log(kOutside) + ".plain");
  ASSERT_NO_FATAL_FAILURE(StartPod(actor, kOutside));
  EXPECT_EQ(WaitForWorkers(1, 30s), 1) << ReadFile(Log(kOutside));
}

}  // namespace
}  // namespace rally
