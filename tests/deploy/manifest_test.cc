// The Kubernetes manifests of deploy/k8s, rendered with `kubectl kustomize` as an operator would
// apply them, checked against the binaries they start (build/bin/rally-*): every flag and
// environment variable is one the binary accepts, ports agree between flags, containers, probes
// and Services, every gRPC server's probes reach its gRPC port under mutual TLS, the replay keeps
// its data on a volume claim, the learners' rendezvous comes from the replica count, and every pod
// runs restricted.
// Skipped (ctest reports SKIPPED) where kubectl is not installed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/deploy/manifests.h"

namespace rally::deploy {
namespace {

// The processes that serve gRPC (rally-actor dials out only); each runs in the workload of the
// same name.
const std::set<std::string>& GrpcServers() {
  static const auto* servers =
      new std::set<std::string>{"rally-control", "rally-replay", "rally-learner"};
  return *servers;
}

std::string BinaryPath(const std::string& program) {
  return std::string(RALLY_BIN_DIR) + "/" + program;
}

#define SKIP_WITHOUT_KUBECTL()                                                                   \
  if (!HaveProgram("kubectl")) {                                                                 \
    GTEST_SKIP() << "kubectl is not installed: the manifests cannot be rendered (kubectl 1.27+ " \
                    "with kustomize 5)";                                                         \
  }

// One overlay of deploy/k8s, rendered once per test.
class Overlay : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_KUBECTL();
    auto objects = Render(SourcePath("deploy/k8s/" + GetParam()));
    ASSERT_TRUE(objects.ok()) << objects.status();
    objects_ = *objects;
    workloads_ = Workloads(objects_);
    for (const char* name :
         {"rally-control", "rally-replay", "rally-learner", "rally-actor", "rally-evaluator"}) {
      bool found = false;
      for (const Workload& w : workloads_) found |= w.name == name && !w.containers().empty();
      ASSERT_TRUE(found) << GetParam() << " has no workload " << name;
    }
  }

  const Workload& Named(const std::string& name) const {
    for (const Workload& w : workloads_) {
      if (w.name == name) return w;
    }
    std::abort();  // SetUp asserted that every workload exists
  }

  std::vector<YAML::Node> objects_;
  std::vector<Workload> workloads_;
};

TEST_P(Overlay, EveryFlagAndEnvironmentVariableIsOneTheBinaryAccepts) {
  for (const Workload& w : workloads_) {
    for (const YAML::Node& c : w.containers()) {
      const std::string where =
          absl::StrCat(GetParam(), " ", w.name, "/", c["name"].as<std::string>());
      const std::string program = ContainerProgram(c);
      ASSERT_TRUE(absl::StartsWith(program, "rally"))
          << where << " runs " << program << ", not a rally binary";
      auto accepted = ReadBinaryInterface(BinaryPath(program));
      ASSERT_TRUE(accepted.ok()) << where << ": " << accepted.status();
      for (const auto& [flag, value] : ContainerFlags(c)) {
        EXPECT_TRUE(accepted->flags.count(flag))
            << where << ": " << program << " has no --" << flag;
      }
      // Variables that Kubernetes substitutes into the command ($(POD_NAME)) need no binary.
      std::string substituted;
      for (const YAML::Node& a : c["args"]) absl::StrAppend(&substituted, a.as<std::string>(), " ");
      for (const YAML::Node& e : c["env"]) {
        if (e["value"]) absl::StrAppend(&substituted, e["value"].as<std::string>(), " ");
      }
      std::set<std::string> defined;
      for (const YAML::Node& e : c["env"]) {
        const std::string name = e["name"].as<std::string>();
        defined.insert(name);
        EXPECT_TRUE(accepted->env.count(name) ||
                    absl::StrContains(substituted, absl::StrCat("$(", name, ")")))
            << where << ": " << program << " does not read environment variable " << name;
      }
      // A reference to an undefined variable would reach the binary as the literal "$(NAME)".
      static const std::regex kReference(R"(\$\(([A-Za-z_][A-Za-z0-9_]*)\))");
      for (auto it = std::sregex_iterator(substituted.begin(), substituted.end(), kReference);
           it != std::sregex_iterator(); ++it) {
        EXPECT_TRUE(defined.count((*it)[1]))
            << where << " refers to undefined $(" << (*it)[1] << ")";
      }
    }
  }
}

