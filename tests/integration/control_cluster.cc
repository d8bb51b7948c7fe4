#include "tests/integration/control_cluster.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/net/free_port.h"
#include "common/net/server.h"

namespace rally::testing {

using namespace std::chrono_literals;

ControlCluster::ControlCluster(const std::string& dir) : dir_(dir) {
  std::filesystem::create_directories(dir_ + "/logs");
  control_address_ = absl::StrCat("127.0.0.1:", FreePort());
  jobs_ = v1::JobService::NewStub(MakeChannel(control_address_));
}

ControlCluster::~ControlCluster() {
  for (auto* p : {&actor_, &learner_, &replay_, &control_}) {
    if (*p) (*p)->Stop(5s);
  }
}

void ControlCluster::StartControl() {
  const std::string port(absl::StripPrefix(control_address_, "127.0.0.1:"));
  std::vector<std::string> args = {"--port=" + port, "--db=" + dir_ + "/control.sqlite",
                                   "--log_dir=" + dir_ + "/logs", "--data_dirs=" + data_dir()};
  args.insert(args.end(), control_flags_.begin(), control_flags_.end());
  control_ = std::make_unique<Process>("rally-control", args, log("control"));
  if (!WaitForServing(control_address_, 30s).ok()) ADD_FAILURE() << ReadFile(log("control"));
  // A channel of its own: the previous one may be waiting out a reconnect backoff.
  jobs_ = v1::JobService::NewStub(MakeChannel(control_address_, /*own_connection=*/true));
}

void ControlCluster::KillControl() {
  kill(control_->pid(), SIGKILL);
  control_->Wait(10s);
}

void ControlCluster::StartWorkers() {
  const std::string control = "--control=" + control_address_;
  replay_ = std::make_unique<Process>(
      "rally-replay",
      std::vector<std::string>{control, "--name=replay-0", "--data_dir=" + data_dir()},
      log("replay-0"));
  learner_ = std::make_unique<Process>(
      "rally-learner",
      std::vector<std::string>{control, "--name=learner", "--checkpoint_dir=" + checkpoint_dir()},
      log("learner"));
  actor_ = std::make_unique<Process>(
      "rally-actor", std::vector<std::string>{control, "--mode=selfplay", "--name=actor-0"},
      log("actor-0"));
}

v1::Job ControlCluster::Submit(const std::string& spec_yaml, const std::string& request_id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(10s));
  if (!token_.empty()) ctx.AddMetadata("authorization", "Bearer " + token_);
  v1::SubmitJobRequest req;
  req.set_spec_yaml(spec_yaml);
  req.set_request_id(request_id);
  v1::Job job;
  grpc::Status s = jobs_->SubmitJob(&ctx, req, &job);
  if (!s.ok()) ADD_FAILURE() << "SubmitJob: " << s.error_message();
  return job;
}

v1::Job ControlCluster::Get(const std::string& id) {
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(5s));
  if (!token_.empty()) ctx.AddMetadata("authorization", "Bearer " + token_);
  v1::GetJobRequest req;
  req.set_id(id);
  v1::Job job;
  if (!jobs_->GetJob(&ctx, req, &job).ok()) return v1::Job();
  return job;
}

bool ControlCluster::WaitForJob(const std::string& id,
                                const std::function<bool(const v1::Job&)>& done,
                                std::chrono::milliseconds timeout, v1::Job* last) {
  for (auto end = std::chrono::steady_clock::now() + timeout;;) {
    v1::Job job = Get(id);
    if (last != nullptr) *last = job;
    if (!job.id().empty() && done(job)) return true;
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(100ms);
  }
}

std::string SmallJobSpec(const std::string& name, int max_learner_steps, int max_wall_seconds) {
  return absl::StrCat("name: ", name, R"(
seed: 3
game:
  name: tictactoe
policy:
  hidden: [32]
actors:
  count: 1
  envs_per_actor: 16
  threads: 1
  max_batch: 16
replay:
  tables:
    - name: selfplay
      max_size: 64
learner:
  batch_episodes: 16
  publish_every_steps: 2
  checkpoint_every_steps: 10
evaluation:
  opponents: []
stop:
  max_learner_steps: )",
                      max_learner_steps, "\n  max_wall_seconds: ", max_wall_seconds, "\n");
}

std::string HistoryStates(const v1::Job& job) {
  std::vector<std::string> states;
  for (const v1::JobTransition& t : job.history()) {
    states.emplace_back(absl::StripPrefix(v1::JobState_Name(t.state()), "JOB_STATE_"));
  }
  return absl::StrJoin(states, ",");
}

}  // namespace rally::testing
