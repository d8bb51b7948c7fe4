#include "services/cli/job_commands.h"

#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/net/control_client.h"
#include "common/net/server.h"
#include "common/util/shutdown.h"
#include "rally/v1/control.grpc.pb.h"

ABSL_FLAG(std::string, output, "table",
          "submit, status, list, watch, logs, stop, resume, delete: table (for people) or json "
          "(protobuf's canonical JSON of each reply, one object per line)");
ABSL_FLAG(std::string, request_id, "",
          "submit: idempotency key; the same key again returns the same job (default: random, "
          "reused by the command's own retries)");
ABSL_FLAG(std::string, state, "", "list: only jobs in this state (e.g. RUNNING, pending)");
ABSL_FLAG(int, page_size, 0, "list: jobs per page (0: 100; at most 1000)");
ABSL_FLAG(std::string, page_token, "", "list: the next_page_token a previous page printed");
ABSL_FLAG(int, tail, 100, "logs: the last N lines of each process's log (at most 10000)");
ABSL_FLAG(bool, follow, false, "logs: keep printing new lines until the job ends");
ABSL_FLAG(std::string, process, "", "logs: only this process's log (e.g. learner, actor-0)");
ABSL_FLAG(std::string, reason, "", "stop, resume: the reason recorded in the job's history");
ABSL_FLAG(
    std::string, token_file, "",
    "submit, status, list, watch, logs, stop, resume, delete: a file holding the bearer token "
    "sent to control (default: env RALLY_TOKEN; tokens are never taken on the command line)");

namespace rally {
namespace {

constexpr auto kCallTimeout = std::chrono::seconds(10);

// The JobService stub and the bearer token every call carries.
class Api {
 public:
  Api(std::unique_ptr<v1::JobService::Stub> stub, std::string token)
      : stub_(std::move(stub)), token_(std::move(token)) {}
  v1::JobService::Stub& stub() { return *stub_; }
  // A context for one call: the token's metadata, and the call timeout unless `stream`.
  std::unique_ptr<grpc::ClientContext> Context(bool stream = false) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!stream) ctx->set_deadline(DeadlineIn(kCallTimeout));
    if (!token_.empty()) ctx->AddMetadata("authorization", "Bearer " + token_);
    return ctx;
  }

 private:
  std::unique_ptr<v1::JobService::Stub> stub_;
  std::string token_;
};

// The bearer token from --token_file, else RALLY_TOKEN ("" for none), its trailing newline and
// blanks stripped; an error names the file.
absl::StatusOr<std::string> ReadToken() {
  std::string token;
  if (const std::string file = absl::GetFlag(FLAGS_token_file); !file.empty()) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) return absl::NotFoundError(absl::StrCat("--token_file ", file, ": cannot read"));
    token = text.str();
    if (absl::StripAsciiWhitespace(token).empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--token_file ", file, ": empty"));
    }
  } else if (const char* env = std::getenv("RALLY_TOKEN")) {
    token = env;
  }
  return std::string(absl::StripTrailingAsciiWhitespace(token));
}

bool Json() { return absl::GetFlag(FLAGS_output) == "json"; }

void PrintJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  std::printf("%s\n", out.c_str());
  std::fflush(stdout);
}

int Fail(const std::string& command, const grpc::Status& s) {
  std::fprintf(stderr, "rally %s: %s\n", command.c_str(), s.error_message().c_str());
  return 1;
}

std::string State(v1::JobState s) {
  return std::string(absl::StripPrefix(v1::JobState_Name(s), "JOB_STATE_"));
}

