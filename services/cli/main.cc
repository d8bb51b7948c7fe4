// rally: the command-line client.
//   rally run CONFIG [--workdir DIR] [--summary-json FILE] [--actors N]
//       start a local cluster, train CONFIG to its target, stop the cluster; exit 0 iff met
//   rally validate CONFIG            check a job spec without running it
//   rally submit | status | list | watch | logs | stop | resume | delete ... --control ADDR
//       the jobs of a running cluster (job_commands.h)
//   rally export-policy --checkpoint DIR --out FILE.json   a small game's policy as a table
//   rally evaluate-policy FILE.json      exact worst case, NashConv and exploitability
//   rally evaluate-checkpoint --checkpoint DIR --opponent NAME --games N   sampled games
//   rally play --checkpoint DIR          a person plays against a checkpoint in the terminal
//   rally certs init DIR                 a CA and a certificate per component, for mutual TLS
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/config/job_config.h"
#include "common/net/control_client.h"
#include "common/net/server.h"
#include "common/net/tls.h"
#include "common/util/shutdown.h"
#include "common/util/usage.h"
#include "nlohmann/json.hpp"
#include "rally/v1/control.grpc.pb.h"
#include "services/cli/certs_command.h"
#include "services/cli/job_commands.h"
#include "services/cli/lm_commands.h"
#include "services/cli/local_cluster.h"
#include "services/cli/policy_commands.h"

ABSL_FLAG(std::string, workdir, "",
          "run: directory for logs, checkpoints and the job store "
          "(default: a new folder under ./runs/)");
ABSL_FLAG(std::string, summary_json, "", "run: write the final figures here as JSON");
ABSL_FLAG(int, actors, -1, "run: actor processes (default: the config's actors.count)");
ABSL_FLAG(int, learners, 1, "run: data-parallel rally-learner ranks (c10d, Gloo on CPU)");
ABSL_FLAG(int, replay_shards, 1,
          "run: rally-replay processes; actors spread over them, the "
          "learner samples from all");
ABSL_FLAG(std::string, control, "127.0.0.1:7070", "host:port of rally-control (env RALLY_CONTROL)");
ABSL_FLAG(bool, quiet, false, "run: print only the final summary");
ABSL_FLAG(std::string, certs, "",
          "run and the job commands: mutual TLS with the files of `rally certs init DIR`: the CLI "
          "uses DIR/client.crt, DIR/client.key and DIR/ca.crt, and `rally run` starts each "
          "process with its own component's certificate; replaces --tls_cert, --tls_key, --tls_ca");
ABSL_FLAG(std::string, checkpoint, "", "export-policy: a run's work directory or a checkpoint");
ABSL_FLAG(std::string, out, "", "export-policy: the JSON file to write");
ABSL_FLAG(int, games, 1, "play, evaluate-checkpoint: games to play (seats alternate)");
ABSL_FLAG(std::string, opponent, "",
          "evaluate-checkpoint: the fixed opponent (trader, random, ...)");
ABSL_FLAG(int, seat, 0, "play: your seat in the first game");
ABSL_FLAG(bool, greedy, false,
          "play, evaluate-checkpoint: the policy plays its most probable move instead of sampling");
ABSL_FLAG(uint64_t, seed, 0,
          "play, evaluate-checkpoint, lm-generate: random seed (0: from the clock)");

using namespace rally;