TEST_P(Overlay, PortsAgreeBetweenFlagsContainersProbesAndAnnotations) {
  for (const Workload& w : workloads_) {
    for (const YAML::Node& c : w.containers()) {
      const std::string where = absl::StrCat(GetParam(), " ", w.name);
      const auto flags = ContainerFlags(c);
      // Port 0 would pick a free port that nothing else knows: every port is fixed by a flag.
      const std::optional<int> metrics = ContainerPort(c, "metrics");
      ASSERT_TRUE(metrics.has_value()) << where << " declares no metrics port";
      ASSERT_TRUE(flags.count("metrics_port")) << where;
      EXPECT_EQ(flags.at("metrics_port"), absl::StrCat(*metrics)) << where;
      const YAML::Node annotations = w.object["spec"]["template"]["metadata"]["annotations"];
      EXPECT_EQ(annotations["prometheus.io/port"].as<std::string>(), absl::StrCat(*metrics))
          << where;
      if (const std::optional<int> grpc = ContainerPort(c, "grpc")) {
        ASSERT_TRUE(flags.count("port")) << where << " serves gRPC on a port no flag fixes";
        EXPECT_EQ(flags.at("port"), absl::StrCat(*grpc)) << where;
      }
      for (const char* probe : {"readinessProbe", "livenessProbe"}) {
        const YAML::Node p = c[probe];
        ASSERT_TRUE(p) << where << " has no " << probe;
        std::optional<int> port;
        if (p["grpc"]) port = ResolvePort(c, p["grpc"]["port"]);
        if (p["httpGet"]) port = ResolvePort(c, p["httpGet"]["port"]);
        if (p["tcpSocket"]) port = ResolvePort(c, p["tcpSocket"]["port"]);
        if (p["exec"]) {
          // An exec probe reads its ports on loopback, so the process binds all addresses; it
          // names the ports it reads among its arguments.
          EXPECT_EQ(EnvValue(c, "RALLY_HOST"), "0.0.0.0") << where;
          for (const YAML::Node& a : p["exec"]["command"]) {
            for (const std::optional<int> served : {metrics, ContainerPort(c, "grpc")}) {
              if (served && a.as<std::string>() == absl::StrCat(*served)) port = served;
            }
          }
        }
        ASSERT_TRUE(port.has_value()) << where << ": " << probe << " names no port it serves";
        EXPECT_TRUE(port == metrics || port == ContainerPort(c, "grpc"))
            << where << ": " << probe << " probes port " << *port << ", which it does not serve";
      }
    }
  }
}

// The kubelet's `grpc:` probe speaks plain text, which a mutual-TLS server refuses, so a gRPC
// server's probes connect to its gRPC port (tcpSocket) or run a script that names that port.
TEST_P(Overlay, EveryGrpcServerHasProbesOfItsGrpcPortThatWorkUnderMutualTls) {
  for (const Workload& w : workloads_) {
    ASSERT_EQ(w.containers().size(), 1u) << w.name;
    const YAML::Node c = w.containers()[0];
    const bool server = GrpcServers().count(ContainerProgram(c)) > 0;
    EXPECT_EQ(server, GrpcServers().count(w.name) > 0) << w.name << " runs " << ContainerProgram(c);
    const std::optional<int> grpc = ContainerPort(c, "grpc");
    EXPECT_EQ(grpc.has_value(), server) << w.name << ": a grpc port if and only if it serves gRPC";
    for (const char* probe : {"readinessProbe", "livenessProbe"}) {
      EXPECT_FALSE(c[probe]["grpc"]) << w.name << ": " << probe << " is a plain-text gRPC probe";
      if (!server || !grpc) continue;
      bool probes_grpc =
          c[probe]["tcpSocket"] && ResolvePort(c, c[probe]["tcpSocket"]["port"]) == grpc;
      if (c[probe]["exec"]) {
        for (const YAML::Node& a : c[probe]["exec"]["command"]) {
          probes_grpc |= a.as<std::string>() == absl::StrCat(*grpc);
        }
      }
      EXPECT_TRUE(probes_grpc) << w.name << ": " << probe << " does not probe gRPC port " << *grpc;
    }
  }
}

