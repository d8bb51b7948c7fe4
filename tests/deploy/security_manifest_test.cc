// Who may talk to whom in the Kubernetes manifests of deploy/k8s, rendered with `kubectl
// kustomize`: every container reads its own certificate, key and CA from its component's Secret
// (rally-tls-COMPONENT) and none binds beyond loopback without them; control reads its bearer
// tokens from the Secret rally-control-tokens; NetworkPolicies deny every connection to a rally pod
// that rally does not need, judged by a written-out reading of the NetworkPolicy API
// (IngressAllowed in manifests.h) against a connection table written by hand here; and
// k8s/make-secrets.sh makes exactly the Secrets the pods mount.
// Skipped (ctest reports SKIPPED) where kubectl is not installed.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/net/free_port.h"
#include "tests/deploy/manifests.h"
#include "tests/integration/process.h"

namespace rally::deploy {
namespace {

#define SKIP_WITHOUT_KUBECTL()                                                                   \
  if (!HaveProgram("kubectl")) {                                                                 \
    GTEST_SKIP() << "kubectl is not installed: the manifests cannot be rendered (kubectl 1.27+ " \
                    "with kustomize 5)";                                                         \
  }

constexpr char kNamespace[] = "rally";

// The three TLS settings: the flag, the environment variable and the key of the Secret.
struct TlsSetting {
  const char* flag;
  const char* env;
  const char* key;
};
constexpr TlsSetting kTlsSettings[] = {{"tls_cert", "RALLY_TLS_CERT", "tls.crt"},
                                       {"tls_key", "RALLY_TLS_KEY", "tls.key"},
                                       {"tls_ca", "RALLY_TLS_CA", "ca.crt"}};

std::string Component(const Workload& w) {
  return w.pod_labels()["app.kubernetes.io/component"].as<std::string>();
}

// What the container sets `flag` to, by flag or else by environment variable `env`.
std::optional<std::string> Setting(const YAML::Node& c, const std::string& flag,
                                   const std::string& env) {
  const auto flags = ContainerFlags(c);
  if (flags.count(flag)) return flags.at(flag);
  return EnvValue(c, env);
}

// Where a file the container reads comes from: a Secret and its key.
struct SecretFile {
  std::string secret;
  std::string key;
};

// The Secret key that appears at `path` in container `c` of `w`, through a secret volume mounted
// at the path's directory (whole, or by `items`) or at the path itself (`subPath`).
std::optional<SecretFile> SecretFileAt(const Workload& w, const YAML::Node& c,
                                       const std::string& path) {
  for (const YAML::Node& m : c["volumeMounts"]) {
    const std::string mount = m["mountPath"].as<std::string>();
    std::string file;
    if (m["subPath"] && path == mount) file = m["subPath"].as<std::string>();
    if (!m["subPath"] && absl::StartsWith(path, mount + "/")) file = path.substr(mount.size() + 1);
    if (file.empty()) continue;
    for (const YAML::Node& v : w.pod_spec()["volumes"]) {
      if (v["name"].as<std::string>() != m["name"].as<std::string>() || !v["secret"]) continue;
      std::string key = file;
      if (v["secret"]["items"]) {
        key.clear();
        for (const YAML::Node& item : v["secret"]["items"]) {
          if (item["path"].as<std::string>() == file) key = item["key"].as<std::string>();
        }
      }
      if (!key.empty() && !absl::StrContains(key, "/")) {
        return SecretFile{v["secret"]["secretName"].as<std::string>(), key};
      }
    }
  }
  return std::nullopt;
}

// The names of the Secrets a workload's pods mount.
std::set<std::string> MountedSecrets(const Workload& w) {
  std::set<std::string> out;
  for (const YAML::Node& v : w.pod_spec()["volumes"]) {
    if (v["secret"]) out.insert(v["secret"]["secretName"].as<std::string>());
  }
  return out;
}

// One overlay of deploy/k8s, rendered once per test, with its pods as NetworkPolicy sees them.
class Security : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_KUBECTL();
    auto objects = Render(SourcePath("deploy/k8s/" + GetParam()));
    ASSERT_TRUE(objects.ok()) << objects.status();
    objects_ = *objects;
    workloads_ = Workloads(objects_);
    ASSERT_EQ(workloads_.size(), 5u);
    const auto namespaces = ObjectsOfKind(objects_, "Namespace", kNamespace);
    ASSERT_EQ(namespaces.size(), 1u);
    // The API server labels every namespace with its name.
    rally_namespace_labels_["kubernetes.io/metadata.name"] = kNamespace;
    for (const auto& kv : namespaces[0]["metadata"]["labels"]) {
      rally_namespace_labels_[kv.first.as<std::string>()] = kv.second.as<std::string>();
    }
    for (const Workload& w : workloads_) {
      // Two learner ranks: rank 0 serves the weights, the others do not.
      for (int ordinal = 0; ordinal < (w.kind == "StatefulSet" ? 2 : 1); ++ordinal) {
        std::string name = Component(w);
        if (w.name == "rally-learner") absl::StrAppend(&name, "-", ordinal);
        pods_.push_back(
            {name, kNamespace, rally_namespace_labels_, PodLabels(w, ordinal), w.containers()[0]});
      }
    }
  }

