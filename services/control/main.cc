// rally-control: the job API, the worker registry and the durable job store.
#include <filesystem>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/metrics/metrics.h"
#include "common/net/server.h"
#include "common/net/tls.h"
#include "common/util/log.h"
#include "common/util/shutdown.h"
#include "common/util/usage.h"
#include "services/control/control_service.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "address to bind (env RALLY_HOST)");
ABSL_FLAG(int, port, 7070, "gRPC port; 0 picks a free port");
ABSL_FLAG(int, metrics_port, 0, "Prometheus /metrics port; 0 picks a free port");
ABSL_FLAG(std::string, db, "rally-control.sqlite", "SQLite job store file");
ABSL_FLAG(std::string, log_dir, "",
          "where GetJobLogs reads the processes' logs (<process>.log); empty: logs/ beside --db");
ABSL_FLAG(std::vector<std::string>, data_dirs, {},
          "comma-separated data directories whose jobs/<job_id> DeleteJob removes (the replay "
          "shards' --data_dir)");
ABSL_FLAG(std::string, port_file, "",
          "if set, the bound gRPC port is written here once serving (for --port=0)");
ABSL_FLAG(std::string, tokens_file, "",
          "bearer tokens of the job API, one 'ROLE TOKEN' a line (ROLE read or admin); empty: "
          "the job API is open to anyone who reaches the port (env RALLY_TOKENS_FILE)");

using namespace rally;

int main(int argc, char** argv) {
  ListRallyFlagsInHelp();
  absl::SetProgramUsageMessage("rally-control: job API and worker registry of a rally cluster");
  if (const char* v = std::getenv("RALLY_HOST")) absl::SetFlag(&FLAGS_host, v);
  if (const char* v = std::getenv("RALLY_TOKENS_FILE")) absl::SetFlag(&FLAGS_tokens_file, v);
  SetTlsFlagsFromEnvironment();
  absl::ParseCommandLine(argc, argv);
  SetLogComponent("control");
  if (auto s = InstallTransportSecurityFromFlags(absl::GetFlag(FLAGS_host)); !s.ok()) {
    LogError("cannot start", {{"error", std::string(s.message())}});
    return 1;
  }
  InstallShutdownHandlers();

  auto metrics = MetricsServer::Start(absl::GetFlag(FLAGS_host), absl::GetFlag(FLAGS_metrics_port));
  if (!metrics.ok()) {
    LogError("cannot start metrics", {{"error", metrics.status().ToString()}});
    return 1;
  }
  auto store = JobStore::Open(absl::GetFlag(FLAGS_db));
  if (!store.ok()) {
    LogError("cannot open job store", {{"error", store.status().ToString()}});
    return 1;
  }
  Controller controller(std::move(*store), (*metrics)->registry(), absl::GetFlag(FLAGS_data_dirs));
  if (auto s = controller.Recover(); !s.ok()) {
    LogError("cannot load jobs", {{"error", s.ToString()}});
    return 1;
  }
  std::string log_dir = absl::GetFlag(FLAGS_log_dir);
  if (log_dir.empty()) {
    log_dir = (std::filesystem::path(absl::GetFlag(FLAGS_db)).parent_path() / "logs").string();
  }
  std::optional<TokenTable> tokens;
  if (std::string f = absl::GetFlag(FLAGS_tokens_file); !f.empty()) {
    auto loaded = TokenTable::Load(f);
    if (!loaded.ok()) {
      LogError("cannot load the tokens file", {{"error", loaded.status().ToString()}});
      return 1;
    }
    LogInfo("job API needs bearer tokens", {{"tokens_file", f},
                                            {"read_tokens", loaded->Count(Role::kRead)},
                                            {"admin_tokens", loaded->Count(Role::kAdmin)}});
    tokens = std::move(*loaded);
  } else {
    LogWarning("no --tokens_file: the job API is open to anyone who can reach its port");
  }
  JobServiceImpl jobs(controller, log_dir, std::move(tokens));
  WorkerServiceImpl workers(controller);
  auto server =
      GrpcServer::Start(absl::GetFlag(FLAGS_host), absl::GetFlag(FLAGS_port), {&jobs, &workers});
  if (!server.ok()) {
    LogError("cannot start server", {{"error", server.status().ToString()}});
    return 1;
  }
  if (std::string f = absl::GetFlag(FLAGS_port_file); !f.empty()) {
    std::string tmp = f + ".tmp";
    if (FILE* out = std::fopen(tmp.c_str(), "w")) {
      std::fprintf(out, "%d\n", (*server)->port());
      std::fclose(out);
      std::rename(tmp.c_str(), f.c_str());
    }
  }
  LogInfo("serving", {{"address", (*server)->address()},
                      {"transport", CurrentTransportSecurity().Description()},
                      {"metrics", (*metrics)->address()},
                      {"db", absl::GetFlag(FLAGS_db)},
                      {"log_dir", log_dir}});
  while (!WaitForShutdown(std::chrono::milliseconds(500))) controller.Tick();
  (*server)->Shutdown();
  LogInfo("stopped");
  return 0;
}
