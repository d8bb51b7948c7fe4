// rally-replay: stores the trajectories actors stream in and serves batches to learners.
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/config/job_config.h"
#include "common/games/registry.h"
#include "common/metrics/metrics.h"
#include "common/net/control_client.h"
#include "common/net/server.h"
#include "common/net/tls.h"
#include "common/net/worker_flags.h"
#include "common/util/log.h"
#include "common/util/memory.h"
#include "common/util/shutdown.h"
#include "common/util/usage.h"
#include "services/replay/curriculum.h"
#include "services/replay/curriculum_service.h"
#include "services/replay/replay_job.h"
#include "services/replay/replay_service.h"
#include "services/replay/snapshot_pool.h"

ABSL_FLAG(std::string, data_dir, "",
          "directory for the write-ahead logs and snapshots, one directory per job under "
          "jobs/; empty: no durability (env RALLY_REPLAY_DATA_DIR)");

using namespace rally;

namespace {

// The health check that answers NOT_SERVING while the installed job's recovery found that
// acknowledged items may be missing; the whole server ("") stays SERVING.
constexpr char kRecoveryHealth[] = "rally.replay.recovery";

// The job's curriculum: its options from the spec, its tasks, seats from the game.
absl::StatusOr<std::shared_ptr<Curriculum>> MakeCurriculum(const JobConfig& config) {
  auto game = LoadGame(config.game.name, config.game.params);
  if (!game.ok()) return game.status();
  const CurriculumConfig& cc = config.curriculum;
  CurriculumOptions o;
  o.window = cc.window;
  o.opponent_selection = cc.opponent_selection;
  o.pfsp_weighting = cc.pfsp_weighting;
  o.pfsp_exponent = cc.pfsp_exponent;
  o.self_play_share = cc.self_play_share;
  o.prior_win_rate = cc.prior_win_rate;
  o.task_floor = cc.task_floor;
  o.prior_success_rate = cc.prior_success_rate;
  o.num_seats = (*game)->NumPlayers();
  o.seed = static_cast<uint64_t>(config.seed);
  auto curriculum = Curriculum::Create(o);
  if (!curriculum.ok()) return curriculum.status();
  for (const std::string& task : cc.tasks) {
    if (auto s = (*curriculum)->AddTask(task); !s.ok()) return s;
  }
  return std::shared_ptr<Curriculum>(std::move(*curriculum));
}

}  // namespace

