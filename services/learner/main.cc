// rally-learner: trains the job's policy on batches from the replay; rank 0 serves the weights.
#include <torch/torch.h>
#include <unistd.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/config/job_config.h"
#include "common/metrics/metrics.h"
#include "common/net/control_client.h"
#include "common/net/server.h"
#include "common/net/worker_flags.h"
#include "common/util/log.h"
#include "common/util/shutdown.h"
#include "services/learner/trainer.h"
#include "services/learner/weight_service.h"

ABSL_FLAG(int, rank, -1, "learner rank; default: $RANK or 0");
ABSL_FLAG(std::string, checkpoint_dir, "", "directory for checkpoints; empty: none");
ABSL_FLAG(int, torch_threads, 1, "intra-op threads LibTorch may use");

using namespace rally;

int main(int argc, char** argv) {
  ParseWorkerFlags(argc, argv, "rally-learner: a learner rank of a rally cluster");
  SetLogComponent("learner");
  InstallShutdownHandlers();
  int rank = absl::GetFlag(FLAGS_rank);
  if (rank < 0) rank = std::getenv("RANK") ? std::atoi(std::getenv("RANK")) : 0;
  torch::set_num_threads(absl::GetFlag(FLAGS_torch_threads));

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
                      {"metrics", (*metrics)->address()},
                      {"rank", rank}});

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
    if (s.ok()) {
      s = RunTrainer(*assignment, *config, options, control, weights, trainer_metrics, progress);
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
  LogInfo("stopped");
  return 0;
}
