// The job lifecycle through JobService against real processes on loopback: a stopped job
// resumed continues from its checkpoint (learner step and policy version go on from it), a
// deleted job's data is gone (and a job that has not ended cannot be deleted), the same request
// id submitted twice gives one job, and broken job specs get the messages docs/api.md documents.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/net/control_client.h"
#include "common/net/server.h"
#include "nlohmann/json.hpp"
#include "tests/integration/control_cluster.h"

namespace rally {
namespace {

using namespace std::chrono_literals;
using testing::ControlCluster;
using testing::HistoryStates;
using testing::SmallJobSpec;

bool Ended(const v1::Job& j) { return IsTerminal(j.state()); }

TEST(ControlLifecycle, AStoppedJobResumesFromItsCheckpointAndIsDeletedWithItsData) {
  ControlCluster cluster(testing::TempDir("control-lifecycle"));
  ASSERT_NO_FATAL_FAILURE(cluster.StartControl());
  cluster.StartWorkers();
  const v1::Job job = cluster.Submit(SmallJobSpec("resumable", 3000));
  v1::Job seen;
  // Past the checkpoint at step 20 (and the next, which may be in flight).
  ASSERT_TRUE(cluster.WaitForJob(
      job.id(), [](const v1::Job& j) { return j.progress().learner_steps() >= 35; }, 120s, &seen))
      << seen.DebugString() << testing::ReadFile(cluster.log("control"));

  // Deleting a job that has not ended is refused, and changes nothing.
  {
    grpc::ClientContext ctx;
    v1::DeleteJobRequest req;
    req.set_id(job.id());
    v1::DeleteJobResponse resp;
    grpc::Status s = cluster.jobs().DeleteJob(&ctx, req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_EQ(s.error_message(),
              "job " + job.id() +
                  " is RUNNING; only an ended job (SUCCEEDED, FAILED or CANCELLED) can be "
                  "deleted: stop it first");
  }

  v1::Job stopped;
  {
    grpc::ClientContext ctx;
    v1::StopJobRequest req;
    req.set_id(job.id());
    req.set_reason("paused by the test");
    ASSERT_TRUE(cluster.jobs().StopJob(&ctx, req, &stopped).ok());
  }
  EXPECT_EQ(stopped.state(), v1::JOB_STATE_CANCELLED);
  EXPECT_EQ(stopped.reason(), "paused by the test");
  EXPECT_LT(stopped.progress().learner_steps(), 3000);
  // The learner stops working the job within a heartbeat and checkpoints where it ended.
  std::vector<nlohmann::json> ended;
  for (int i = 0; i < 300 && ended.empty(); ++i) {
    ended = testing::LogLines(cluster.log("learner"), "training ended");
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(ended.size(), 1u) << testing::ReadFile(cluster.log("learner"));
  const int64_t ended_step = ended[0]["steps"].get<int64_t>();
  const int64_t ended_version = ended[0]["version"].get<int64_t>();
  EXPECT_GE(ended_step, 35);

  v1::Job resumed;
  {
    grpc::ClientContext ctx;
    v1::ResumeJobRequest req;
    req.set_id(job.id());
    ASSERT_TRUE(cluster.jobs().ResumeJob(&ctx, req, &resumed).ok());
  }
  EXPECT_EQ(resumed.id(), job.id());
  v1::Job done;
  ASSERT_TRUE(cluster.WaitForJob(job.id(), Ended, 180s, &done))
      << done.DebugString() << testing::ReadFile(cluster.log("control"));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.DebugString();
  EXPECT_EQ(HistoryStates(done),
            "PENDING,STARTING,RUNNING,CANCELLED,PENDING,STARTING,RUNNING,SUCCEEDED");
  EXPECT_EQ(done.history(4).reason(), "resumed by request");

  // The resumed learner went on from the checkpoint the first run ended with: the same step and
  // policy version, not 0.
  const auto resumes = testing::LogLines(cluster.log("learner"), "resumed from checkpoint");
  ASSERT_EQ(resumes.size(), 1u) << testing::ReadFile(cluster.log("learner"));
  EXPECT_EQ(resumes[0]["job_id"], job.id());
  EXPECT_EQ(resumes[0]["step"].get<int64_t>(), ended_step);
  EXPECT_EQ(resumes[0]["version"].get<int64_t>(), ended_version);
  EXPECT_GT(ended_version, 0);
  EXPECT_GE(done.progress().learner_steps(), 3000);

  // Delete removes the job and its replay data.
  const std::string data = cluster.data_dir() + "/jobs/" + job.id();
  ASSERT_TRUE(std::filesystem::exists(data));
  v1::DeleteJobResponse deleted;
  {
    grpc::ClientContext ctx;
    v1::DeleteJobRequest req;
    req.set_id(job.id());
    ASSERT_TRUE(cluster.jobs().DeleteJob(&ctx, req, &deleted).ok());
  }
  ASSERT_EQ(deleted.removed_size(), 1);
  EXPECT_EQ(deleted.removed(0), data);
  EXPECT_FALSE(std::filesystem::exists(data));
  EXPECT_TRUE(cluster.Get(job.id()).id().empty());
}

class ControlApi : public ::testing::Test {
 protected:
  void SetUp() override {
    cluster_ = std::make_unique<ControlCluster>(testing::TempDir("control-api"));
    cluster_->StartControl();
  }
  grpc::Status Submit(const std::string& spec, v1::Job* job) {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(10s));
    v1::SubmitJobRequest req;
    req.set_spec_yaml(spec);
    req.set_source_name("job.yaml");
    return cluster_->jobs().SubmitJob(&ctx, req, job);
  }
  std::unique_ptr<ControlCluster> cluster_;
};

TEST_F(ControlApi, TheSameRequestIdSubmittedTwiceGivesOneJob) {
  const v1::Job a = cluster_->Submit(SmallJobSpec("once", 10), "request-1");
  const v1::Job b = cluster_->Submit(SmallJobSpec("once", 10), "request-1");
  const v1::Job c = cluster_->Submit(SmallJobSpec("once", 10), "request-2");
  EXPECT_EQ(a.id(), b.id());
  EXPECT_NE(a.id(), c.id());
  EXPECT_EQ(b.request_id(), "request-1");
  grpc::ClientContext ctx;
  v1::ListJobsResponse list;
  ASSERT_TRUE(cluster_->jobs().ListJobs(&ctx, v1::ListJobsRequest(), &list).ok());
  EXPECT_EQ(list.jobs_size(), 2);
}

TEST_F(ControlApi, ListJobsFiltersByStateAndPages) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(cluster_->Submit(SmallJobSpec("p", 10)).id());
  // No workers: the first job is STARTING, the others PENDING.
  std::vector<std::string> pending;
  std::string token;
  int pages = 0;
  do {
    grpc::ClientContext ctx;
    v1::ListJobsRequest req;
    req.set_state(v1::JOB_STATE_PENDING);
    req.set_page_size(2);
    req.set_page_token(token);
    v1::ListJobsResponse resp;
    ASSERT_TRUE(cluster_->jobs().ListJobs(&ctx, req, &resp).ok());
    for (const v1::Job& j : resp.jobs()) pending.push_back(j.id());
    token = resp.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(pending, std::vector<std::string>(ids.begin() + 1, ids.end()));
  EXPECT_EQ(pages, 2);  // two PENDING jobs a page
  grpc::ClientContext ctx;
  v1::ListJobsRequest req;
  req.set_page_size(1001);
  v1::ListJobsResponse resp;
  grpc::Status s = cluster_->jobs().ListJobs(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "page_size: 1001, outside [0, 1000]");
}

// Each broken spec gets INVALID_ARGUMENT with exactly the message docs/api.md shows.
TEST_F(ControlApi, BrokenSpecsGetTheDocumentedMessages) {
  const std::string valid = SmallJobSpec("ok", 10);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"name: [\n", "job.yaml:2:1: invalid YAML: end of sequence flow not found"},
      {valid + "nmae: x\n",
       "job.yaml:25:1: unknown key 'nmae' (known keys: name, seed, game, policy, actors, replay, "
       "learner, evaluation, stop, target, curriculum)"},
      {"seed: abc\n" + valid.substr(valid.find('\n') + 1),
       "job.yaml:1:7: seed: expected an integer, got 'abc'"},
      {"name: x\ngame: tictactoe\nlearner:\n  learning_rate: -1\n",
       "job.yaml:4:18: learner.learning_rate: must be positive"},
      {"name: x\ngame: nosuch\n",
       "job.yaml:2:7: game: unknown game 'nosuch' (known games: tictactoe, connect_four, "
       "kuhn_poker, leduc_poker, negotiation)"},
      {"name: x\ngame: tictactoe\nactors:\n  count: 2e9\n",
       "job.yaml:4:10: actors.count: expected an integer, got '2e9'"},
      {"name: " + std::string(30 << 20, 'a') + "\ngame: tictactoe\n",
       "spec_yaml: 31457303 bytes, above the limit of 1048576 bytes"},
      {"name: " + std::string(129, 'a') + "\ngame: tictactoe\n",
       "name: 129 bytes, above the limit of 128 bytes"},
  };
  for (const auto& [spec, message] : cases) {
    v1::Job job;
    grpc::Status s = Submit(spec, &job);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << message;
    EXPECT_EQ(s.error_message(), message);
  }
  grpc::ClientContext ctx;
  v1::ListJobsResponse list;
  ASSERT_TRUE(cluster_->jobs().ListJobs(&ctx, v1::ListJobsRequest(), &list).ok());
  EXPECT_EQ(list.jobs_size(), 0);
}

}  // namespace
}  // namespace rally