  // Clients that are not rally pods: Prometheus servers, API clients and strangers.
  std::vector<PodIdentity> OutsideClients() const {
    using Labels = std::map<std::string, std::string>;
    const Labels rally = rally_namespace_labels_;
    const Labels monitoring = {{"kubernetes.io/metadata.name", "monitoring"},
                               {"rally/metrics-scraper", "true"}};
    const Labels ops = {{"kubernetes.io/metadata.name", "ops"},
                        {"rally/control-api-client", "true"}};
    const Labels elsewhere = {{"kubernetes.io/metadata.name", "default"}};
    const Labels plain_prometheus = {{"app.kubernetes.io/name", "rally-prometheus"}};
    const Labels operator_prometheus = {{"app.kubernetes.io/name", "prometheus"}};
    // Another namespace's pod wearing a rally actor's labels.
    const Labels actor = {{"app.kubernetes.io/name", "rally"},
                          {"app.kubernetes.io/component", "actor"}};
    return {
        {"prometheus", kNamespace, rally, plain_prometheus, {}},
        {"operator-prometheus", "monitoring", monitoring, operator_prometheus, {}},
        {"api-client-namespace", "ops", ops, {{"run", "rally-cli"}}, {}},
        {"api-client-pod", kNamespace, rally, {{"rally/control-api-client", "true"}}, {}},
        {"stranger-in-rally", kNamespace, rally, {{"run", "debug"}}, {}},
        {"impostor-elsewhere", "default", elsewhere, actor, {}},
        {"prometheus-elsewhere", "default", elsewhere, plain_prometheus, {}},
    };
  }

  const Workload* WorkloadOf(const PodIdentity& pod) const {
    for (const Workload& w : workloads_) {
      if (SelectorMatches(w.object["spec"]["selector"], pod.labels)) return &w;
    }
    return nullptr;
  }

  std::vector<YAML::Node> objects_;
  std::vector<Workload> workloads_;
  std::map<std::string, std::string> rally_namespace_labels_;
  std::vector<PodIdentity> pods_;
};

TEST_P(Security, EveryContainerReadsItsOwnCertificateKeyAndCaFromItsSecret) {
  for (const Workload& w : workloads_) {
    for (const YAML::Node& c : w.containers()) {
      const std::string where = absl::StrCat(GetParam(), " ", w.name);
      for (const TlsSetting& s : kTlsSettings) {
        const std::optional<std::string> path = Setting(c, s.flag, s.env);
        ASSERT_TRUE(path.has_value()) << where << " sets neither --" << s.flag << " nor " << s.env;
        const std::optional<SecretFile> file = SecretFileAt(w, c, *path);
        ASSERT_TRUE(file.has_value()) << where << ": " << *path << " is not from a Secret";
        EXPECT_EQ(file->secret, "rally-tls-" + Component(w)) << where << " " << s.env;
        EXPECT_EQ(file->key, s.key) << where << " " << s.env;
      }
    }
  }
}