namespace {

const char* kUsage =
    "rally COMMAND ...\n"
    "  run CONFIG [--workdir DIR] [--summary-json FILE] [--actors N] [--replay-shards S]\n"
    "      [--learners W]\n"
    "  validate CONFIG\n"
    "  submit CONFIG [--request_id ID] --control ADDR [--output table|json]\n"
    "  status | watch | stop | resume | delete JOB_ID --control ADDR [--output table|json]\n"
    "  list [--state S] [--page_size N] [--page_token T] --control ADDR\n"
    "  logs JOB_ID [--tail N] [--follow] [--process NAME] --control ADDR\n"
    "  export-policy --checkpoint DIR --out FILE.json\n"
    "  evaluate-policy FILE.json\n"
    "  evaluate-checkpoint --checkpoint DIR --opponent NAME --games N [--greedy] [--seed S]\n"
    "  play --checkpoint DIR [--games N] [--seat S] [--greedy]\n"
    "  export-hf --checkpoint DIR --out DIR [--dtype bf16|fp16|fp32]\n"
    "  lm-tokenize --tokenizer FILE --text TEXT\n"
    "  lm-score --model DIR --token-ids 1,5,9,...\n"
    "  lm-generate --model DIR --prompt TEXT [--max-new-tokens N] [--temperature T] [--seed S]\n"
    "  certs init DIR [--hosts h1,h2,...] [--days N] [--force]\n"
    "run and the job commands speak mutual TLS with --certs DIR (from `certs init`) or\n"
    "--tls_cert FILE --tls_key FILE --tls_ca FILE (env RALLY_TLS_CERT, RALLY_TLS_KEY, "
    "RALLY_TLS_CA)";

std::string StateName(v1::JobState s) {
  std::string n = v1::JobState_Name(s);
  return n.substr(std::string("JOB_STATE_").size());
}

std::string EvalText(const v1::EvalResult& e) {
  if (e.opponent() == "best_response") {
    return absl::StrFormat("exploitability %.4f", e.exploitability());
  }
  if (e.opponent() == "league") return absl::StrFormat("Elo %.0f", e.elo());
  return absl::StrFormat("%s W/D/L %d/%d/%d", e.opponent(), e.wins(), e.draws(), e.losses());
}

std::string ProgressLine(const v1::Job& job) {
  const v1::JobProgress& p = job.progress();
  std::string line = absl::StrFormat("[%6.1fs] %-9s step %6d  v%-6d %8d episodes %7.0f ep/s",
                                     p.wall_seconds(), StateName(job.state()), p.learner_steps(),
                                     p.policy_version(), p.episodes(), p.episodes_per_second());
  if (p.evals_size() > 0) {
    std::vector<std::string> evals;
    for (const auto& e : p.evals()) evals.push_back(EvalText(e));
    absl::StrAppend(&line, "  | eval v", p.evals(0).policy_version(), ": ",
                    absl::StrJoin(evals, ", "));
  }
  return line;
}

// "  | restarts: actor-0 ×2, replay ×1" while any process of the cluster was restarted, else "".
std::string RestartsText(const std::map<std::string, int>& restarts) {
  if (restarts.empty()) return "";
  return absl::StrCat("  | restarts: ",
                      absl::StrJoin(restarts, ", ", [](std::string* out, const auto& r) {
                        absl::StrAppend(out, r.first, " ×", r.second);
                      }));
}

nlohmann::ordered_json Summary(const v1::Job& job, const std::string& workdir) {
  const v1::JobProgress& p = job.progress();
  nlohmann::ordered_json j;
  j["target_met"] = p.target_met();
  if (p.target_met()) j["target_policy_version"] = p.target_policy_version();
  j["wall_seconds"] = p.wall_seconds();
  j["learner_steps"] = p.learner_steps();
  j["episodes"] = p.episodes();
  nlohmann::ordered_json evals = nlohmann::ordered_json::object();
  bool greedy = false;
  for (const auto& e : p.evals()) {
    evals[e.opponent()] = {{"games", e.games()},
                           {"wins", e.wins()},
                           {"draws", e.draws()},
                           {"losses", e.losses()},
                           {"policy_version", e.policy_version()},
                           {"wall_seconds", e.wall_seconds()}};
    if (e.opponent() == "best_response") {
      evals[e.opponent()]["exploitability"] = e.exploitability();
      // Language-model policies: the share of invalid answers (forfeits) in self-play; 0 for
      // policies that choose among legal actions.
      evals[e.opponent()]["invalid_answer_rate"] = e.invalid_answer_rate();
    }
    if (e.opponent() == "league") evals[e.opponent()]["elo"] = e.elo();
    greedy = e.greedy();
  }
  j["eval"] = evals;
  j["eval_play"] = greedy ? "greedy" : "sampled";
  j["job_id"] = job.id();
  j["state"] = StateName(job.state());
  j["reason"] = job.reason();
  j["policy_version"] = p.policy_version();
  j["actor_policy_version_min"] = p.actor_policy_version_min();
  j["actor_policy_version_max"] = p.actor_policy_version_max();
  j["trajectories_inserted"] = p.trajectories_inserted();
  j["episodes_per_second"] = p.episodes_per_second();
  if (!workdir.empty()) j["workdir"] = workdir;
  return j;
}

std::string ReadFile(const std::string& path, bool* ok) {
  std::ifstream in(path);
  *ok = static_cast<bool>(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string DefaultWorkdir(const std::string& name) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d-%H%M%S", &tm);
  std::string base = absl::StrCat("runs/", buf, "-", name);
  std::string dir = base;
  for (int i = 2; std::filesystem::exists(dir); ++i) dir = absl::StrCat(base, "-", i);
  return dir;
}

std::string BinDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : exe.parent_path().string();
}

// Installs the CLI's transport security from --certs or the TLS flags; false (the error printed)
// if their files cannot be used.
bool SetUpTransportSecurity() {
  if (const std::string dir = absl::GetFlag(FLAGS_certs); !dir.empty()) {
    absl::SetFlag(&FLAGS_tls_cert, (std::filesystem::path(dir) / "client.crt").string());
    absl::SetFlag(&FLAGS_tls_key, (std::filesystem::path(dir) / "client.key").string());
    absl::SetFlag(&FLAGS_tls_ca, (std::filesystem::path(dir) / "ca.crt").string());
  }
  if (absl::Status s = InstallTransportSecurityFromFlags(""); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return false;
  }
  return true;
}

// The TLS files of `rally run`'s processes: --certs, else the CLI's own --tls_* files.
ClusterTls RunTls() {
  ClusterTls tls;
  tls.certs_dir = absl::GetFlag(FLAGS_certs);
  if (tls.certs_dir.empty()) {
    tls.cert = absl::GetFlag(FLAGS_tls_cert);
    tls.key = absl::GetFlag(FLAGS_tls_key);
    tls.ca = absl::GetFlag(FLAGS_tls_ca);
  }
  return tls;
}

// Prints a parsed spec's warnings (a training opponent that breaks the self-play rule).
void PrintWarnings(const JobConfig& config) {
  for (const std::string& w : config.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
}

int Run(const std::string& config_path) {
  auto config = LoadJobConfig(config_path);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  PrintWarnings(*config);
  bool ok = false;
  std::string spec = ReadFile(config_path, &ok);
  std::string workdir = absl::GetFlag(FLAGS_workdir);
  if (workdir.empty()) workdir = DefaultWorkdir(config->name);
  std::filesystem::create_directories(workdir);
  const bool quiet = absl::GetFlag(FLAGS_quiet);
  const bool tty = isatty(STDOUT_FILENO) && !quiet;
  ClusterOptions options;
  options.bin_dir = BinDir();
  options.workdir = workdir;
  options.actors =
      absl::GetFlag(FLAGS_actors) > 0 ? absl::GetFlag(FLAGS_actors) : config->actors.count;
  options.replay_shards = std::max(1, absl::GetFlag(FLAGS_replay_shards));
  options.learners = std::max(1, absl::GetFlag(FLAGS_learners));
  options.tls = RunTls();
  if (!quiet) {
    std::printf("rally run %s: game %s, %d actor(s), workdir %s\n", config_path.c_str(),
                config->game.name.c_str(), options.actors, workdir.c_str());
    std::fflush(stdout);
  }
  LocalCluster cluster(options);
  if (auto s = cluster.Start(); !s.ok()) {
    std::fprintf(stderr, "cannot start the cluster: %s\n", s.ToString().c_str());
    return 1;
  }
  auto stub = v1::JobService::NewStub(MakeChannel(cluster.control_address()));
  v1::Job job;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(std::chrono::seconds(10)));
    v1::SubmitJobRequest req;
    req.set_spec_yaml(spec);
    req.set_source_name(config_path);
    grpc::Status s = stub->SubmitJob(&ctx, req, &job);
    if (!s.ok()) {
      std::fprintf(stderr, "submit failed: %s\n", s.error_message().c_str());
      return 1;
    }
  }
  if (!quiet) std::printf("submitted %s\n", job.id().c_str());
  auto last_print = std::chrono::steady_clock::now() - std::chrono::hours(1);
  // One JSON line per second of the job's progress, for plots of quality against time and steps.
  std::ofstream progress_log(std::filesystem::path(workdir) / "progress.jsonl");
  auto last_logged = last_print;
  bool cancelled = false;
  std::string crashed;
  while (true) {
    if (ShutdownRequested() && !cancelled) {
      cancelled = true;
      grpc::ClientContext ctx;
      ctx.set_deadline(DeadlineIn(std::chrono::seconds(5)));
      v1::StopJobRequest req;
      req.set_id(job.id());
      req.set_reason("interrupted");
      v1::Job ignored;
      stub->StopJob(&ctx, req, &ignored);
    }
    crashed = cluster.FirstExited();
    if (!crashed.empty()) break;
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(std::chrono::seconds(5)));
    v1::GetJobRequest req;
    req.set_id(job.id());
    v1::Job latest;
    if (stub->GetJob(&ctx, req, &latest).ok()) job = latest;
    if (IsTerminal(job.state())) break;
    auto now = std::chrono::steady_clock::now();
    if (now - last_logged >= std::chrono::seconds(1)) {
      progress_log << Summary(job, "").dump() << "\n" << std::flush;
      last_logged = now;
    }
    const std::string line = ProgressLine(job) + RestartsText(cluster.restarts());
    if (tty) {
      std::printf("\r%s\x1b[K", line.c_str());
      std::fflush(stdout);
    } else if (!quiet && now - last_print > std::chrono::seconds(5)) {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
      last_print = now;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 250 : 500));
  }
  if (tty) std::printf("\n");
  // Workers send their final counts to control as they stop; read the job after that.
  cluster.StopWorkers();
  if (crashed != "control") {
    if (!crashed.empty() && !IsTerminal(job.state())) {
      grpc::ClientContext stop_ctx;
      stop_ctx.set_deadline(DeadlineIn(std::chrono::seconds(5)));
      v1::StopJobRequest stop;
      stop.set_id(job.id());
      stop.set_reason("process '" + crashed + "' exited unexpectedly");
      v1::Job ignored;
      stub->StopJob(&stop_ctx, stop, &ignored);
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(std::chrono::seconds(5)));
    v1::GetJobRequest req;
    req.set_id(job.id());
    v1::Job final_job;
    if (stub->GetJob(&ctx, req, &final_job).ok()) job = final_job;
  }
  cluster.Stop();
  if (!crashed.empty()) {
    std::fprintf(stderr, "process '%s' exited unexpectedly; see %s/logs/%s.log\n", crashed.c_str(),
                 workdir.c_str(), crashed.c_str());
  }
  progress_log << Summary(job, "").dump() << "\n" << std::flush;
  auto summary = Summary(job, workdir);
  summary["self_play"] = config->self_play;  // DESIGN.md, "Self-play rule"
  const std::map<std::string, int> restarts = cluster.restarts();
  summary["restarts"] = restarts;
  std::printf("%s%s\n", ProgressLine(job).c_str(), RestartsText(restarts).c_str());
  std::printf("job %s %s: %s\n", job.id().c_str(), StateName(job.state()).c_str(),
              job.reason().c_str());
  // With exact evaluation in the job, the same figures of the policies the job saved: the one it
  // ended with (what `rally export-policy WORKDIR` reads), and, when a round met the target, the
  // version that round measured (checkpoints/target; the learner trains on until it hears that
  // the job has ended, so the two differ).
  const auto& opponents = config->evaluation.opponents;
  if (std::find(opponents.begin(), opponents.end(), "best_response") != opponents.end()) {
    // Reports the policy at `path` if this job saved it (a reused work directory can hold
    // another job's) and, when `want_version` >= 0, it is that version; false otherwise.
    auto report = [&](const std::string& path, const std::string& key, const char* label,
                      int64_t want_version) {
      auto exact = EvaluateCheckpointExactly(path);
      if (!exact.ok()) {
        std::fprintf(stderr, "cannot evaluate %s exactly: %s\n", path.c_str(),
                     exact.status().ToString().c_str());
        return false;
      }
      const auto version = exact->at("policy_version").get<int64_t>();
      if (exact->at("job_id").get<std::string>() != job.id() ||
          (want_version >= 0 && version != want_version)) {
        return false;
      }
      const auto exploitability = exact->at("exploitability").get<double>();
      const auto worst = exact->at("worst_case_returns").get<std::vector<double>>();
      nlohmann::ordered_json figures;
      figures["policy_version"] = version;
      figures["checkpoint"] = exact->at("checkpoint");
      figures["exploitability"] = exploitability;
      figures["nash_conv"] = exact->at("nash_conv").get<double>();
      figures["worst_case_returns"] = worst;
      summary[key] = figures;
      std::printf("%s v%lld: exploitability %.5f, worst case by seat [%s]\n", label,
                  static_cast<long long>(version), exploitability,
                  absl::StrJoin(worst, ", ", [](std::string* out, double v) {
                    absl::StrAppend(out, absl::StrFormat("%.5f", v));
                  }).c_str());
      return true;
    };
    if (job.progress().target_met()) {
      const std::string target = workdir + "/checkpoints/target";
      const int64_t want = job.progress().target_policy_version();
      if (!std::filesystem::exists(target + "/manifest.json") ||
          !report(target, "target_checkpoint", "target policy", want)) {
        std::printf("target policy v%lld: not saved (see %s/logs/learner.log)\n",
                    static_cast<long long>(want), workdir.c_str());
      }
    }
    if (ResolveCheckpoint(workdir).ok()) {
      report(workdir, "final_checkpoint", "final checkpoint", -1);
    }
  }
  std::printf("summary: %s\n", summary.dump().c_str());
  if (std::string path = absl::GetFlag(FLAGS_summary_json); !path.empty()) {
    std::ofstream out(path);
    out << summary.dump(2) << "\n";
  }
  bool success = crashed.empty() && job.state() == v1::JOB_STATE_SUCCEEDED &&
                 (config->target.empty() || job.progress().target_met());
  return success ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  ListRallyFlagsInHelp();
  absl::SetProgramUsageMessage(kUsage);
  // Accept --summary-json as well as --summary_json: flag names take '-' for '_'.
  std::vector<std::string> args(argv, argv + argc);
  for (std::string& a : args) {
    if (a.rfind("--", 0) != 0) continue;
    size_t end = a.find('=');
    for (size_t i = 2; i < std::min(end, a.size()); ++i) {
      if (a[i] == '-') a[i] = '_';
    }
  }
  // RALLY_CONTROL sets the default of --control; the flag, when given, wins (as for workers).
  if (const char* v = std::getenv("RALLY_CONTROL")) absl::SetFlag(&FLAGS_control, v);
  SetTlsFlagsFromEnvironment();
  std::vector<char*> cargs;
  for (std::string& a : args) cargs.push_back(a.data());
  std::vector<char*> positional =
      absl::ParseCommandLine(static_cast<int>(cargs.size()), cargs.data());
  if (positional.size() < 2) {
    std::fprintf(stderr, "%s\n", kUsage);
    return 2;
  }
  std::string command = positional[1];
  std::string arg = positional.size() > 2 ? positional[2] : "";
  if (command == "lm-tokenize") return rally::LmTokenizeCommand();
  if (command == "lm-score") return rally::LmScoreCommand();
  if (command == "lm-generate") return rally::LmGenerateCommand();
  if (command == "export-hf") return rally::ExportHfCommand();
  if (command == "run" || command == "validate" || command == "submit") {
    if (arg.empty()) {
      std::fprintf(stderr, "rally %s: needs a CONFIG file\n", command.c_str());
      return 2;
    }
  }
  if (command == "certs") return CertsCommand({positional.begin() + 2, positional.end()});
  if (command == "run") {
    if (!SetUpTransportSecurity()) return 1;
    InstallShutdownHandlers();
    return Run(arg);
  }
  if (command == "validate") {
    auto config = LoadJobConfig(arg);
    if (!config.ok()) {
      std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
      return 2;
    }
    PrintWarnings(*config);
    std::printf("%s: valid (game %s%s)\n", arg.c_str(), config->game.name.c_str(),
                config->self_play ? "" : ", not self-play");
    return 0;
  }
  if (command == "export-policy") {
    if (absl::GetFlag(FLAGS_checkpoint).empty() || absl::GetFlag(FLAGS_out).empty()) {
      std::fprintf(stderr, "rally export-policy: needs --checkpoint DIR and --out FILE.json\n");
      return 2;
    }
    auto exported = ExportPolicy(absl::GetFlag(FLAGS_checkpoint));
    if (!exported.ok()) {
      std::fprintf(stderr, "%s\n", std::string(exported.status().message()).c_str());
      return 1;
    }
    std::ofstream out(absl::GetFlag(FLAGS_out));
    out << exported->dump(1) << "\n";
    std::printf("%s: %zu information states of %s\n", absl::GetFlag(FLAGS_out).c_str(),
                (*exported)["policy"].size(), (*exported)["game"].get<std::string>().c_str());
    return out ? 0 : 1;
  }
  if (command == "play") {
    if (absl::GetFlag(FLAGS_checkpoint).empty()) {
      std::fprintf(stderr, "rally play: needs --checkpoint DIR\n");
      return 2;
    }
    uint64_t seed = absl::GetFlag(FLAGS_seed);
    if (seed == 0) seed = static_cast<uint64_t>(std::time(nullptr));
    auto total =
        Play(absl::GetFlag(FLAGS_checkpoint), std::max(1, absl::GetFlag(FLAGS_games)),
             absl::GetFlag(FLAGS_seat), absl::GetFlag(FLAGS_greedy), seed, std::cin, std::cout);
    if (!total.ok()) {
      std::fprintf(stderr, "%s\n", std::string(total.status().message()).c_str());
      return 1;
    }
    return 0;
  }
  if (command == "evaluate-checkpoint") {
    if (absl::GetFlag(FLAGS_checkpoint).empty() || absl::GetFlag(FLAGS_opponent).empty()) {
      std::fprintf(stderr,
                   "rally evaluate-checkpoint: needs --checkpoint DIR and --opponent NAME\n");
      return 2;
    }
    uint64_t seed = absl::GetFlag(FLAGS_seed);
    if (seed == 0) seed = static_cast<uint64_t>(std::time(nullptr));
    auto result = EvaluateCheckpoint(absl::GetFlag(FLAGS_checkpoint), absl::GetFlag(FLAGS_opponent),
                                     absl::GetFlag(FLAGS_games), absl::GetFlag(FLAGS_greedy), seed);
    if (!result.ok()) {
      std::fprintf(stderr, "%s\n", std::string(result.status().message()).c_str());
      return 1;
    }
    std::printf("%s\n", result->dump(2).c_str());
    return 0;
  }
  if (command == "evaluate-policy") {
    bool ok = false;
    auto doc = nlohmann::json::parse(ReadFile(arg, &ok), nullptr, false);
    if (!ok || doc.is_discarded()) {
      std::fprintf(stderr, "%s: cannot read a policy JSON document\n", arg.c_str());
      return 2;
    }
    auto result = EvaluatePolicy(doc);
    if (!result.ok()) {
      std::fprintf(stderr, "%s: %s\n", arg.c_str(), std::string(result.status().message()).c_str());
      return 1;
    }
    std::printf("%s\n", result->dump(2).c_str());
    return 0;
  }
  if (IsJobCommand(command)) {
    if (!SetUpTransportSecurity()) return 1;
    InstallShutdownHandlers();
    return RunJobCommand(command, {positional.begin() + 2, positional.end()},
                         absl::GetFlag(FLAGS_control));
  }
  std::fprintf(stderr, "unknown command '%s'\n%s\n", command.c_str(), kUsage);
  return 2;
}
