// Monitoring against the real tools: a `rally run` cluster runs a job while Debian's Prometheus
// server scrapes every process with deploy/prometheus's configuration and alert rules (scrape and
// evaluation every second, targets written from the processes' logs). The test reads
// Prometheus's HTTP API: every process kind is up, counters rise, every dashboard panel's query
// and every metric an alert rule reads returns a series, no alert fires; then the replay is
// stopped (SIGSTOP) and RallyProcessDown fires. It also holds every process's /metrics to
// promtool's lint and to the catalogue in docs/metrics.md, and runs promtool on deploy/prometheus.
// Skipped only when the prometheus or promtool binary is missing (deploy/local/install-deps.sh
// installs them).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/net/free_port.h"
#include "nlohmann/json.hpp"
#include "tests/integration/process.h"

namespace rally {
namespace {

using namespace std::chrono_literals;
using testing::HttpGet;
using testing::ReadFile;
using testing::SourcePath;
namespace fs = std::filesystem;

constexpr char kPrometheus[] = "/usr/bin/prometheus";
constexpr char kPromtool[] = "/usr/bin/promtool";
// The Prometheus job name of deploy/prometheus/prometheus.yml's local scrape configuration.
constexpr char kJob[] = "rally-local";

// Metrics that the test's job cannot export, with the reason; a dashboard query that reads only
// these may return nothing.
const std::map<std::string, std::string>& NotInThisJob() {
  static const auto* const metrics = new std::map<std::string, std::string>{
      {"rally_evaluator_invalid_answer_ratio", "language-model jobs only"}};
  return *metrics;
}

// Runs `command` with `input` on its stdin; returns its exit status and output.
std::pair<int, std::string> RunCommand(const std::string& command, const std::string& input = "") {
  const std::string out_path = testing::TempDir("run_out") + "/out";
  FILE* pipe = popen((command + " >" + out_path + " 2>&1").c_str(), "w");
  if (pipe == nullptr) return {-1, "popen failed"};
  fwrite(input.data(), 1, input.size(), pipe);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ReadFile(out_path)};
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// A dashboard query as Prometheus runs it: Grafana's variables replaced.
std::string Substitute(const std::string& expr) {
  return absl::StrReplaceAll(expr, {{"$job", kJob}, {"$__rate_interval", "10s"}});
}

// The vector selectors of a PromQL expression (`name` or `name{matchers}`): every metric it
// reads. A small tokenizer: skips strings, durations, numbers, keywords with their label lists,
// function and aggregation names.
std::vector<std::string> VectorSelectors(const std::string& q) {
  static const std::set<std::string> kLabelListKeywords = {"by",       "without",    "on",
                                                           "ignoring", "group_left", "group_right"};
  static const std::set<std::string> kOtherWords = {
      "and",   "or",     "unless", "bool",  "offset", "sum",     "min",          "max",     "avg",
      "group", "stddev", "stdvar", "count", "topk",   "bottomk", "count_values", "quantile"};
  auto skip_to = [&](size_t i, char open, char close) {
    int depth = 0;
    for (; i < q.size(); ++i) {
      if (q[i] == '"') i = q.find('"', i + 1);
      if (i == std::string::npos) return q.size();
      if (q[i] == open) ++depth;
      if (q[i] == close && --depth == 0) return i + 1;
    }
    return i;
  };
  std::vector<std::string> out;
  size_t i = 0;
  while (i < q.size()) {
    const char c = q[i];
    if (c == '"') {
      i = q.find('"', i + 1) + 1;
    } else if (c == '[') {
      i = q.find(']', i) + 1;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      while (i < q.size() && (std::isalnum(static_cast<unsigned char>(q[i])) || q[i] == '.')) ++i;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':') {
      size_t end = i;
      while (end < q.size() &&
             (std::isalnum(static_cast<unsigned char>(q[end])) || q[end] == '_' || q[end] == ':')) {
        ++end;
      }
      const std::string word = q.substr(i, end - i);
      size_t next = end;
      while (next < q.size() && q[next] == ' ') ++next;
      i = end;
      if (kLabelListKeywords.count(word) && next < q.size() && q[next] == '(') {
        i = skip_to(next, '(', ')');
      } else if (kOtherWords.count(word) || (next < q.size() && q[next] == '(')) {
        // an operator, a function or an aggregation: its arguments are read on
      } else {
        if (next < q.size() && q[next] == '{') {
          const size_t close = skip_to(next, '{', '}');
          out.push_back(word + q.substr(next, close - next));
          i = close;
        } else {
          out.push_back(word);
        }
      }
    } else {
      ++i;
    }
  }
  return out;
}

TEST(MonitoringPromql, VectorSelectorsFindEveryMetricAndNothingElse) {
  EXPECT_EQ(VectorSelectors(
                "histogram_quantile(0.99, sum by (instance, le) (rate(a_bucket{x=\"1\"}[5m]))) > "
                "0.5 and on() max(b) == 1"),
            (std::vector<std::string>{"a_bucket{x=\"1\"}", "b"}));
  EXPECT_EQ(VectorSelectors("(scalar(max(v)) - w{c=\"actor\"}) / scalar(sum(deriv(v[2m])) > 0) "
                            "> 60"),
            (std::vector<std::string>{"v", "w{c=\"actor\"}", "v"}));
  EXPECT_EQ(VectorSelectors("count(ALERTS{alertstate=\"firing\", a=~\"R.*\"}) or vector(0)"),
            (std::vector<std::string>{"ALERTS{alertstate=\"firing\", a=~\"R.*\"}"}));
  EXPECT_EQ(VectorSelectors("up{job=~\"rally.*\"} == 0"),
            (std::vector<std::string>{"up{job=~\"rally.*\"}"}));
  EXPECT_EQ(VectorSelectors("x > 1.5 * min_over_time(x[1h]) + 0.05"),
            (std::vector<std::string>{"x", "x"}));
}

// A Prometheus server on loopback, with its data in a temporary directory.
class PrometheusServer {
 public:
  PrometheusServer(const std::string& dir, const std::string& config) : dir_(dir) {
    address_ = absl::StrCat("127.0.0.1:", FreePort());
    process_ = std::make_unique<testing::Process>(
        kPrometheus,
        std::vector<std::string>{"--config.file=" + config, "--storage.tsdb.path=" + dir + "/data",
                                 "--web.listen-address=" + address_, "--log.level=warn"},
        dir + "/prometheus.log");
  }
  bool WaitReady(std::chrono::seconds timeout) {
    for (auto end = std::chrono::steady_clock::now() + timeout;
         std::chrono::steady_clock::now() < end; std::this_thread::sleep_for(200ms)) {
      if (HttpGet(address_, "/-/ready").find("Ready") != std::string::npos) return true;
    }
    return false;
  }
  // /api/v1/query's answer; {"status":"error",...} when Prometheus did not answer JSON.
  nlohmann::json Query(const std::string& promql) {
    const std::string body = HttpGet(address_, "/api/v1/query?query=" + UrlEncode(promql));
    auto parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded()) return {{"status", "error"}, {"error", "not JSON: " + body}};
    return parsed;
  }
  // The result vector of an instant query (empty on error).
  nlohmann::json Series(const std::string& promql) {
    nlohmann::json r = Query(promql);
    return r.value("status", "") == "success" ? r["data"]["result"] : nlohmann::json::array();
  }
  std::string log() const { return ReadFile(dir_ + "/prometheus.log"); }