TEST_P(Security, NoContainerBindsBeyondLoopbackWithoutTls) {
  for (const Workload& w : workloads_) {
    for (const YAML::Node& c : w.containers()) {
      const std::string where = absl::StrCat(GetParam(), " ", w.name);
      EXPECT_FALSE(ContainerFlags(c).count("insecure")) << where << " runs with --insecure";
      for (const YAML::Node& e : c["env"]) {
        EXPECT_FALSE(absl::StrContains(e["name"].as<std::string>(), "INSECURE")) << where;
      }
      // The bind address: --host, else RALLY_HOST (a value, or the pod IP by valueFrom), else
      // the binaries' default, loopback.
      std::optional<std::string> host = Setting(c, "host", "RALLY_HOST");
      for (const YAML::Node& e : c["env"]) {
        if (e["name"].as<std::string>() == "RALLY_HOST" && e["valueFrom"]) host = "pod IP";
      }
      const bool loopback = !host || *host == "127.0.0.1" || *host == "localhost" || *host == "::1";
      if (loopback) continue;
      for (const TlsSetting& s : kTlsSettings) {
        EXPECT_TRUE(Setting(c, s.flag, s.env).has_value())
            << where << " binds " << *host << " without " << s.env;
      }
    }
  }
}

TEST_P(Security, EachPodMountsOnlyItsOwnSecrets) {
  for (const Workload& w : workloads_) {
    std::set<std::string> expected = {"rally-tls-" + Component(w)};
    if (w.name == "rally-control") expected.insert("rally-control-tokens");
    EXPECT_EQ(MountedSecrets(w), expected) << GetParam() << " " << w.name;
  }
}

TEST_P(Security, ControlReadsItsTokensFromTheTokensSecret) {
  for (const Workload& w : workloads_) {
    const YAML::Node c = w.containers()[0];
    const std::optional<std::string> tokens = Setting(c, "tokens_file", "RALLY_TOKENS_FILE");
    EXPECT_EQ(tokens.has_value(), w.name == "rally-control") << w.name;
    // A token in the manifest would be readable by anyone who can read the Deployment.
    EXPECT_FALSE(ContainerFlags(c).count("token")) << w.name;
    EXPECT_FALSE(EnvValue(c, "RALLY_TOKEN").has_value()) << w.name;
    if (!tokens) continue;
    const std::optional<SecretFile> file = SecretFileAt(w, c, *tokens);
    ASSERT_TRUE(file.has_value()) << *tokens << " is not from a Secret";
    EXPECT_EQ(file->secret, "rally-control-tokens");
    EXPECT_EQ(file->key, "tokens");
  }
}

TEST_P(Security, EveryRallyPodIsSelectedByAPolicyThatAllowsNothing) {
  for (const PodIdentity& pod : pods_) {
    bool denied_by_default = false;
    for (const YAML::Node& policy : IngressPoliciesSelecting(objects_, pod)) {
      denied_by_default |= !policy["spec"]["ingress"] || policy["spec"]["ingress"].size() == 0;
    }
    EXPECT_TRUE(denied_by_default) << GetParam() << ": no default-deny policy selects " << pod.name;
  }
}

