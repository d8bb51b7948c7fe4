// Who may do what on a real rally-control started with --tokens_file, its workers running a job:
// calls without a token or with an unknown one are UNAUTHENTICATED, a read token reads but cannot
// stop the job (PERMISSION_DENIED, the job still RUNNING), an admin token stops it, through the
// API and through the CLI (--token_file and RALLY_TOKEN); heartbeats and registrations that borrow
// a worker's identity without its lease, and a second learner rank 0, are refused and the job
// trains on; a control killed and started again checks the leases of the workers registering
// again against its store, and re-adopts the job.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "common/net/server.h"
#include "nlohmann/json.hpp"
#include "tests/integration/control_cluster.h"

namespace rally {
namespace {

using namespace std::chrono_literals;

const char kReadToken[] = "read-7f3a9c21d4e8b605";
const char kAdminToken[] = "admin-2b8e4f61a9c3d750";

class ControlAuth : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir("control-auth");
    std::ofstream(dir_ + "/tokens")
        << "# roles of the job API\nread " << kReadToken << "\nadmin " << kAdminToken << "\n";
    // Token files as people write them: a trailing newline.
    std::ofstream(dir_ + "/read.token") << kReadToken << "\n";
    std::ofstream(dir_ + "/admin.token") << kAdminToken << "\n";
    cluster_ = std::make_unique<testing::ControlCluster>(dir_);
    cluster_->set_control_flags({"--tokens_file=" + dir_ + "/tokens"});
    cluster_->set_token(kAdminToken);
    ASSERT_NO_FATAL_FAILURE(cluster_->StartControl());
    cluster_->StartWorkers();
    job_ = cluster_->Submit(testing::SmallJobSpec("auth", 1000000, 200));
    ASSERT_FALSE(job_.id().empty());
    v1::Job running;
    ASSERT_TRUE(cluster_->WaitForJob(
        job_.id(), [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; }, 120s,
        &running))
        << running.DebugString() << testing::ReadFile(cluster_->log("control"));
  }

  // GetJob of the job with `authorization` metadata (none when empty).
  grpc::Status GetJob(const std::string& authorization, v1::Job* job = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(5s));
    if (!authorization.empty()) ctx.AddMetadata("authorization", authorization);
    v1::GetJobRequest req;
    req.set_id(job_.id());
    v1::Job reply;
    return cluster_->jobs().GetJob(&ctx, req, job != nullptr ? job : &reply);
  }

  // Runs `rally args...` against the cluster; its output (stdout and stderr) and exit code.
  int Cli(std::vector<std::string> args, std::string* out) {
    args.push_back("--control=" + cluster_->control_address());
    const std::string log = dir_ + "/cli-" + std::to_string(cli_runs_++) + ".out";
    const int code = testing::RunToCompletion("rally", args, log, 30s);
    *out = testing::ReadFile(log);
    return code;
  }

  std::string dir_;
  std::unique_ptr<testing::ControlCluster> cluster_;
  v1::Job job_;
  int cli_runs_ = 0;
};