int main(int argc, char** argv) {
  ListRallyFlagsInHelp();
  ParseWorkerFlags(argc, argv, "rally-replay: the replay service of a rally cluster");
  SetLogComponent("replay");
  RetainFreedMemory();
  InstallShutdownHandlers();

  auto metrics = MetricsServer::Start(absl::GetFlag(FLAGS_host), absl::GetFlag(FLAGS_metrics_port));
  if (!metrics.ok()) {
    LogError("cannot start metrics", {{"error", metrics.status().ToString()}});
    return 1;
  }
  std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  if (data_dir.empty() && std::getenv("RALLY_REPLAY_DATA_DIR")) {
    data_dir = std::getenv("RALLY_REPLAY_DATA_DIR");
  }
  if (!data_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(data_dir, ec);
    absl::Status adopted =
        ec ? absl::UnavailableError(absl::StrCat("cannot create ", data_dir, ": ", ec.message()))
           : AdoptSharedDataDir(data_dir);
    if (!adopted.ok()) {
      LogError("cannot open the data directory", {{"error", adopted.ToString()}});
      return 1;
    }
    LogInfo("data directory opened: each job's log and snapshots in jobs/<job_id>",
            {{"dir", data_dir}});
  }
  ReplayServiceImpl service((*metrics)->registry(), data_dir);
  prometheus::Gauge& wal_failing =
      AddGauge((*metrics)->registry(), "rally_replay_wal_failing",
               "1 while the installed job's write-ahead log cannot write (a full disk, an I/O "
               "error): inserts are refused and health is NOT_SERVING until it resumes.");
  CurriculumServiceImpl curriculum(&(*metrics)->registry());
  auto server = GrpcServer::Start(absl::GetFlag(FLAGS_host), absl::GetFlag(FLAGS_port),
                                  {&service, &curriculum});
  if (!server.ok()) {
    LogError("cannot start server", {{"error", server.status().ToString()}});
    return 1;
  }
  (*server)->SetServing(kRecoveryHealth, true);
  std::string address = AdvertisedAddress((*server)->port());
  LogInfo("serving", {{"pid", static_cast<long long>(getpid())},
                      {"address", address},
                      {"transport", CurrentTransportSecurity().Description()},
                      {"metrics", (*metrics)->address()}});

  v1::RegisterRequest reg;
  reg.set_role(v1::WORKER_ROLE_REPLAY);
  reg.set_name(absl::GetFlag(FLAGS_name).empty() ? "replay-0" : absl::GetFlag(FLAGS_name));
  reg.set_address(address);
  reg.set_metrics_address(AdvertisedAddress((*metrics)->port()));
  ControlClient control(absl::GetFlag(FLAGS_control), reg);
  std::string job_id;
  control.Start([&](v1::WorkerReport* report) {
    report->set_job_id(job_id);
    report->set_trajectories_inserted(service.inserted_total());
  });

  while (!ShutdownRequested()) {
    auto assignment = control.WaitForActiveAssignment(std::chrono::seconds(1));
    if (!assignment) continue;
    auto config = ParseJobConfig(assignment->spec_yaml(), "job " + assignment->job_id());
    if (!config.ok()) {
      LogError("job spec rejected", {{"error", config.status().ToString()}});
      WaitForShutdown(std::chrono::seconds(1));
      continue;
    }
    if (auto s = service.SetJob(assignment->job_id(), assignment->spec_yaml(), *config); !s.ok()) {
      LogError("cannot install job", {{"error", s.ToString()}});
      WaitForShutdown(std::chrono::seconds(5));
      continue;
    }
    job_id = assignment->job_id();
    // A job whose data directory was damaged keeps running on what could be recovered; the
    // named health check (and the metric, and the log) say that acknowledged items may be gone.
    (*server)->SetServing(kRecoveryHealth, !service.recovery_data_lost());
    // With uniform or pfsp selection the opponent pool is the learner's snapshot pool.
    std::unique_ptr<SnapshotPoolPoller> pool;
    if (auto c = MakeCurriculum(*config); c.ok()) {
      if (config->curriculum.opponent_selection != "latest") {
        pool = std::make_unique<SnapshotPoolPoller>(
            [&control] { return control.assignment().endpoints().weights(); }, *c);
        pool->Start();
      }
      curriculum.SetCurriculum(config->game.name, std::move(*c));
    } else {
      LogError("cannot create the curriculum", {{"error", c.status().ToString()}});
    }
    for (int tick = 0; control.IsActive(job_id) && !WaitForShutdown(std::chrono::milliseconds(200));
         ++tick) {
      if (tick % 5 == 0) curriculum.UpdateMetrics();
      // While the write-ahead log fails (a full disk), inserts are refused: the replay is not
      // serving, and says so until the log resumes.
      const bool log_ok = service.log_health().ok();
      (*server)->SetServing("", log_ok);
      wal_failing.Set(log_ok ? 0 : 1);
    }
    (*server)->SetServing("", true);
    wal_failing.Set(0);
    if (pool) pool->Stop();
    if (auto c = curriculum.curriculum(); c != nullptr && pool != nullptr) {
      CurriculumStats stats = c->Stats();
      for (const TaskStats& t : stats.tasks) {
        for (const OpponentStats& o : t.opponents) {
          LogInfo("curriculum opponent", {{"task", t.task_id},
                                          {"opponent", o.opponent_id},
                                          {"games", o.total.games},
                                          {"win_rate", o.win_rate},
                                          {"probability", o.probability}});
        }
      }
    }
    control.FlushReport();
    // Keep the tables (and their log) when shutting down mid-job: a restarted replay recovers them.
    if (!ShutdownRequested()) {
      service.ClearJob();
      (*server)->SetServing(kRecoveryHealth, true);
    }
    curriculum.ClearCurriculum();
    job_id.clear();
  }
  service.Close();
  (*server)->Shutdown();
  control.Stop();
  LogInfo("stopped");
  return 0;
}