// Each rule names a port (by name or number) that every pod it applies to serves; a rule for
// every port admits only the pods of the target's own workload (learner ranks, whose Gloo and
// NCCL connections use ephemeral ports); no rule admits every source.
TEST_P(Security, EveryIngressRuleNamesPortsItsTargetsServe) {
  for (const PodIdentity& target : pods_) {
    for (const YAML::Node& policy : IngressPoliciesSelecting(objects_, target)) {
      const std::string where =
          absl::StrCat(GetParam(), " NetworkPolicy ", policy["metadata"]["name"].as<std::string>(),
                       " on ", target.name);
      for (const YAML::Node& rule : policy["spec"]["ingress"]) {
        ASSERT_TRUE(rule["from"] && rule["from"].size() > 0) << where << ": a rule for everyone";
        for (const YAML::Node& p : rule["ports"]) {
          ASSERT_TRUE(p["port"]) << where << ": a rule for every port";
          EXPECT_FALSE(p["endPort"]) << where;
          EXPECT_TRUE(ResolvePort(target.container, p["port"]).has_value())
              << where << ": port " << p["port"].as<std::string>() << " is not one it serves";
        }
        if (rule["ports"] && rule["ports"].size() > 0) continue;
        for (const YAML::Node& peer : rule["from"]) {
          EXPECT_FALSE(peer["namespaceSelector"] || peer["ipBlock"]) << where;
          for (const PodIdentity& source : pods_) {
            if (!SelectorMatches(peer["podSelector"], source.labels)) continue;
            EXPECT_EQ(WorkloadOf(source), WorkloadOf(target))
                << where << ": every port open to " << source.name;
          }
        }
      }
    }
  }
}

// The connections rally makes, written out by hand: target:port -> who may connect.
std::set<std::string> ConnectionsRallyNeeds() {
  const std::vector<std::string> rally = {"control",   "replay", "learner-0",
                                          "learner-1", "actor",  "evaluator"};
  const std::vector<std::string> learners = {"learner-0", "learner-1"};
  std::set<std::string> out;
  auto allow = [&out](const std::vector<std::string>& sources, const std::string& to) {
    for (const std::string& s : sources) out.insert(absl::StrCat(s, " -> ", to));
  };
  // Workers register and heartbeat; people and tools use the job API.
  allow(rally, "control:7070");
  allow({"api-client-namespace", "api-client-pod"}, "control:7070");
  // Inserts (actors), samples (learners), the curriculum (actors, evaluator).
  allow({"actor", "learner-0", "learner-1", "evaluator"}, "replay:7071");
  // Rank 0's WeightService: actors and the evaluator fetch weights, the replay polls snapshots.
  allow({"actor", "evaluator", "replay"}, "learner-0:7072");
  // Learner ranks reach each other on every port: the c10d store and Gloo's ephemeral ports.
  for (const std::string& rank : learners) {
    for (int port : {7072, 29500, 9090, 40000}) allow(learners, absl::StrCat(rank, ":", port));
  }
  for (const std::string& pod : rally) {
    allow({"prometheus", "operator-prometheus"}, pod + ":9090");
  }
  return out;
}

TEST_P(Security, ConnectionsAllowedAreExactlyTheOnesRallyNeeds) {
  std::vector<PodIdentity> sources = pods_;
  for (const PodIdentity& client : OutsideClients()) sources.push_back(client);
  std::set<std::string> allowed;
  for (const PodIdentity& target : pods_) {
    std::set<int> ports = {40000};  // an ephemeral port, where Gloo listens
    for (const YAML::Node& p : target.container["ports"])
      ports.insert(p["containerPort"].as<int>());
    for (const PodIdentity& source : sources) {
      for (int port : ports) {
        if (IngressAllowed(objects_, source, target, port)) {
          allowed.insert(absl::StrCat(source.name, " -> ", target.name, ":", port));
        }
      }
    }
  }
  const std::set<std::string> needed = ConnectionsRallyNeeds();
  for (const std::string& c : allowed) {
    EXPECT_TRUE(needed.count(c)) << GetParam() << " allows " << c << ", which rally does not need";
  }
  for (const std::string& c : needed) {
    EXPECT_TRUE(allowed.count(c)) << GetParam() << " refuses " << c << ", which rally needs";
  }
}