 private:
  std::string dir_;
  std::string address_;
  std::unique_ptr<testing::Process> process_;
};

// One process of the cluster: its log name ("actor-1"), component ("actor") and /metrics.
struct Target {
  std::string name;
  std::string component;
  std::string metrics;  // host:port
  long long pid = -1;   // when its log says
};

// The metrics address of every process of the `rally run` at `workdir`, from their logs' first
// line that names one; waits up to `timeout` for `count` of them.
std::vector<Target> FindTargets(const std::string& workdir, size_t count,
                                std::chrono::seconds timeout) {
  std::vector<Target> out;
  for (auto end = std::chrono::steady_clock::now() + timeout;
       out.size() < count && std::chrono::steady_clock::now() < end;
       std::this_thread::sleep_for(200ms)) {
    out.clear();
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(workdir + "/logs", error)) {
      Target t{.name = entry.path().stem().string()};
      t.component = t.name.substr(0, t.name.find('-'));
      std::ifstream in(entry.path());
      for (std::string line; std::getline(in, line);) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.contains("metrics")) continue;
        t.metrics = j["metrics"].get<std::string>();
        t.pid = j.value("pid", -1LL);
        break;
      }
      if (!t.metrics.empty()) out.push_back(t);
    }
  }
  return out;
}

// deploy/prometheus's configuration for this cluster: every second, targets from `targets`, the
// rules from `rules`.
std::string LocalConfig(const std::string& targets, const std::string& rules) {
  YAML::Node config = YAML::LoadFile(SourcePath("deploy/prometheus/prometheus.yml"));
  config["global"]["scrape_interval"] = "1s";
  config["global"]["scrape_timeout"] = "800ms";
  config["global"]["evaluation_interval"] = "1s";
  config["rule_files"] = std::vector<std::string>{rules};
  for (YAML::Node job : config["scrape_configs"]) {
    for (YAML::Node sd : job["file_sd_configs"]) {
      sd["files"] = std::vector<std::string>{targets};
      sd["refresh_interval"] = "1s";
    }
  }
  YAML::Emitter out;
  out << config;
  return out.c_str();
}