TEST_F(ControlAuth, TokensDecideWhoMayReadAndWhoMayStop) {
  grpc::Status none = GetJob("");
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(none.error_message(), "missing bearer token");
  grpc::Status wrong = GetJob("Bearer admin-2b8e4f61a9c3d751");
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(wrong.error_message(), "unknown token");
  grpc::Status lease = [&] {
    grpc::ClientContext ctx;
    ctx.AddMetadata("x-rally-lease", std::string(32, '0'));
    v1::GetJobRequest req;
    req.set_id(job_.id());
    v1::Job job;
    return cluster_->jobs().GetJob(&ctx, req, &job);
  }();
  EXPECT_EQ(lease.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(lease.error_message(), "unknown lease");

  // A read token reads ...
  v1::Job read;
  ASSERT_TRUE(GetJob(std::string("Bearer ") + kReadToken, &read).ok());
  EXPECT_EQ(read.state(), v1::JOB_STATE_RUNNING);
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kReadToken);
    v1::ListJobsResponse listed;
    ASSERT_TRUE(cluster_->jobs().ListJobs(&ctx, v1::ListJobsRequest(), &listed).ok());
    ASSERT_EQ(listed.jobs_size(), 1);
    EXPECT_EQ(listed.jobs(0).id(), job_.id());
  }
  // ... but cannot stop the job, from the API or the CLI; the job runs on.
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", std::string("Bearer ") + kReadToken);
    v1::StopJobRequest req;
    req.set_id(job_.id());
    v1::Job job;
    grpc::Status s = cluster_->jobs().StopJob(&ctx, req, &job);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(s.error_message(), "StopJob needs the admin role; this token has the read role");
  }
  std::string out;
  EXPECT_EQ(Cli({"stop", job_.id(), "--token_file=" + dir_ + "/read.token"}, &out), 1);
  EXPECT_EQ(out, "rally stop: StopJob needs the admin role; this token has the read role\n");
  EXPECT_EQ(Cli({"status", job_.id()}, &out), 1);
  EXPECT_EQ(out, "rally status: missing bearer token\n");
  EXPECT_EQ(Cli({"status", job_.id(), "--token_file=" + dir_ + "/none.token"}, &out), 2);
  EXPECT_EQ(out, "rally status: --token_file " + dir_ + "/none.token: cannot read\n");
  ASSERT_EQ(Cli({"list", "--output=json", "--token_file=" + dir_ + "/read.token"}, &out), 0) << out;
  EXPECT_EQ(cluster_->Get(job_.id()).state(), v1::JOB_STATE_RUNNING);

  // RALLY_TOKEN with an admin token stops it.
  setenv("RALLY_TOKEN", kAdminToken, 1);
  const int code = Cli({"stop", job_.id(), "--reason=stopped by an admin", "--output=json"}, &out);
  unsetenv("RALLY_TOKEN");
  ASSERT_EQ(code, 0) << out;
  const auto stopped = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  EXPECT_EQ(stopped["state"], "JOB_STATE_CANCELLED") << out;
  EXPECT_EQ(stopped["reason"], "stopped by an admin") << out;
  EXPECT_EQ(testing::HistoryStates(cluster_->Get(job_.id())), "PENDING,STARTING,RUNNING,CANCELLED");

  // Control logged the refusals and the admin's call by role and fingerprint, never a token.
  const std::string control_log = testing::ReadFile(cluster_->log("control"));
  EXPECT_EQ(control_log.find(kReadToken), std::string::npos);
  EXPECT_EQ(control_log.find(kAdminToken), std::string::npos);
  EXPECT_EQ(testing::LogLines(cluster_->log("control"), "call refused").size(), 6u) << control_log;
  const auto admin_calls = testing::LogLines(cluster_->log("control"), "admin call");
  ASSERT_FALSE(admin_calls.empty());
  EXPECT_TRUE(absl::StartsWith(admin_calls.back()["caller"].get<std::string>(), "admin token "));
  // The learner asks control about the ended job with its lease, not a token.
  std::this_thread::sleep_for(3s);
  EXPECT_TRUE(
      testing::LogLines(cluster_->log("learner"), "cannot ask control whether the target was met")
          .empty())
      << testing::ReadFile(cluster_->log("learner"));
}

