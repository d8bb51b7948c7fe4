#include "tests/deploy/manifests.h"

#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rally::deploy {

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

bool HaveProgram(const std::string& program) {
  return RunCommand("command -v " + program).exit_code == 0;
}

std::string SourcePath(const std::string& relative) {
  return std::string(RALLY_SOURCE_DIR) + "/" + relative;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<std::vector<YAML::Node>> Render(const std::string& dir) {
  CommandResult r = RunCommand("kubectl kustomize " + dir);
  if (r.exit_code != 0) {
    return absl::InvalidArgumentError(absl::StrCat("kubectl kustomize ", dir, ": ", r.output));
  }
  try {
    std::vector<YAML::Node> objects;
    for (const YAML::Node& object : YAML::LoadAll(r.output)) {
      if (object.IsMap()) objects.push_back(object);
    }
    return objects;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("rendering of ", dir, ": ", e.what()));
  }
}

std::vector<YAML::Node> Workload::containers() const {
  std::vector<YAML::Node> out;
  for (const YAML::Node& c : pod_spec()["containers"]) out.push_back(c);
  return out;
}

std::vector<Workload> Workloads(const std::vector<YAML::Node>& objects) {
  std::vector<Workload> out;
  for (const YAML::Node& o : objects) {
    const std::string kind = o["kind"].as<std::string>();
    if (kind == "Deployment" || kind == "StatefulSet") {
      out.push_back({kind, o["metadata"]["name"].as<std::string>(), o});
    }
  }
  return out;
}

std::vector<YAML::Node> ObjectsOfKind(const std::vector<YAML::Node>& objects,
                                      const std::string& kind, const std::string& name_prefix) {
  std::vector<YAML::Node> out;
  for (const YAML::Node& o : objects) {
    if (o["kind"].as<std::string>() == kind &&
        absl::StartsWith(o["metadata"]["name"].as<std::string>(), name_prefix)) {
      out.push_back(o);
    }
  }
  return out;
}

std::map<std::string, std::string> ContainerFlags(const YAML::Node& container) {
  std::vector<std::string> words;
  if (container["command"]) {
    for (size_t i = 1; i < container["command"].size(); ++i) {
      words.push_back(container["command"][i].as<std::string>());
    }
  }
  for (const YAML::Node& a : container["args"]) words.push_back(a.as<std::string>());
  std::map<std::string, std::string> flags;
  for (const std::string& w : words) {
    if (!absl::StartsWith(w, "--")) continue;
    const size_t eq = w.find('=');
    flags[w.substr(2, eq == std::string::npos ? std::string::npos : eq - 2)] =
        eq == std::string::npos ? "" : w.substr(eq + 1);
  }
  return flags;
}

std::string ContainerProgram(const YAML::Node& container) {
  return container["command"] && container["command"].size() > 0
             ? container["command"][0].as<std::string>()
             : "";
}

std::optional<int> ContainerPort(const YAML::Node& container, const std::string& name) {
  for (const YAML::Node& p : container["ports"]) {
    if (p["name"] && p["name"].as<std::string>() == name) return p["containerPort"].as<int>();
  }
  return std::nullopt;
}

std::optional<int> ResolvePort(const YAML::Node& container, const YAML::Node& port) {
  if (!port) return std::nullopt;
  int number = 0;
  if (absl::SimpleAtoi(port.as<std::string>(), &number)) return number;
  return ContainerPort(container, port.as<std::string>());
}

std::optional<std::string> EnvValue(const YAML::Node& container, const std::string& name) {
  for (const YAML::Node& e : container["env"]) {
    if (e["name"].as<std::string>() == name && e["value"]) return e["value"].as<std::string>();
  }
  return std::nullopt;
}

absl::StatusOr<BinaryInterface> ReadBinaryInterface(const std::string& binary_path) {
  CommandResult r = RunCommand(binary_path + " --helpfull");
  BinaryInterface out;
  static const std::regex kFlag(R"(^    --([A-Za-z0-9_]+) \()");
  static const std::regex kEnv(R"((?:env |\$)([A-Z][A-Z0-9_]+))");
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m;
    if (std::regex_search(line, m, kFlag)) out.flags.insert(m[1]);
  }
  // Help text wraps lines, also between "env" and the variable's name.
  const std::string text = std::regex_replace(r.output, std::regex(R"(\s+)"), " ");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), kEnv); it != std::sregex_iterator();
       ++it) {
    out.env.insert((*it)[1]);
  }
  if (out.flags.empty()) {
    return absl::NotFoundError(absl::StrCat(binary_path, " --helpfull lists no flags (exit ",
                                            r.exit_code, "): ", r.output.substr(0, 500)));
  }
  return out;
}