// deploy/prometheus/rules.yml with RallyProcessDown's `for` shortened to `process_down_for`, so
// that the test sees it fire.
std::string LocalRules(const std::string& process_down_for) {
  YAML::Node rules = YAML::LoadFile(SourcePath("deploy/prometheus/rules.yml"));
  for (YAML::Node group : rules["groups"]) {
    for (YAML::Node rule : group["rules"]) {
      if (rule["alert"] && rule["alert"].as<std::string>() == "RallyProcessDown") {
        rule["for"] = process_down_for;
      }
    }
  }
  YAML::Emitter out;
  out << rules;
  return out.c_str();
}

// Every (dashboard file, panel title, expression) of deploy/grafana/dashboards.
struct PanelQuery {
  std::string where;
  std::string expr;
};
std::vector<PanelQuery> DashboardQueries() {
  std::vector<PanelQuery> out;
  for (const auto& entry : fs::directory_iterator(SourcePath("deploy/grafana/dashboards"))) {
    auto dashboard = nlohmann::json::parse(ReadFile(entry.path().string()));
    for (const auto& panel : dashboard["panels"]) {
      for (const auto& target : panel.value("targets", nlohmann::json::array())) {
        out.push_back({absl::StrCat(entry.path().filename().string(), ": ",
                                    panel["title"].get<std::string>()),
                       target["expr"].get<std::string>()});
      }
    }
  }
  return out;
}

// Every (alert name, expression) of deploy/prometheus/rules.yml.
std::vector<PanelQuery> RuleQueries() {
  std::vector<PanelQuery> out;
  YAML::Node rules = YAML::LoadFile(SourcePath("deploy/prometheus/rules.yml"));
  for (const YAML::Node& group : rules["groups"]) {
    for (const YAML::Node& rule : group["rules"]) {
      out.push_back({rule["alert"].as<std::string>(), rule["expr"].as<std::string>()});
    }
  }
  return out;
}

bool OnlyReadsMetricsNotInThisJob(const std::string& expr) {
  for (const std::string& s : VectorSelectors(expr)) {
    if (!NotInThisJob().count(s.substr(0, s.find('{')))) return false;
  }
  return true;
}

TEST(Monitoring, PromtoolAcceptsDeployPrometheus) {
  if (!fs::exists(kPromtool))
    GTEST_SKIP() << kPromtool << " is missing: install Debian's prometheus";
  auto [code, out] = RunCommand(
      absl::StrCat(kPromtool, " check config ", SourcePath("deploy/prometheus/prometheus.yml")));
  EXPECT_EQ(code, 0) << out;
  std::tie(code, out) = RunCommand(
      absl::StrCat(kPromtool, " check rules ", SourcePath("deploy/prometheus/rules.yml")));
  EXPECT_EQ(code, 0) << out;
  // Every file there is one of the two, or the example targets.
  for (const auto& entry : fs::directory_iterator(SourcePath("deploy/prometheus"))) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(name == "prometheus.yml" || name == "rules.yml" || name == "targets.example.json")
        << name << ": promtool checks neither as config nor as rules";
  }
}

// The alert rules against hand-made series (tests/unit/alert_rules_test.yml): each fires when and
// only when its comment says.
TEST(Monitoring, AlertRulesPassTheirUnitTests) {
  if (!fs::exists(kPromtool))
    GTEST_SKIP() << kPromtool << " is missing: install Debian's prometheus";
  auto [code, out] = RunCommand(
      absl::StrCat(kPromtool, " test rules ", SourcePath("tests/unit/alert_rules_test.yml")));
  EXPECT_EQ(code, 0) << out;
}