TEST_F(ControlAuth, AWorkersIdentityCannotBeBorrowed) {
  const std::string learner = testing::WaitForLogField(cluster_->log("learner"),
                                                       "registered with control", "worker_id", 10s);
  ASSERT_FALSE(learner.empty());
  auto workers = v1::WorkerService::NewStub(MakeChannel(cluster_->control_address()));
  // A heartbeat as the learner, without its lease, reporting an error that would fail the job.
  for (const std::string& lease : {std::string(), std::string(32, '0')}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(5s));
    v1::HeartbeatRequest req;
    req.set_worker_id(learner);
    req.set_lease(lease);
    req.mutable_report()->set_job_id(job_.id());
    req.mutable_report()->set_error("forged");
    v1::HeartbeatResponse resp;
    grpc::Status s = workers->Heartbeat(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_EQ(s.error_message(), "lease does not match worker " + learner);
  }
  // Registrations: a second learner rank 0, a second replay-0, and one posing as the learner.
  auto reg = [&](v1::WorkerRole role, const std::string& name, const std::string& previous) {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(5s));
    v1::RegisterRequest req;
    req.set_role(role);
    req.set_name(name);
    req.set_address("127.0.0.1:1");
    req.set_previous_worker_id(previous);
    req.set_previous_lease(std::string(32, '0'));
    v1::RegisterResponse resp;
    return workers->Register(&ctx, req, &resp);
  };
  grpc::Status rank0 = reg(v1::WORKER_ROLE_LEARNER, "learner-2", "");
  EXPECT_EQ(rank0.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_TRUE(absl::StartsWith(rank0.error_message(),
                               "learner rank 0 is held by live worker " + learner + " (learner, "))
      << rank0.error_message();
  grpc::Status shard = reg(v1::WORKER_ROLE_REPLAY, "replay-0", "");
  EXPECT_EQ(shard.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_TRUE(absl::StartsWith(shard.error_message(), "replay shard 'replay-0' is held by live"))
      << shard.error_message();
  grpc::Status posing = reg(v1::WORKER_ROLE_LEARNER, "learner", learner);
  EXPECT_EQ(posing.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(posing.error_message(), "lease does not match worker " + learner);

  // The job trains on, its history untouched.
  const int64_t steps = cluster_->Get(job_.id()).progress().learner_steps();
  v1::Job later;
  EXPECT_TRUE(cluster_->WaitForJob(
      job_.id(), [&](const v1::Job& j) { return j.progress().learner_steps() > steps; }, 30s,
      &later));
  EXPECT_EQ(later.state(), v1::JOB_STATE_RUNNING) << later.DebugString();
  EXPECT_EQ(testing::HistoryStates(later), "PENDING,STARTING,RUNNING");
}

TEST_F(ControlAuth, ARestartedControlChecksTheLeasesOfWorkersRegisteringAgain) {
  const std::string learner = testing::WaitForLogField(cluster_->log("learner"),
                                                       "registered with control", "worker_id", 10s);
  ASSERT_FALSE(learner.empty());
  cluster_->KillControl();
  ASSERT_NO_FATAL_FAILURE(cluster_->StartControl());

  // Posing as the learner with its id: refused whether the learner has registered again yet
  // (a live worker's lease) or not (the lease's digest in control's store).
  auto workers = v1::WorkerService::NewStub(MakeChannel(cluster_->control_address()));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(5s));
  v1::RegisterRequest req;
  req.set_role(v1::WORKER_ROLE_LEARNER);
  req.set_name("learner");
  req.set_address("127.0.0.1:1");
  req.set_previous_worker_id(learner);
  req.set_previous_lease(std::string(32, 'f'));
  v1::RegisterResponse resp;
  grpc::Status posing = workers->Register(&ctx, req, &resp);
  EXPECT_EQ(posing.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(posing.error_message(), "lease does not match worker " + learner);

  // The workers present their leases: the job is re-adopted and the learner keeps its id.
  v1::Job recovered;
  ASSERT_TRUE(cluster_->WaitForJob(
      job_.id(),
      [](const v1::Job& j) {
        return j.state() == v1::JOB_STATE_RUNNING && j.reason() == "training (recovered)";
      },
      60s, &recovered))
      << recovered.DebugString() << testing::ReadFile(cluster_->log("control"));
  EXPECT_EQ(testing::HistoryStates(recovered), "PENDING,STARTING,RUNNING,RECOVERING,RUNNING");
  const auto registered = testing::LogLines(cluster_->log("control"), "worker registered");
  int again = 0;
  for (const nlohmann::json& line : registered) {
    if (line["previous_worker_id"] == learner) {
      EXPECT_EQ(line["worker_id"], learner) << line.dump();
      ++again;
    }
  }
  EXPECT_EQ(again, 1) << testing::ReadFile(cluster_->log("control"));
}

}  // namespace
}  // namespace rally
