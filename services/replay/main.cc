// rally-replay: stores the trajectories actors stream in and serves batches to learners.
#include <unistd.h>

#include <thread>

#include "absl/flags/flag.h"
#include "common/config/job_config.h"
#include "common/games/registry.h"
#include "common/metrics/metrics.h"
#include "common/net/control_client.h"
#include "common/net/server.h"
#include "common/net/worker_flags.h"
#include "common/util/log.h"
#include "common/util/memory.h"
#include "common/util/shutdown.h"
#include "services/replay/curriculum.h"
#include "services/replay/curriculum_service.h"
#include "services/replay/durable_store.h"
#include "services/replay/replay_service.h"
#include "services/replay/snapshot_pool.h"

ABSL_FLAG(std::string, data_dir, "",
          "directory for the write-ahead log and snapshots; empty: no durability (env "
          "RALLY_REPLAY_DATA_DIR)");

using namespace rally;

namespace {

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
  std::unique_ptr<DurableStore> store;
  if (!data_dir.empty()) {
    DurabilityOptions options;
    options.dir = data_dir;
    auto opened = DurableStore::Open(options);
    if (!opened.ok()) {
      LogError("cannot open the data directory", {{"error", opened.status().ToString()}});
      return 1;
    }
    store = std::move(*opened);
    const RecoveredState& rec = store->recovered();
    LogInfo("data directory opened", {{"dir", data_dir},
                                      {"snapshot_job", rec.snapshot.job().job_id()},
                                      {"records", static_cast<int64_t>(rec.records.size())},
                                      {"torn_tail", rec.torn_tail}});
  }
  ReplayServiceImpl service((*metrics)->registry(), store.get());
  CurriculumServiceImpl curriculum(&(*metrics)->registry());
  auto server = GrpcServer::Start(absl::GetFlag(FLAGS_host), absl::GetFlag(FLAGS_port),
                                  {&service, &curriculum});
  if (!server.ok()) {
    LogError("cannot start server", {{"error", server.status().ToString()}});
    return 1;
  }
  std::string address = AdvertisedAddress((*server)->port());
  LogInfo("serving", {{"pid", static_cast<long long>(getpid())},
                      {"address", address},
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
      continue;
    }
    job_id = assignment->job_id();
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
    }
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
    if (!ShutdownRequested()) service.ClearJob();
    curriculum.ClearCurriculum();
    job_id.clear();
  }
  service.Close();
  (*server)->Shutdown();
  control.Stop();
  LogInfo("stopped");
  return 0;
}