TEST(Monitoring, DashboardsAreWhatTheGeneratorWrites) {
  const std::string dir = testing::TempDir("dashboards");
  auto [code, out] =
      RunCommand(absl::StrCat("python3 ", SourcePath("deploy/grafana/generate.py"), " ", dir));
  ASSERT_EQ(code, 0) << out;
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string committed =
        SourcePath("deploy/grafana/dashboards/" + entry.path().filename().string());
    EXPECT_EQ(ReadFile(entry.path().string()), ReadFile(committed))
        << committed << " differs from what deploy/grafana/generate.py writes: run it";
    ++n;
  }
  EXPECT_EQ(n, 5u);  // overview, actors, replay, learner, evaluation
}

// Every family of a Prometheus text exposition: name -> (type, label names).
std::map<std::string, std::pair<std::string, std::set<std::string>>> Families(
    const std::string& exposition) {
  std::map<std::string, std::pair<std::string, std::set<std::string>>> out;
  for (absl::string_view line : absl::StrSplit(exposition, '\n')) {
    if (absl::ConsumePrefix(&line, "# TYPE ")) {
      std::vector<std::string> parts = absl::StrSplit(line, ' ');
      if (parts.size() == 2) out[parts[0]].first = parts[1];
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    const size_t brace = line.find('{');
    if (brace == absl::string_view::npos) continue;
    std::string name(line.substr(0, brace));
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (!out.count(name) && absl::EndsWith(name, suffix)) {
        name = name.substr(0, name.size() - strlen(suffix));
      }
    }
    const absl::string_view labels = line.substr(brace + 1, line.find('}') - brace - 1);
    for (absl::string_view pair : absl::StrSplit(labels, ',', absl::SkipEmpty())) {
      std::string label(pair.substr(0, pair.find('=')));
      if (label != "le" && label != "quantile") out[name].second.insert(label);
    }
  }
  return out;
}

// One row of docs/metrics.md's catalogue.
struct Catalogued {
  std::string type;
  std::set<std::string> labels;
  std::map<std::string, bool> exported_by;  // component -> always (false: in some jobs only)
};

// The catalogue: the table rows of docs/metrics.md that start with a `metric_name`.
std::map<std::string, Catalogued> Catalogue() {
  std::map<std::string, Catalogued> out;
  for (absl::string_view line : absl::StrSplit(ReadFile(SourcePath("docs/metrics.md")), '\n')) {
    if (!absl::ConsumePrefix(&line, "| `")) continue;
    std::vector<std::string> cells = absl::StrSplit(line, '|');
    if (cells.size() < 6) continue;
    for (std::string& c : cells) c = std::string(absl::StripAsciiWhitespace(c));
    const std::string name = cells[0].substr(0, cells[0].find('`'));
    Catalogued& row = out[name];
    row.type = cells[1];
    for (absl::string_view l : absl::StrSplit(cells[3], ',', absl::SkipWhitespace())) {
      row.labels.insert(std::string(absl::StripAsciiWhitespace(
          absl::StripSuffix(absl::StripPrefix(absl::StripAsciiWhitespace(l), "`"), "`"))));
    }
    for (absl::string_view c : absl::StrSplit(cells[4], ',', absl::SkipWhitespace())) {
      c = absl::StripAsciiWhitespace(c);
      const bool always = c.find('(') == absl::string_view::npos;
      row.exported_by[std::string(absl::StripAsciiWhitespace(c.substr(0, c.find('('))))] = always;
    }
  }
  return out;
}

double Value(const nlohmann::json& series) {
  return std::stod(series["value"][1].get<std::string>());
}

class MonitoringCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kPrometheus) || !fs::exists(kPromtool)) {
      GTEST_SKIP() << kPrometheus << " or " << kPromtool
                   << " is missing: install Debian's prometheus (deploy/local/install-deps.sh)";
    }
    dir_ = testing::TempDir("monitoring");
    workdir_ = dir_ + "/run";
    rally_ = std::make_unique<testing::Process>(
        "rally",
        std::vector<std::string>{"run", SourcePath("tests/integration/configs/monitoring.yaml"),
                                 "--workdir=" + workdir_, "--quiet"},
        dir_ + "/rally.out");
    // control, replay, learner, evaluator, two actors
    targets_ = FindTargets(workdir_, 6, 60s);
    ASSERT_EQ(targets_.size(), 6u) << ReadFile(dir_ + "/rally.out");
    WriteTargets();
    std::ofstream(dir_ + "/rules.yml") << LocalRules("3s");
    std::ofstream(dir_ + "/prometheus.yml")
        << LocalConfig(dir_ + "/targets.json", dir_ + "/rules.yml");
    prometheus_ = std::make_unique<PrometheusServer>(dir_, dir_ + "/prometheus.yml");
    ASSERT_TRUE(prometheus_->WaitReady(30s)) << prometheus_->log();
  }

  void TearDown() override {
    for (const Target& t : targets_) {
      if (t.pid > 0) kill(static_cast<pid_t>(t.pid), SIGCONT);
    }
    if (rally_) rally_->Stop(30s);
  }

  void WriteTargets() {
    nlohmann::json groups = nlohmann::json::array();
    for (const Target& t : targets_) {
      groups.push_back({{"targets", {t.metrics}}, {"labels", {{"component", t.component}}}});
    }
    std::ofstream(dir_ + "/targets.json") << groups.dump(2);
  }

  // Polls until every query of `queries` returns a series (or `timeout`); returns those that
  // still return none, with Prometheus's answer.
  std::vector<std::string> Empty(const std::vector<PanelQuery>& queries, bool selectors,
                                 std::chrono::seconds timeout) {
    std::vector<std::string> empty;
    for (auto end = std::chrono::steady_clock::now() + timeout;; std::this_thread::sleep_for(1s)) {
      empty.clear();
      for (const PanelQuery& q : queries) {
        if (OnlyReadsMetricsNotInThisJob(q.expr)) continue;
        std::vector<std::string> exprs = {Substitute(q.expr)};
        if (selectors) {
          exprs.clear();
          for (const std::string& s : VectorSelectors(q.expr)) {
            if (!NotInThisJob().count(s.substr(0, s.find('{')))) {
              exprs.push_back("count(" + Substitute(s) + ")");
            }
          }
        }
        for (const std::string& e : exprs) {
          nlohmann::json r = prometheus_->Query(e);
          if (r.value("status", "") != "success" || r["data"]["result"].empty()) {
            empty.push_back(q.where + ": " + e + " -> " + r.dump().substr(0, 300));
          }
        }
      }
      if (empty.empty() || std::chrono::steady_clock::now() > end) return empty;
    }
  }

  void CheckPanelsAndRules();
  void CheckEveryComponentIsUp();
  void CheckCountersRise();
  void CheckExpositions();
  void CheckNoAlertFiredSince(std::chrono::steady_clock::time_point healthy_from);
  void CheckProcessDownFiresForTheReplay();

  std::string dir_, workdir_;
  std::unique_ptr<testing::Process> rally_;
  std::vector<Target> targets_;
  std::unique_ptr<PrometheusServer> prometheus_;
};

TEST_F(MonitoringCluster, PrometheusScrapesEveryProcessAndAlertsWhenTheReplayStops) {
  CheckPanelsAndRules();
  const auto healthy_from = std::chrono::steady_clock::now();  // the job has warmed up
  CheckEveryComponentIsUp();
  CheckCountersRise();
  CheckExpositions();
  CheckNoAlertFiredSince(healthy_from);
  CheckProcessDownFiresForTheReplay();
}

// Every panel query returns a series once the job has warmed up (a first evaluation round, a
// league round, published versions); every metric an alert rule reads exists, and every rule
// is valid PromQL.
void MonitoringCluster::CheckPanelsAndRules() {
  const std::vector<std::string> empty_panels = Empty(DashboardQueries(), false, 90s);
  EXPECT_TRUE(empty_panels.empty()) << absl::StrJoin(empty_panels, "\n");
  const std::vector<std::string> missing = Empty(RuleQueries(), true, 5s);
  EXPECT_TRUE(missing.empty()) << absl::StrJoin(missing, "\n");
  for (const PanelQuery& rule : RuleQueries()) {
    EXPECT_EQ(prometheus_->Query(rule.expr).value("status", ""), "success") << rule.where;
  }
}

// control, replay, learner, evaluator and two actors.
void MonitoringCluster::CheckEveryComponentIsUp() {
  std::map<std::string, double> up;
  for (const auto& s :
       prometheus_->Series(absl::StrCat("sum by (component) (up{job=\"", kJob, "\"})"))) {
    up[s["metric"]["component"].get<std::string>()] = Value(s);
  }
  EXPECT_EQ(up,
            (std::map<std::string, double>{
                {"actor", 2}, {"control", 1}, {"evaluator", 1}, {"learner", 1}, {"replay", 1}}));
}

