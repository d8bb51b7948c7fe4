// rally-learner: trains the job's policy on batches from the replay; rank 0 serves the weights.
#include <unistd.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/config/job_config.h"
#include "common/metrics/metrics.h"
#include "common/models/threads.h"
#include "common/net/control_client.h"
#include "common/net/server.h"
#include "common/net/tls.h"
#include "common/net/worker_flags.h"
#include "common/util/log.h"
#include "common/util/shutdown.h"
#include "common/util/usage.h"
#include "services/learner/distributed.h"
#include "services/learner/trainer.h"
#include "services/learner/weight_service.h"

ABSL_FLAG(int, rank, -1, "learner rank; default: $RANK or 0");
ABSL_FLAG(std::string, checkpoint_dir, "", "directory for checkpoints; empty: none");
ABSL_FLAG(int, torch_threads, 1, "intra-op threads LibTorch may use");
ABSL_FLAG(int, world_size, -1, "learner ranks in data parallel; default: $WORLD_SIZE or 1");
ABSL_FLAG(std::string, master_addr, "", "rank 0's rendezvous host; default: $MASTER_ADDR");
ABSL_FLAG(int, master_port, -1, "rendezvous port; default: $MASTER_PORT or 29500");
ABSL_FLAG(int, rendezvous_timeout_s, 300, "how long ranks wait for each other");

using namespace rally;

// The exit status of a rank that lost a peer rank mid-job (EX_TEMPFAIL): the group cannot go on
// without it, so this rank exits for the cluster to restart the whole group, which resumes the
// job from rank 0's latest checkpoint. Distinct from 1 (the rank could not start).
constexpr int kExitPeerLost = 75;

int main(int argc, char** argv) {
  ListRallyFlagsInHelp();
  ParseWorkerFlags(argc, argv, "rally-learner: a learner rank of a rally cluster");
  SetLogComponent("learner");
  InstallShutdownHandlers();
  // PyTorch's conventions (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); flags given win.
  DistributedOptions dist_defaults;
  dist_defaults.local_host = absl::GetFlag(FLAGS_host);
  dist_defaults.timeout = std::chrono::seconds(absl::GetFlag(FLAGS_rendezvous_timeout_s));
  auto dist = DistributedOptionsFromEnv(dist_defaults);
  if (!dist.ok()) {
    LogError("bad data-parallel settings", {{"error", dist.status().ToString()}});
    return 1;
  }
  if (absl::GetFlag(FLAGS_rank) >= 0) dist->rank = absl::GetFlag(FLAGS_rank);
  if (absl::GetFlag(FLAGS_world_size) > 0) dist->world_size = absl::GetFlag(FLAGS_world_size);
  if (!absl::GetFlag(FLAGS_master_addr).empty())
    dist->master_addr = absl::GetFlag(FLAGS_master_addr);
  if (absl::GetFlag(FLAGS_master_port) > 0) dist->master_port = absl::GetFlag(FLAGS_master_port);
  if (dist->rank >= dist->world_size) {
    LogError("bad data-parallel settings",
             {{"error", absl::StrCat("rank ", dist->rank, " >= world size ", dist->world_size)}});
    return 1;
  }
  const int rank = dist->rank;
  SetComputeThreads(absl::GetFlag(FLAGS_torch_threads));

  auto metrics = MetricsServer::Start(absl::GetFlag(FLAGS_host), absl::GetFlag(FLAGS_metrics_port));
  if (!metrics.ok()) {
    LogError("cannot start metrics", {{"error", metrics.status().ToString()}});
    return 1;
  }
  WeightServiceImpl weights((*metrics)->registry());
  TrainerMetrics trainer_metrics((*metrics)->registry());
  auto server = GrpcServer::Start(absl::GetFlag(FLAGS_host), absl::GetFlag(FLAGS_port), {&weights});
  if (!server.ok()) {
    LogError("cannot start server", {{"error", server.status().ToString()}});
    return 1;
  }
  std::string address = AdvertisedAddress((*server)->port());
  LogInfo("serving", {{"pid", static_cast<long long>(getpid())},
                      {"address", address},
                      {"transport", CurrentTransportSecurity().Description()},
                      {"metrics", (*metrics)->address()},
                      {"rank", rank},
                      {"blas", BlasLibrary()}});

  v1::RegisterRequest reg;
  reg.set_role(v1::WORKER_ROLE_LEARNER);
  reg.set_name(absl::GetFlag(FLAGS_name).empty() ? absl::StrCat("learner-", rank)
                                                 : absl::GetFlag(FLAGS_name));
  reg.set_address(address);
  reg.set_metrics_address(AdvertisedAddress((*metrics)->port()));
  reg.set_rank(rank);
  ControlClient control(absl::GetFlag(FLAGS_control), reg);
  TrainerProgress progress;
  std::mutex mu;
  std::string job_id;
  std::string error;
  control.Start([&](v1::WorkerReport* report) {
    std::lock_guard<std::mutex> lock(mu);
    report->set_job_id(job_id);
    report->set_learner_steps(progress.steps);
    report->set_policy_version(progress.version);
    report->set_error(error);
  });

  TrainerOptions options;
  options.rank = rank;
  options.checkpoint_dir = absl::GetFlag(FLAGS_checkpoint_dir);
  std::unique_ptr<Rendezvous> rendezvous;
  int exit_code = 0;
  while (!ShutdownRequested()) {
    auto assignment = control.WaitForActiveAssignment(std::chrono::seconds(1));
    if (!assignment) continue;
    auto config = ParseJobConfig(assignment->spec_yaml(), "job " + assignment->job_id());
    {
      std::lock_guard<std::mutex> lock(mu);
      job_id = assignment->job_id();
      error = config.ok() ? "" : config.status().ToString();
    }
    absl::Status s = config.status();
    if (s.ok() && dist->world_size > 1 && !rendezvous) {
      // The ranks meet once per process; every job then gets its own process group.
      auto connected = Rendezvous::Connect(*dist);
      if (connected.ok()) {
        rendezvous = std::move(*connected);
        options.rendezvous = rendezvous.get();
      } else {
        s = connected.status();
      }
    }
    if (s.ok()) {
      auto trainer = Trainer::Create(*assignment, *config, options, control, weights,
                                     trainer_metrics, progress);
      s = trainer.ok() ? (*trainer)->Run() : trainer.status();
    }
    if (IsPeerLost(s)) {
      // Not the job's error: control keeps the job, which recovers when the group is back.
      LogError("lost a peer rank; exiting so the group restarts",
               {{"job_id", assignment->job_id()},
                {"rank", rank},
                {"exit_code", kExitPeerLost},
                {"error", std::string(s.message())}});
      exit_code = kExitPeerLost;
      break;
    }
    if (!s.ok()) {
      LogError("job failed", {{"job_id", assignment->job_id()}, {"error", s.ToString()}});
      {
        std::lock_guard<std::mutex> lock(mu);
        error = s.ToString();
      }
    }
    control.FlushReport();
    // Wait for control to end the job before forgetting it.
    while (control.IsActive(assignment->job_id()) &&
           !WaitForShutdown(std::chrono::milliseconds(200))) {
    }
    weights.Reset();
    std::lock_guard<std::mutex> lock(mu);
    job_id.clear();
    error.clear();
  }
  weights.Close();
  (*server)->Shutdown();
  control.Stop();
  LogInfo("stopped", {{"exit_code", exit_code}});
  return exit_code;
}