INSTANTIATE_TEST_SUITE_P(Manifests, Security, ::testing::Values("overlays/cpu", "overlays/gpu"),
                         [](const auto& info) { return info.param.substr(9); });

// Secret name -> key -> contents.
using SecretData = std::map<std::string, std::map<std::string, std::string>>;

// The Secrets that k8s/make-secrets.sh prints for `certs` and `tokens`, decoded.
absl::StatusOr<SecretData> MakeSecrets(const std::string& certs, const std::string& tokens) {
  const CommandResult r = RunCommand(
      absl::StrCat("bash ", SourcePath("deploy/k8s/make-secrets.sh"), " ", certs, " ", tokens));
  if (r.exit_code != 0) return absl::InternalError("make-secrets.sh: " + r.output);
  SecretData made;
  for (const YAML::Node& secret : YAML::LoadAll(r.output)) {
    if (!secret.IsMap()) continue;
    if (secret["metadata"]["namespace"].as<std::string>() != kNamespace) {
      return absl::InternalError("make-secrets.sh: a Secret outside namespace rally");
    }
    auto& data = made[secret["metadata"]["name"].as<std::string>()];
    for (const auto& kv : secret["data"]) {
      if (!absl::Base64Unescape(kv.second.as<std::string>(), &data[kv.first.as<std::string>()])) {
        return absl::InternalError("make-secrets.sh: data that is not base64");
      }
    }
  }
  return made;
}

// Fake certificate files whose contents name them, and a tokens file, for make-secrets.sh.
std::string WriteFakeCertificates(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  for (const char* name : {"ca", "control", "replay", "learner", "actor", "evaluator", "client"}) {
    std::ofstream(dir / absl::StrCat(name, ".crt")) << name << " certificate\n";
    std::ofstream(dir / absl::StrCat(name, ".key")) << name << " key\n";
  }
  std::ofstream(dir / "tokens") << "admin 0123456789abcdef\n";
  return (dir / "tokens").string();
}

TEST(Manifests, MakeSecretsMakesEverySecretThePodsMountFromTheRightFiles) {
  SKIP_WITHOUT_KUBECTL();
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / absl::StrCat("rally-secrets-", getpid());
  const std::string tokens = WriteFakeCertificates(dir);
  absl::StatusOr<SecretData> made = MakeSecrets(dir.string(), tokens);
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(made.ok()) << made.status();
  for (const char* component : {"control", "replay", "learner", "actor", "evaluator"}) {
    const std::map<std::string, std::string> expected = {
        {"tls.crt", absl::StrCat(component, " certificate\n")},
        {"tls.key", absl::StrCat(component, " key\n")},
        {"ca.crt", "ca certificate\n"}};
    EXPECT_EQ((*made)[absl::StrCat("rally-tls-", component)], expected) << component;
  }
  EXPECT_EQ((*made)["rally-control-tokens"],
            (std::map<std::string, std::string>{{"tokens", "admin 0123456789abcdef\n"}}));
  EXPECT_EQ(made->size(), 6u) << "only the Secrets the pods mount, never the CA's key";
  auto objects = Render(SourcePath("deploy/k8s/overlays/cpu"));
  ASSERT_TRUE(objects.ok()) << objects.status();
  for (const Workload& w : Workloads(*objects)) {
    for (const std::string& secret : MountedSecrets(w)) {
      EXPECT_TRUE(made->count(secret))
          << w.name << " mounts " << secret << ", which it does not make";
    }
  }
}

// A pod of a rendered workload run as a local process, as the kubelet would start it: the
// manifest's command, arguments and environment, with each volume's mount path moved under a
// temporary root (Secrets written there from make-secrets.sh's output), the downward API's values
// filled in (the pod IP becomes 0.0.0.0: an address beyond loopback), fixed ports replaced by free
// ones and control unreachable.
class LocalPod {
 public:
  LocalPod(const Workload& w, const SecretData& secrets, const std::filesystem::path& root)
      : w_(w), c_(w.containers()[0]), root_(root) {
    PlaceVolumes(secrets);
    for (const YAML::Node& e : c_["env"]) {
      const std::string name = e["name"].as<std::string>();
      env_[name] = e["value"] ? Rooted(e["value"].as<std::string>()) : FieldValue(e["valueFrom"]);
    }
    env_["RALLY_CONTROL"] = "127.0.0.1:1";
  }