void MonitoringCluster::CheckCountersRise() {
  const std::vector<std::string> counters = {
      "sum(rally_learner_steps_total)",
      "sum(rally_actor_episodes_total{component=\"actor\"})",
      "sum(rally_replay_items_inserted_total)",
      "sum(rally_replay_items_sampled_total)",
      "sum(rally_evaluator_games_total)",
      "sum(rally_learner_weight_bytes_sent_total)",
      "sum(grpc_server_handled_total{component=\"control\"})",
      "sum(grpc_server_handled_total{component=\"replay\"})",
      "sum(grpc_server_started_total{component=\"learner\"})",
      "sum(process_cpu_seconds_total{component=\"actor\"})"};
  auto values = [&] {
    std::map<std::string, double> out;
    for (const std::string& c : counters) {
      auto s = prometheus_->Series(c);
      out[c] = s.empty() ? -1 : Value(s[0]);
    }
    return out;
  };
  const std::map<std::string, double> before = values();
  std::map<std::string, double> after = before;
  auto all_rose = [&] {
    for (const std::string& c : counters) {
      if (after[c] <= before.at(c)) return false;
    }
    return true;
  };
  // Scraped every second; an evaluation round may take several under load.
  for (auto end = std::chrono::steady_clock::now() + 30s;
       !all_rose() && std::chrono::steady_clock::now() < end;) {
    std::this_thread::sleep_for(2s);
    after = values();
  }
  for (const std::string& c : counters) EXPECT_GT(after[c], before.at(c)) << c;
}

// Every process's /metrics passes `promtool check metrics`, and every family it exports is in
// docs/metrics.md with its type, labels and exporting component; every family the catalogue
// says a component always exports, it does.
void MonitoringCluster::CheckExpositions() {
  const std::map<std::string, Catalogued> catalogue = Catalogue();
  ASSERT_GT(catalogue.size(), 50u);
  std::map<std::string, std::set<std::string>> seen_by;  // metric -> components
  for (const Target& t : targets_) {
    const std::string exposition = HttpGet(t.metrics, "/metrics");
    ASSERT_FALSE(exposition.empty()) << t.name;
    auto [code, out] = RunCommand(absl::StrCat(kPromtool, " check metrics"), exposition);
    EXPECT_EQ(code, 0) << t.name << ": promtool check metrics:\n" << out;
    for (const auto& [name, family] : Families(exposition)) {
      seen_by[name].insert(t.component);
      auto row = catalogue.find(name);
      if (row == catalogue.end()) {
        ADD_FAILURE() << t.name << " exports " << name << ", which docs/metrics.md does not list";
        continue;
      }
      EXPECT_EQ(row->second.type, family.first) << name;
      EXPECT_EQ(row->second.labels, family.second) << name << " (" << t.name << ")";
      EXPECT_TRUE(row->second.exported_by.count(t.component))
          << "docs/metrics.md: " << name << " is exported by " << t.component << " too";
    }
  }
  for (const auto& [name, row] : catalogue) {
    for (const auto& [component, always] : row.exported_by) {
      EXPECT_TRUE(!always || seen_by[name].count(component))
          << "docs/metrics.md says " << component << " exports " << name << "; it does not";
    }
  }
}

// No alert fired (and none was pending) while the cluster was healthy.
void MonitoringCluster::CheckNoAlertFiredSince(std::chrono::steady_clock::time_point from) {
  const auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - from)
          .count();
  auto alerts = prometheus_->Series(absl::StrCat("max_over_time(ALERTS[", seconds, "s])"));
  EXPECT_TRUE(alerts.empty()) << alerts.dump(2);
}

// The replay stops answering (SIGSTOP): RallyProcessDown fires for it.
void MonitoringCluster::CheckProcessDownFiresForTheReplay() {
  const auto replay = std::find_if(targets_.begin(), targets_.end(),
                                   [](const Target& t) { return t.component == "replay"; });
  ASSERT_NE(replay, targets_.end());
  ASSERT_GT(replay->pid, 0);
  ASSERT_EQ(kill(static_cast<pid_t>(replay->pid), SIGSTOP), 0);
  nlohmann::json down;
  for (auto end = std::chrono::steady_clock::now() + 30s;
       down.empty() && std::chrono::steady_clock::now() < end; std::this_thread::sleep_for(1s)) {
    down = prometheus_->Series(
        "ALERTS{alertname=\"RallyProcessDown\",alertstate=\"firing\",component=\"replay\"}");
  }
  EXPECT_FALSE(down.empty()) << prometheus_->Series("ALERTS").dump(2);
  kill(static_cast<pid_t>(replay->pid), SIGCONT);
}

}  // namespace
}  // namespace rally