std::string Time(int64_t unix_micros) {
  const std::time_t t = static_cast<std::time_t>(unix_micros / 1000000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// Rows printed as columns, each as wide as its widest cell, two spaces apart; the last column is
// not padded.
void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) {
      if (c >= width.size()) width.push_back(0);
      width[c] = std::max(width[c], row[c].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      absl::StrAppend(&line, row[c]);
      if (c + 1 < row.size()) line.append(width[c] - row[c].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

std::vector<std::string> JobRow(const v1::Job& j) {
  const v1::JobProgress& p = j.progress();
  return {j.id(),
          j.name(),
          State(j.state()),
          absl::StrCat(p.learner_steps()),
          absl::StrCat(p.policy_version()),
          absl::StrCat(p.episodes()),
          absl::StrFormat("%.0f", p.wall_seconds()),
          j.reason()};
}

const std::vector<std::string> kJobHeader = {"ID",      "NAME",     "STATE",  "STEPS",
                                             "VERSION", "EPISODES", "WALL_S", "REASON"};

std::vector<std::string> EvalRow(const v1::EvalResult& e) {
  return {e.opponent(),
          absl::StrCat(e.policy_version()),
          absl::StrCat(e.games()),
          absl::StrCat(e.wins(), "/", e.draws(), "/", e.losses()),
          e.opponent() == "best_response" ? absl::StrFormat("%.4f", e.exploitability()) : "",
          e.opponent() == "league" ? absl::StrFormat("%.0f", e.elo()) : ""};
}

const std::vector<std::string> kEvalHeader = {"OPPONENT", "VERSION",        "GAMES",
                                              "W/D/L",    "EXPLOITABILITY", "ELO"};

void PrintJob(const v1::Job& job) {
  PrintTable({kJobHeader, JobRow(job)});
  std::printf("\n");
  std::vector<std::vector<std::string>> history = {{"TIME (UTC)", "STATE", "REASON"}};
  for (const v1::JobTransition& t : job.history()) {
    history.push_back({Time(t.unix_micros()), State(t.state()), t.reason()});
  }
  PrintTable(history);
  if (job.progress().evals_size() > 0) {
    std::printf("\n");
    std::vector<std::vector<std::string>> evals = {kEvalHeader};
    for (const v1::EvalResult& e : job.progress().evals()) evals.push_back(EvalRow(e));
    PrintTable(evals);
  }
}

std::string RandomRequestId() {
  std::random_device rd;
  return absl::StrFormat("cli-%08x%08x%08x%08x", rd(), rd(), rd(), rd());
}

bool Retryable(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE ||
         s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

int Submit(Api& api, const std::vector<std::string>& args) {
  if (args.empty()) {
    std::fprintf(stderr, "rally submit: needs a CONFIG file\n");
    return 2;
  }
  std::ifstream in(args[0], std::ios::binary);
  std::stringstream spec;
  spec << in.rdbuf();
  if (!in) {
    std::fprintf(stderr, "%s: cannot read\n", args[0].c_str());
    return 2;
  }
  v1::SubmitJobRequest req;
  req.set_spec_yaml(spec.str());
  req.set_source_name(args[0]);
  req.set_request_id(absl::GetFlag(FLAGS_request_id).empty() ? RandomRequestId()
                                                             : absl::GetFlag(FLAGS_request_id));
  // Retried with the same request id: a submission whose reply was lost is not stored twice.
  grpc::Status s;
  v1::Job job;
  for (int attempt = 0; attempt < 3; ++attempt) {
    s = api.stub().SubmitJob(api.Context().get(), req, &job);
    if (!Retryable(s)) break;
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.error_message().c_str());
    return 1;
  }
  if (Json()) {
    PrintJson(job);
  } else {
    std::printf("%s\n", job.id().c_str());
  }
  return 0;
}

int Status(Api& api, const std::string& id) {
  v1::GetJobRequest req;
  req.set_id(id);
  v1::Job job;
  if (grpc::Status s = api.stub().GetJob(api.Context().get(), req, &job); !s.ok()) {
    return Fail("status", s);
  }
  if (Json()) {
    PrintJson(job);
  } else {
    PrintJob(job);
  }
  return 0;
}

int List(Api& api) {
  v1::ListJobsRequest req;
  if (std::string state = absl::AsciiStrToUpper(absl::GetFlag(FLAGS_state)); !state.empty()) {
    v1::JobState value;
    if (!v1::JobState_Parse("JOB_STATE_" + state, &value) || state == "UNSPECIFIED") {
      std::fprintf(stderr,
                   "rally list: --state %s is not a job state (PENDING, STARTING, RUNNING, "
                   "RECOVERING, STOPPING, SUCCEEDED, FAILED, CANCELLED)\n",
                   state.c_str());
      return 2;
    }
    req.set_state(value);
  }
  req.set_page_size(absl::GetFlag(FLAGS_page_size));
  req.set_page_token(absl::GetFlag(FLAGS_page_token));
  v1::ListJobsResponse resp;
  if (grpc::Status s = api.stub().ListJobs(api.Context().get(), req, &resp); !s.ok()) {
    return Fail("list", s);
  }
  if (Json()) {
    PrintJson(resp);
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {kJobHeader};
  for (const v1::Job& j : resp.jobs()) rows.push_back(JobRow(j));
  PrintTable(rows);
  if (!resp.next_page_token().empty()) {
    std::printf("more: --page_token %s\n", resp.next_page_token().c_str());
  }
  return 0;
}

// Prints a WatchJob stream for people: a line per transition and per evaluation round, and the
// progress on one line rewritten in place on a terminal (a line per update otherwise).
class WatchPrinter {
 public:
  void Print(const v1::JobUpdate& u) {
    if (first_) {
      // The stream opens with the job as it is: its history so far.
      for (const v1::JobTransition& t : u.job().history()) {
        Line(absl::StrFormat("%s  %-10s %s", Time(t.unix_micros()), State(t.state()), t.reason()));
      }
      first_ = false;
    }
    if (u.has_transition()) {
      Line(absl::StrFormat("%s  %-10s %s", Time(u.transition().unix_micros()),
                           State(u.transition().state()), u.transition().reason()));
    }
    for (const v1::EvalResult& e : u.evals()) {
      std::vector<std::string> row = EvalRow(e);
      Line(absl::StrCat("evaluation  ", absl::StrJoin(kEvalHeader, " "), ": ",
                        absl::StrJoin(row, " ")));
    }
    const v1::JobProgress& p = u.job().progress();
    Progress(absl::StrFormat("[%6.1fs] %-10s step %6d  v%-6d %8d episodes %7.0f ep/s",
                             p.wall_seconds(), State(u.job().state()), p.learner_steps(),
                             p.policy_version(), p.episodes(), p.episodes_per_second()));
  }
  void End() {
    if (progress_shown_ && tty_) std::printf("\n");
    std::fflush(stdout);
  }

 private:
  void Line(const std::string& text) {
    if (progress_shown_ && tty_) std::printf("\r\033[K");
    std::printf("%s\n", text.c_str());
    progress_shown_ = false;
  }
  void Progress(const std::string& text) {
    if (tty_) {
      std::printf("\r\033[K%s", text.c_str());
      progress_shown_ = true;
    } else if (text != last_progress_) {
      std::printf("%s\n", text.c_str());
    }
    last_progress_ = text;
    std::fflush(stdout);
  }

  const bool tty_ = isatty(STDOUT_FILENO) != 0;
  bool first_ = true;
  bool progress_shown_ = false;
  std::string last_progress_;
};

int Watch(Api& api, const std::string& id) {
  WatchPrinter printer;
  // Control may restart while a job runs: the stream is opened again (each time the job as it is
  // now comes first) for up to 60 s of failures in a row.
  auto failing_since = std::chrono::steady_clock::now();
  while (!ShutdownRequested()) {
    auto ctx = api.Context(/*stream=*/true);
    v1::WatchJobRequest req;
    req.set_id(id);
    auto reader = api.stub().WatchJob(ctx.get(), req);
    v1::JobUpdate update;
    v1::JobState last_state = v1::JOB_STATE_UNSPECIFIED;
    while (reader->Read(&update)) {
      failing_since = std::chrono::steady_clock::now();
      last_state = update.job().state();
      if (Json()) {
        PrintJson(update);
      } else {
        printer.Print(update);
      }
    }
    grpc::Status s = reader->Finish();
    if (s.ok() && IsTerminal(last_state)) break;
    if (!Retryable(s) ||
        std::chrono::steady_clock::now() - failing_since > std::chrono::seconds(60)) {
      printer.End();
      return Fail("watch", s);
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  printer.End();
  return 0;
}

int Logs(Api& api, const std::string& id) {
  auto ctx = api.Context(/*stream=*/true);
  v1::GetJobLogsRequest req;
  req.set_id(id);
  req.set_tail_lines(absl::GetFlag(FLAGS_tail));
  req.set_follow(absl::GetFlag(FLAGS_follow));
  req.set_process(absl::GetFlag(FLAGS_process));
  auto reader = api.stub().GetJobLogs(ctx.get(), req);
  v1::LogLine line;
  while (reader->Read(&line)) {
    if (Json()) {
      PrintJson(line);
    } else {
      std::printf("%-12s %s\n", line.process().c_str(), line.line().c_str());
      std::fflush(stdout);
    }
  }
  if (grpc::Status s = reader->Finish(); !s.ok()) return Fail("logs", s);
  return 0;
}

int StopOrResume(Api& api, const std::string& command, const std::string& id) {
  auto ctx = api.Context();
  v1::Job job;
  grpc::Status s;
  if (command == "stop") {
    v1::StopJobRequest req;
    req.set_id(id);
    req.set_reason(absl::GetFlag(FLAGS_reason));
    s = api.stub().StopJob(ctx.get(), req, &job);
  } else {
    v1::ResumeJobRequest req;
    req.set_id(id);
    req.set_reason(absl::GetFlag(FLAGS_reason));
    s = api.stub().ResumeJob(ctx.get(), req, &job);
  }
  if (!s.ok()) return Fail(command, s);
  if (Json()) {
    PrintJson(job);
  } else {
    PrintTable({kJobHeader, JobRow(job)});
  }
  return 0;
}

int Delete(Api& api, const std::string& id) {
  v1::DeleteJobRequest req;
  req.set_id(id);
  v1::DeleteJobResponse resp;
  if (grpc::Status s = api.stub().DeleteJob(api.Context().get(), req, &resp); !s.ok()) {
    return Fail("delete", s);
  }
  if (Json()) {
    PrintJson(resp);
    return 0;
  }
  std::printf("deleted %s\n", resp.id().c_str());
  for (const std::string& path : resp.removed()) std::printf("removed %s\n", path.c_str());
  return 0;
}

}  // namespace

bool IsJobCommand(const std::string& command) {
  static const std::set<std::string> kCommands = {"submit", "status", "list",   "watch",
                                                  "logs",   "stop",   "resume", "delete"};
  return kCommands.contains(command);
}

int RunJobCommand(const std::string& command, const std::vector<std::string>& args,
                  const std::string& control) {
  const std::string output = absl::GetFlag(FLAGS_output);
  if (output != "table" && output != "json") {
    std::fprintf(stderr, "rally %s: --output must be table or json, not '%s'\n", command.c_str(),
                 output.c_str());
    return 2;
  }
  auto token = ReadToken();
  if (!token.ok()) {
    std::fprintf(stderr, "rally %s: %s\n", command.c_str(),
                 std::string(token.status().message()).c_str());
    return 2;
  }
  Api api(v1::JobService::NewStub(MakeChannel(control)), *token);
  if (command == "submit") return Submit(api, args);
  if (command == "list") return List(api);
  if (args.empty()) {
    std::fprintf(stderr, "rally %s: needs a JOB_ID\n", command.c_str());
    return 2;
  }
  if (command == "status") return Status(api, args[0]);
  if (command == "watch") return Watch(api, args[0]);
  if (command == "logs") return Logs(api, args[0]);
  if (command == "delete") return Delete(api, args[0]);
  return StopOrResume(api, command, args[0]);
}

}  // namespace rally