  // Removes `name` from the environment, as if the manifest did not set it.
  void Unset(const std::string& name) { env_.erase(name); }

  // Starts the container's program with `env -i`: only the manifest's environment.
  std::unique_ptr<rally::testing::Process> Start(const std::string& log) {
    std::vector<std::string> argv = {"-i"};
    for (const auto& [name, value] : env_) argv.push_back(name + "=" + value);
    argv.push_back(std::string(RALLY_BIN_DIR) + "/" + ContainerProgram(c_));
    for (const YAML::Node& a : c_["args"]) argv.push_back(Argument(a.as<std::string>()));
    return std::make_unique<rally::testing::Process>("/usr/bin/env", argv, log);
  }

  int grpc_port() const { return grpc_port_; }

 private:
  // Each mount's directory under the root; a Secret's keys become its files.
  void PlaceVolumes(const SecretData& secrets) {
    for (const YAML::Node& m : c_["volumeMounts"]) {
      const std::filesystem::path dir = Rooted(m["mountPath"].as<std::string>());
      std::filesystem::create_directories(dir);
      for (const YAML::Node& v : w_.pod_spec()["volumes"]) {
        if (v["name"].as<std::string>() != m["name"].as<std::string>() || !v["secret"]) continue;
        const auto it = secrets.find(v["secret"]["secretName"].as<std::string>());
        if (it == secrets.end()) continue;
        for (const auto& [key, contents] : it->second) std::ofstream(dir / key) << contents;
      }
    }
  }

  // `value` with a leading mount path moved under the root.
  std::string Rooted(const std::string& value) const {
    for (const YAML::Node& m : c_["volumeMounts"]) {
      const std::string mount = m["mountPath"].as<std::string>();
      if (value == mount || absl::StartsWith(value, mount + "/")) return root_.string() + value;
    }
    return value;
  }

  std::string FieldValue(const YAML::Node& from) const {
    const std::string field = from["fieldRef"]["fieldPath"].as<std::string>();
    if (field == "status.podIP") return "0.0.0.0";
    if (field == "metadata.name") return w_.name + "-0";
    return "0";  // the pod-index label: rank 0
  }

  // An argument with $(VAR) substituted, its path rooted and its fixed port replaced.
  std::string Argument(std::string arg) {
    for (const auto& [name, value] : env_) {
      arg = absl::StrReplaceAll(arg, {{absl::StrCat("$(", name, ")"), value}});
    }
    if (absl::StartsWith(arg, "--port=")) {
      grpc_port_ = FreePort();
      return absl::StrCat("--port=", grpc_port_);
    }
    if (absl::StartsWith(arg, "--metrics_port=")) return "--metrics_port=0";
    const size_t eq = arg.find('=');
    return eq == std::string::npos ? arg : arg.substr(0, eq + 1) + Rooted(arg.substr(eq + 1));
  }

  const Workload& w_;
  YAML::Node c_;
  std::filesystem::path root_;
  std::map<std::string, std::string> env_;
  int grpc_port_ = 0;
};