TEST_P(Overlay, EveryServicePortReachesAPortOfTheWorkloadItSelects) {
  const auto services = ObjectsOfKind(objects_, "Service");
  ASSERT_EQ(services.size(), 3u);  // control, replay, learner (headless)
  for (const YAML::Node& s : services) {
    const std::string name = s["metadata"]["name"].as<std::string>();
    std::vector<const Workload*> selected;
    for (const Workload& w : workloads_) {
      bool all = true;
      for (const auto& kv : s["spec"]["selector"]) {
        const YAML::Node label = w.pod_labels()[kv.first.as<std::string>()];
        all = all && label && label.as<std::string>() == kv.second.as<std::string>();
      }
      if (all) selected.push_back(&w);
    }
    ASSERT_EQ(selected.size(), 1u) << "Service " << name << " must select exactly one workload";
    const YAML::Node c = selected[0]->containers()[0];
    for (const YAML::Node& p : s["spec"]["ports"]) {
      const std::optional<int> target = ResolvePort(c, p["targetPort"]);
      ASSERT_TRUE(target.has_value())
          << "Service " << name << " port " << p["name"] << ": no such container port";
      EXPECT_EQ(p["port"].as<int>(), *target) << "Service " << name;
    }
  }
}

TEST_P(Overlay, WorkersDialControlAndRankZeroThroughServicePorts) {
  const YAML::Node control = Named("rally-control").containers()[0];
  const std::string control_address =
      absl::StrCat("rally-control:", *ContainerPort(control, "grpc"));
  for (const Workload& w : workloads_) {
    if (w.name == "rally-control") continue;
    EXPECT_EQ(EnvValue(w.containers()[0], "RALLY_CONTROL"), control_address) << w.name;
  }
  const Workload& learner = Named("rally-learner");
  const YAML::Node c = learner.containers()[0];
  EXPECT_EQ(
      EnvValue(c, "MASTER_ADDR"),
      absl::StrCat("rally-learner-0.", learner.object["spec"]["serviceName"].as<std::string>()));
  EXPECT_EQ(EnvValue(c, "MASTER_PORT"), absl::StrCat(*ContainerPort(c, "c10d")));
}

TEST_P(Overlay, LearnerRankIsThePodOrdinalAndWorldSizeTheReplicaCount) {
  const Workload& learner = Named("rally-learner");
  ASSERT_EQ(learner.kind, "StatefulSet");
  const YAML::Node c = learner.containers()[0];
  EXPECT_EQ(EnvValue(c, "WORLD_SIZE"), learner.object["spec"]["replicas"].as<std::string>());
  bool rank_from_ordinal = false;
  for (const YAML::Node& e : c["env"]) {
    if (e["name"].as<std::string>() != "RANK") continue;
    rank_from_ordinal = e["valueFrom"]["fieldRef"]["fieldPath"].as<std::string>() ==
                        "metadata.labels['apps.kubernetes.io/pod-index']";
  }
  EXPECT_TRUE(rank_from_ordinal) << "RANK must come from the pod-index label";
}

// A volume mount at or above `path` in `workload`'s container, backed by a volume claim
// (a claim template, or a persistentVolumeClaim volume); empty if there is none.
std::string ClaimHolding(const Workload& w, const std::string& path) {
  std::set<std::string> claims;
  for (const YAML::Node& t : w.object["spec"]["volumeClaimTemplates"]) {
    claims.insert(t["metadata"]["name"].as<std::string>());
  }
  for (const YAML::Node& v : w.pod_spec()["volumes"]) {
    if (v["persistentVolumeClaim"]) claims.insert(v["name"].as<std::string>());
  }
  for (const YAML::Node& m : w.containers()[0]["volumeMounts"]) {
    const std::string mount = m["mountPath"].as<std::string>();
    if ((path == mount || absl::StartsWith(path, mount + "/")) &&
        claims.count(m["name"].as<std::string>())) {
      return m["name"].as<std::string>();
    }
  }
  return "";
}

