// Test helpers for deploy/: running commands, rendering kustomizations with `kubectl kustomize`,
// and reading the rendered objects (workloads, their containers, flags and ports).
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rally::deploy {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `command` with /bin/sh and waits for it.
CommandResult RunCommand(const std::string& command);
// Whether `program` is on PATH.
bool HaveProgram(const std::string& program);
// `path` relative to the repository root.
std::string SourcePath(const std::string& relative);
std::string ReadText(const std::string& path);

// `kubectl kustomize DIR`, parsed: one node per rendered object. An error names DIR and carries
// kubectl's message.
absl::StatusOr<std::vector<YAML::Node>> Render(const std::string& dir);

// A Deployment or StatefulSet of a rendered kustomization.
struct Workload {
  std::string kind;
  std::string name;
  YAML::Node object;

  YAML::Node pod_spec() const { return object["spec"]["template"]["spec"]; }
  YAML::Node pod_labels() const { return object["spec"]["template"]["metadata"]["labels"]; }
  std::vector<YAML::Node> containers() const;
};

std::vector<Workload> Workloads(const std::vector<YAML::Node>& objects);
// The objects of `kind`; with `name_prefix`, only those whose name starts with it (generated
// ConfigMaps carry a hash suffix).
std::vector<YAML::Node> ObjectsOfKind(const std::vector<YAML::Node>& objects,
                                      const std::string& kind, const std::string& name_prefix = "");

// The container's command-line flags, `--name=value` (or `--name` alone, value "") from its
// command (after the program) and args.
std::map<std::string, std::string> ContainerFlags(const YAML::Node& container);
// The program the container runs: command[0].
std::string ContainerProgram(const YAML::Node& container);
// The containerPort named `name`, if any.
std::optional<int> ContainerPort(const YAML::Node& container, const std::string& name);
// A probe's or Service's port (a number, or the name of one of the container's ports) as a number.
std::optional<int> ResolvePort(const YAML::Node& container, const YAML::Node& port);
// The value of env var `name` given as a plain value; nullopt if absent or set with valueFrom.
std::optional<std::string> EnvValue(const YAML::Node& container, const std::string& name);

// What a rally binary accepts, read from its `--helpfull`: its flags, and the environment
// variables its help text names ("env NAME" or "$NAME").
struct BinaryInterface {
  std::set<std::string> flags;
  std::set<std::string> env;
};
absl::StatusOr<BinaryInterface> ReadBinaryInterface(const std::string& binary_path);

// A pod (or any client) as a NetworkPolicy sees it: its namespace, that namespace's labels and its
// own labels. `container` is the container whose named ports a policy's `port: NAME` refers to.
struct PodIdentity {
  std::string name;  // for messages
  std::string namespace_name;
  std::map<std::string, std::string> namespace_labels;
  std::map<std::string, std::string> labels;
  YAML::Node container;
};

// The labels of `w`'s pods; a StatefulSet's pod `ordinal` also carries its pod-index label.
std::map<std::string, std::string> PodLabels(const Workload& w, int ordinal = 0);
// Whether a LabelSelector selects `labels`. Supports matchLabels and matchExpressions (In, NotIn,
// Exists, DoesNotExist); an empty selector selects everything.
bool SelectorMatches(const YAML::Node& selector, const std::map<std::string, std::string>& labels);
// The NetworkPolicies of `objects` that select `pod` for ingress (policyTypes names Ingress, or
// is absent).
std::vector<YAML::Node> IngressPoliciesSelecting(const std::vector<YAML::Node>& objects,
                                                 const PodIdentity& pod);
// Whether Kubernetes lets `source` open a TCP connection to port `port` of `target` under the
// NetworkPolicies of `objects`: a written-out reading of the NetworkPolicy API's semantics
// (networking.k8s.io/v1), for peers given by podSelector and namespaceSelector (an ipBlock peer
// matches no pod). A pod that no policy selects for ingress accepts everything.
bool IngressAllowed(const std::vector<YAML::Node>& objects, const PodIdentity& source,
                    const PodIdentity& target, int port);

}  // namespace rally::deploy