std::map<std::string, std::string> PodLabels(const Workload& w, int ordinal) {
  std::map<std::string, std::string> labels;
  for (const auto& kv : w.pod_labels()) {
    labels[kv.first.as<std::string>()] = kv.second.as<std::string>();
  }
  if (w.kind == "StatefulSet") labels["apps.kubernetes.io/pod-index"] = absl::StrCat(ordinal);
  return labels;
}

namespace {

bool ExpressionMatches(const YAML::Node& e, const std::map<std::string, std::string>& labels) {
  const auto it = labels.find(e["key"].as<std::string>());
  const std::string op = e["operator"].as<std::string>();
  if (op == "Exists") return it != labels.end();
  if (op == "DoesNotExist") return it == labels.end();
  bool listed = false;
  for (const YAML::Node& v : e["values"]) {
    listed |= it != labels.end() && v.as<std::string>() == it->second;
  }
  if (op == "In") return listed;
  if (op == "NotIn") return !listed;
  return false;  // an operator the API does not have selects nothing
}

bool PeerMatches(const YAML::Node& peer, const std::string& policy_namespace,
                 const PodIdentity& source) {
  if (peer["ipBlock"]) return false;
  const YAML::Node pods = peer["podSelector"];
  const YAML::Node namespaces = peer["namespaceSelector"];
  if (!pods && !namespaces) return false;
  // A podSelector alone means pods of the policy's own namespace.
  const bool namespace_ok = namespaces ? SelectorMatches(namespaces, source.namespace_labels)
                                       : source.namespace_name == policy_namespace;
  return namespace_ok && (!pods || SelectorMatches(pods, source.labels));
}

bool PortMatches(const YAML::Node& rule_port, const PodIdentity& target, int port) {
  if (rule_port["protocol"] && rule_port["protocol"].as<std::string>() != "TCP") return false;
  if (!rule_port["port"]) return true;
  int number = 0;
  if (!absl::SimpleAtoi(rule_port["port"].as<std::string>(), &number)) {
    return ContainerPort(target.container, rule_port["port"].as<std::string>()) == port;
  }
  const int end = rule_port["endPort"] ? rule_port["endPort"].as<int>() : number;
  return number <= port && port <= end;
}

bool RuleAllows(const YAML::Node& rule, const std::string& policy_namespace,
                const PodIdentity& source, const PodIdentity& target, int port) {
  bool from = !rule["from"] || rule["from"].size() == 0;
  for (const YAML::Node& peer : rule["from"]) from |= PeerMatches(peer, policy_namespace, source);
  bool to_port = !rule["ports"] || rule["ports"].size() == 0;
  for (const YAML::Node& p : rule["ports"]) to_port |= PortMatches(p, target, port);
  return from && to_port;
}

}  // namespace

bool SelectorMatches(const YAML::Node& selector, const std::map<std::string, std::string>& labels) {
  for (const auto& kv : selector["matchLabels"]) {
    const auto it = labels.find(kv.first.as<std::string>());
    if (it == labels.end() || it->second != kv.second.as<std::string>()) return false;
  }
  for (const YAML::Node& e : selector["matchExpressions"]) {
    if (!ExpressionMatches(e, labels)) return false;
  }
  return true;
}

std::vector<YAML::Node> IngressPoliciesSelecting(const std::vector<YAML::Node>& objects,
                                                 const PodIdentity& pod) {
  std::vector<YAML::Node> out;
  for (const YAML::Node& policy : ObjectsOfKind(objects, "NetworkPolicy")) {
    const YAML::Node ns = policy["metadata"]["namespace"];
    if ((ns ? ns.as<std::string>() : "default") != pod.namespace_name) continue;
    if (!SelectorMatches(policy["spec"]["podSelector"], pod.labels)) continue;
    bool ingress = !policy["spec"]["policyTypes"];
    for (const YAML::Node& t : policy["spec"]["policyTypes"])
      ingress |= t.as<std::string>() == "Ingress";
    if (ingress) out.push_back(policy);
  }
  return out;
}

bool IngressAllowed(const std::vector<YAML::Node>& objects, const PodIdentity& source,
                    const PodIdentity& target, int port) {
  const std::vector<YAML::Node> policies = IngressPoliciesSelecting(objects, target);
  if (policies.empty()) return true;
  for (const YAML::Node& policy : policies) {
    for (const YAML::Node& rule : policy["spec"]["ingress"]) {
      if (RuleAllows(rule, target.namespace_name, source, target, port)) return true;
    }
  }
  return false;
}

}  // namespace rally::deploy