TEST_P(Overlay, DurableDataLivesOnVolumeClaims) {
  const Workload& replay = Named("rally-replay");
  EXPECT_EQ(replay.kind, "StatefulSet");
  const auto replay_flags = ContainerFlags(replay.containers()[0]);
  ASSERT_TRUE(replay_flags.count("data_dir")) << "the replay runs without its write-ahead log";
  EXPECT_NE(ClaimHolding(replay, replay_flags.at("data_dir")), "")
      << "the replay's --data_dir is not on a volume claim";
  const Workload& learner = Named("rally-learner");
  EXPECT_NE(ClaimHolding(learner, ContainerFlags(learner.containers()[0]).at("checkpoint_dir")),
            "");
  const Workload& control = Named("rally-control");
  const std::string db = ContainerFlags(control.containers()[0]).at("db");
  EXPECT_NE(ClaimHolding(control, std::filesystem::path(db).parent_path().string()), "");
}

TEST_P(Overlay, EveryPodRunsRestrictedWithResourcesAndAWritableTmp) {
  for (const Workload& w : workloads_) {
    const YAML::Node pod = w.pod_spec()["securityContext"];
    EXPECT_TRUE(pod["runAsNonRoot"].as<bool>()) << w.name;
    EXPECT_EQ(pod["seccompProfile"]["type"].as<std::string>(), "RuntimeDefault") << w.name;
    for (const YAML::Node& c : w.containers()) {
      const YAML::Node sc = c["securityContext"];
      EXPECT_FALSE(sc["allowPrivilegeEscalation"].as<bool>(true)) << w.name;
      EXPECT_TRUE(sc["readOnlyRootFilesystem"].as<bool>(false)) << w.name;
      ASSERT_TRUE(sc["capabilities"]["drop"]) << w.name;
      EXPECT_EQ(sc["capabilities"]["drop"][0].as<std::string>(), "ALL") << w.name;
      for (const char* bound : {"requests", "limits"}) {
        for (const char* resource : {"cpu", "memory"}) {
          EXPECT_TRUE(c["resources"][bound][resource]) << w.name << " " << bound << "." << resource;
        }
      }
      bool tmp_on_empty_dir = false;
      for (const YAML::Node& m : c["volumeMounts"]) {
        if (m["mountPath"].as<std::string>() != "/tmp") continue;
        for (const YAML::Node& v : w.pod_spec()["volumes"]) {
          tmp_on_empty_dir |= v["name"].as<std::string>() == m["name"].as<std::string>() &&
                              v["emptyDir"].IsDefined();
        }
      }
      EXPECT_TRUE(tmp_on_empty_dir) << w.name << ": /tmp must be an emptyDir";
    }
  }
}

TEST_P(Overlay, OnlyTheGpuOverlayAsksForGpus) {
  const YAML::Node limits = Named("rally-learner").containers()[0]["resources"]["limits"];
  EXPECT_EQ(limits["nvidia.com/gpu"].IsDefined(), GetParam() == "overlays/gpu");
  for (const Workload& w : workloads_) {
    if (w.name == "rally-learner") continue;
    EXPECT_FALSE(w.containers()[0]["resources"]["limits"]["nvidia.com/gpu"]) << w.name;
  }
}

TEST_P(Overlay, ControlMountsTheJobSpecsOfConfigs) {
  const auto maps = ObjectsOfKind(objects_, "ConfigMap", "rally-jobs");
  ASSERT_EQ(maps.size(), 1u);
  EXPECT_EQ(maps[0]["data"]["tictactoe.yaml"].as<std::string>(),
            ReadText(SourcePath("configs/tictactoe.yaml")));
  const Workload& control = Named("rally-control");
  bool mounted = false;
  for (const YAML::Node& v : control.pod_spec()["volumes"]) {
    mounted |= v["configMap"] && v["configMap"]["name"].as<std::string>() ==
                                     maps[0]["metadata"]["name"].as<std::string>();
  }
  EXPECT_TRUE(mounted);
}

INSTANTIATE_TEST_SUITE_P(Manifests, Overlay, ::testing::Values("overlays/cpu", "overlays/gpu"),
                         [](const auto& info) { return info.param.substr(9); });