// The pods of the cpu overlay, started locally with the certificates of a real `rally certs init`
// and a tokens file, through make-secrets.sh.
class PodsAsProcesses : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_KUBECTL();
    dir_ = rally::testing::TempDir("pods-as-processes");
    const CommandResult init = RunCommand(absl::StrCat(RALLY_BIN_DIR, "/rally certs init ", dir_,
                                                       "/certs --hosts rally-control.rally.svc"));
    ASSERT_EQ(init.exit_code, 0) << init.output;
    std::ofstream(dir_ + "/tokens")
        << "admin " << std::string(32, 'a') << "\nread " << std::string(32, 'r') << "\n";
    auto secrets = MakeSecrets(dir_ + "/certs", dir_ + "/tokens");
    ASSERT_TRUE(secrets.ok()) << secrets.status();
    secrets_ = *secrets;
    auto objects = Render(SourcePath("deploy/k8s/overlays/cpu"));
    ASSERT_TRUE(objects.ok()) << objects.status();
    workloads_ = Workloads(*objects);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  const Workload& Named(const std::string& name) const {
    for (const Workload& w : workloads_) {
      if (w.name == name) return w;
    }
    std::abort();
  }

  std::string dir_;
  SecretData secrets_;
  std::vector<Workload> workloads_;
};

TEST_F(PodsAsProcesses, EveryServerListensBeyondLoopbackWithMutualTlsOnly) {
  for (const char* name : {"rally-control", "rally-replay", "rally-learner"}) {
    const Workload& w = Named(name);
    LocalPod pod(w, secrets_, dir_ + "/" + name);
    const std::string log = dir_ + "/" + name + ".log";
    auto process = pod.Start(log);
    const std::string transport =
        rally::testing::WaitForLogField(log, "serving", "transport", std::chrono::seconds(60));
    EXPECT_EQ(transport, "mutual TLS as " + Component(w)) << rally::testing::ReadFile(log);
    // A client without a certificate (this test's channels are plain text) is refused.
    EXPECT_FALSE(rally::testing::HealthServing(absl::StrCat("127.0.0.1:", pod.grpc_port()), ""))
        << name;
    EXPECT_EQ(process->Wait(std::chrono::milliseconds(100)), -1) << name << " exited";
  }
}

TEST_F(PodsAsProcesses, ControlLoadsTheTokensOfItsSecret) {
  LocalPod pod(Named("rally-control"), secrets_, dir_ + "/control");
  const std::string log = dir_ + "/control.log";
  auto process = pod.Start(log);
  ASSERT_NE(rally::testing::WaitForLogField(log, "serving", "transport", std::chrono::seconds(60)),
            "")
      << rally::testing::ReadFile(log);
  const auto loaded = rally::testing::LogLines(log, "job API needs bearer tokens");
  ASSERT_EQ(loaded.size(), 1u) << rally::testing::ReadFile(log);
  EXPECT_EQ(loaded[0].value("admin_tokens", -1), 1);
  EXPECT_EQ(loaded[0].value("read_tokens", -1), 1);
}

TEST_F(PodsAsProcesses, WorkersStartWithTheirCertificates) {
  for (const char* name : {"rally-actor", "rally-evaluator"}) {
    LocalPod pod(Named(name), secrets_, dir_ + "/" + name);
    const std::string log = dir_ + "/" + std::string(name) + ".log";
    auto process = pod.Start(log);
    EXPECT_NE(rally::testing::WaitForLogField(log, "started", "name", std::chrono::seconds(60)), "")
        << rally::testing::ReadFile(log);
    EXPECT_EQ(process->Wait(std::chrono::milliseconds(500)), -1) << name << " exited:\n"
                                                                 << rally::testing::ReadFile(log);
  }
}

TEST_F(PodsAsProcesses, AServerWithoutItsCertificateRefusesToListenBeyondLoopback) {
  LocalPod pod(Named("rally-replay"), secrets_, dir_ + "/replay");
  for (const TlsSetting& s : kTlsSettings) pod.Unset(s.env);
  const std::string log = dir_ + "/replay.log";
  auto process = pod.Start(log);
  const int status = process->Wait(std::chrono::seconds(30));
  ASSERT_NE(status, -1) << "the replay listens in plain text beyond loopback";
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_TRUE(absl::StrContains(rally::testing::ReadFile(log), "--insecure"))
      << rally::testing::ReadFile(log);
}

}  // namespace
}  // namespace rally::deploy