TEST(Manifests, WorldSizeFollowsTheLearnerCountOfAnOverlay) {
  SKIP_WITHOUT_KUBECTL();
  // A copy of deploy/k8s whose cpu overlay asks for 3 learners, as an operator scales them.
  const std::filesystem::path copy =
      std::filesystem::temp_directory_path() / absl::StrCat("rally-k8s-", getpid());
  std::filesystem::remove_all(copy);
  std::filesystem::copy(SourcePath("deploy/k8s"), copy, std::filesystem::copy_options::recursive);
  const std::string kustomization = (copy / "overlays/cpu/kustomization.yaml").string();
  const std::string text = ReadText(kustomization);
  const std::regex learner_count(R"((- name: rally-learner\n\s+count: )\d+)");
  ASSERT_TRUE(std::regex_search(text, learner_count));
  std::ofstream(kustomization) << std::regex_replace(text, learner_count, "$013");
  auto objects = Render((copy / "overlays/cpu").string());
  std::filesystem::remove_all(copy);
  ASSERT_TRUE(objects.ok()) << objects.status();
  for (const Workload& w : Workloads(*objects)) {
    if (w.name != "rally-learner") continue;
    EXPECT_EQ(w.object["spec"]["replicas"].as<int>(), 3);
    EXPECT_EQ(EnvValue(w.containers()[0], "WORLD_SIZE"), "3");
  }
}

// `node` as text with every map's keys sorted: kustomize reorders keys, which changes no meaning.
std::string Canonical(const YAML::Node& node) {
  if (node.IsMap()) {
    std::map<std::string, std::string> entries;
    for (const auto& kv : node) entries[kv.first.as<std::string>()] = Canonical(kv.second);
    std::string out = "{";
    for (const auto& [k, v] : entries) absl::StrAppend(&out, k, ": ", v, ", ");
    return out + "}";
  }
  if (node.IsSequence()) {
    std::string out = "[";
    for (const YAML::Node& item : node) absl::StrAppend(&out, Canonical(item), ", ");
    return out + "]";
  }
  return node.IsScalar() ? absl::StrCat("'", node.as<std::string>(), "'") : "~";
}

TEST(Manifests, PrometheusRuleAndPlainRulesCarryDeployPrometheusRules) {
  SKIP_WITHOUT_KUBECTL();
  const std::string rules = ReadText(SourcePath("deploy/prometheus/rules.yml"));
  const std::string fix = "; run deploy/k8s/monitoring/sync-rules.sh";
  EXPECT_EQ(ReadText(SourcePath("deploy/k8s/monitoring/plain/rules.yml")), rules)
      << "deploy/k8s/monitoring/plain/rules.yml differs from deploy/prometheus/rules.yml" << fix;
  auto objects = Render(SourcePath("deploy/k8s/monitoring/operator"));
  ASSERT_TRUE(objects.ok()) << objects.status();
  const auto rule = ObjectsOfKind(*objects, "PrometheusRule");
  ASSERT_EQ(rule.size(), 1u);
  EXPECT_EQ(Canonical(rule[0]["spec"]["groups"]), Canonical(YAML::Load(rules)["groups"]))
      << "the PrometheusRule's groups differ from deploy/prometheus/rules.yml" << fix;
  // The PodMonitor labels targets as the rules expect: job rally-pods, and the component.
  const auto monitor = ObjectsOfKind(*objects, "PodMonitor");
  ASSERT_EQ(monitor.size(), 1u);
  const std::string relabel = YAML::Dump(monitor[0]["spec"]["podMetricsEndpoints"][0]);
  EXPECT_TRUE(absl::StrContains(relabel, "replacement: rally-pods")) << relabel;
  EXPECT_TRUE(absl::StrContains(relabel, "targetLabel: component")) << relabel;
}

TEST(Manifests, PlainPrometheusRenders) {
  SKIP_WITHOUT_KUBECTL();
  auto objects = Render(SourcePath("deploy/k8s/monitoring/plain"));
  ASSERT_TRUE(objects.ok()) << objects.status();
  const auto config = ObjectsOfKind(*objects, "ConfigMap", "rally-prometheus");
  ASSERT_EQ(config.size(), 1u);
  const YAML::Node prometheus = YAML::Load(config[0]["data"]["prometheus.yml"].as<std::string>());
  EXPECT_EQ(prometheus["scrape_configs"][0]["job_name"].as<std::string>(), "rally-pods");
  EXPECT_TRUE(prometheus["scrape_configs"][0]["kubernetes_sd_configs"]);
}

}  // namespace
}  // namespace rally::deploy
