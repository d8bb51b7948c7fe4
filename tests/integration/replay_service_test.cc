// rally-control and rally-replay as real processes: the replay takes its job from control,
// acknowledges valid trajectories, rejects ones that do not fit the game with INVALID_ARGUMENT
// while the stream stays open, serves batches, exposes metrics and stops cleanly on SIGTERM.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <thread>
#include <tuple>
#include <vector>

#include "common/net/server.h"
#include "common/util/zstd.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "rally/v1/control.grpc.pb.h"
#include "rally/v1/replay.grpc.pb.h"
#include "services/actor/replay_writer.h"
#include "tests/integration/process.h"

namespace rally {
namespace {

using namespace std::chrono_literals;
using testing::HttpGet;
using testing::Process;
using testing::WaitForLogField;

// The value of the series `series` (name and labels, as exported) in a /metrics page; -1 when
// it is not there.
double SeriesValue(const std::string& metrics, const std::string& series) {
  const std::string head = "\n" + series + " ";
  const size_t at = ("\n" + metrics).find(head);
  return at == std::string::npos ? -1 : std::stod(metrics.substr(at + head.size() - 1));
}

// The value of `series` once it is `until`, polling the replay's metrics for up to 5 s (a
// stream's handler records a held call when it notices the client has gone).
double SeriesValueOnce(const std::string& address, const std::string& series, double until) {
  double v = -1;
  for (int i = 0; i < 50 && v != until; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    v = SeriesValue(HttpGet(address, "/metrics"), series);
  }
  return v;
}

v1::Trajectory ValidTrajectory(uint64_t seq) {
  v1::Trajectory t = testing::TicTacToeTrajectory(seq);
  t.set_actor_id("test");
  t.set_incarnation(1);
  t.set_returns(0, 1);
  t.set_returns(1, -1);
  return t;
}

class ReplayServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir("replay");
    std::string port_file = dir_ + "/control.port";
    control_ =
        std::make_unique<Process>("rally-control",
                                  std::vector<std::string>{"--port=0", "--port_file=" + port_file,
                                                           "--db=" + dir_ + "/control.sqlite"},
                                  dir_ + "/control.log");
    control_address_ = "127.0.0.1:" + WaitForPort(port_file);
    replay_ = std::make_unique<Process>("rally-replay",
                                        std::vector<std::string>{"--control=" + control_address_},
                                        dir_ + "/replay.log");
    replay_address_ = WaitForLogField(dir_ + "/replay.log", "serving", "address", 30s);
    metrics_address_ = WaitForLogField(dir_ + "/replay.log", "serving", "metrics", 30s);
    ASSERT_FALSE(replay_address_.empty()) << testing::ReadFile(dir_ + "/replay.log");
    ASSERT_TRUE(WaitForServing(replay_address_, 30s).ok());
  }

  std::string WaitForPort(const std::string& file) {
    for (int i = 0; i < 1500; ++i) {
      std::string p = testing::ReadFile(file);
      if (!p.empty()) return p.substr(0, p.find('\n'));
      std::this_thread::sleep_for(20ms);
    }
    return "0";
  }

  // Submits a TicTacToe job (`spec_yaml`, by default one table of 16 items) and waits until the
  // replay has installed it.
  std::string SubmitJob(const std::string& spec_yaml =
                            "game: tictactoe\nreplay: {tables: [{name: selfplay, max_size: 16}]}\n"
                            "stop: {max_wall_seconds: 300}\n") {
    auto jobs = v1::JobService::NewStub(MakeChannel(control_address_));
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(10s));
    v1::SubmitJobRequest req;
    req.set_spec_yaml(spec_yaml);
    v1::Job job;
    EXPECT_TRUE(jobs->SubmitJob(&ctx, req, &job).ok());
    auto replay = v1::ReplayService::NewStub(MakeChannel(replay_address_));
    for (int i = 0; i < 300; ++i) {
      grpc::ClientContext c;
      c.set_deadline(DeadlineIn(2s));
      v1::InfoResponse info;
      if (replay->Info(&c, v1::InfoRequest(), &info).ok() && info.job_id() == job.id()) break;
      std::this_thread::sleep_for(50ms);
    }
    return job.id();
  }

  // The job's one table as the replay's Info describes it.
  v1::TableInfo OnlyTable() {
    auto stub = v1::ReplayService::NewStub(MakeChannel(replay_address_));
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(5s));
    v1::InfoResponse info;
    EXPECT_TRUE(stub->Info(&ctx, v1::InfoRequest(), &info).ok());
    EXPECT_EQ(info.tables_size(), 1);
    return info.tables_size() > 0 ? info.tables(0) : v1::TableInfo();
  }

  std::string dir_;
  std::unique_ptr<Process> control_;
  std::unique_ptr<Process> replay_;
  std::string control_address_;
  std::string replay_address_;
  std::string metrics_address_;
};

TEST_F(ReplayServiceTest, HealthServiceAnswersServing) {
  auto health = grpc::health::v1::Health::NewStub(MakeChannel(replay_address_));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(5s));
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(health->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST_F(ReplayServiceTest, RejectsTrajectoriesThatDoNotFitAndKeepsServing) {
  std::string job_id = SubmitJob();
  ASSERT_FALSE(job_id.empty());
  auto stub = v1::ReplayService::NewStub(MakeChannel(replay_address_));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(30s));
  auto stream = stub->Insert(&ctx);
  v1::InsertRequest req;
  v1::InsertResponse ack;

  // An illegal action: INVALID_ARGUMENT naming the field.
  req.add_tables("selfplay");
  *req.mutable_trajectory() = ValidTrajectory(1);
  req.mutable_trajectory()->mutable_turns(0)->set_action(9);
  ASSERT_TRUE(stream->Write(req));
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.sequence(), 1u);
  EXPECT_EQ(ack.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_NE(ack.error().find("turns[0].action: 9 is not among the legal actions"),
            std::string::npos)
      << ack.error();

  // A wrong observation size on the same stream.
  *req.mutable_trajectory() = ValidTrajectory(2);
  req.mutable_trajectory()->mutable_turns(0)->add_observation(0.f);
  ASSERT_TRUE(stream->Write(req));
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));

  // An unknown table.
  req.clear_tables();
  req.add_tables("nope");
  *req.mutable_trajectory() = ValidTrajectory(3);
  ASSERT_TRUE(stream->Write(req));
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));

  // The stream still works: a valid item is stored.
  req.clear_tables();
  req.add_tables("selfplay");
  *req.mutable_trajectory() = ValidTrajectory(4);
  ASSERT_TRUE(stream->Write(req));
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.sequence(), 4u);
  EXPECT_EQ(ack.code(), 0) << ack.error();
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());

  v1::TableInfo table = OnlyTable();
  EXPECT_EQ(table.inserted_total(), 1);
  EXPECT_EQ(table.rejected_total(), 3);
  EXPECT_EQ(table.size(), 1);

  // The stored item comes back from a sample stream.
  auto batch = testing::SampleOnce(*stub, "selfplay", 1, /*accept_zstd=*/false, 10s);
  ASSERT_TRUE(batch.has_value());
  ASSERT_EQ(batch->items_size(), 1);
  EXPECT_EQ(batch->items(0).trajectory().sequence(), 4u);

  std::string metrics = HttpGet(metrics_address_, "/metrics");
  EXPECT_NE(metrics.find("rally_replay_items_inserted_total 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("rally_replay_items_rejected_total 3"), std::string::npos);
}

// The replay's resident memory in bytes (VmRSS), or -1.
int64_t ResidentBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

// A valid trajectory padded with token ids to about `bytes` serialised.
v1::Trajectory PaddedTrajectory(uint64_t seq, size_t bytes) {
  v1::Trajectory t = ValidTrajectory(seq);
  for (size_t i = 0; i < bytes / 4; ++i) t.mutable_turns(0)->add_observation_tokens(i * 7919);
  return t;
}

TEST_F(ReplayServiceTest, AnActorRestartedUnderItsNameHasEveryItemStored) {
  // A restarted actor keeps its name and numbers from 1 again. Before incarnations the replay
  // acknowledged all 40 of its new items as duplicates of its first life's and dropped them.
  ASSERT_FALSE(SubmitJob("game: tictactoe\nstop: {max_wall_seconds: 300}\n"
                         "replay: {tables: [{name: selfplay, max_size: 1000}]}\n")
                   .empty());
  uint64_t incarnations[2] = {0, 0};
  for (int life = 0; life < 2; ++life) {
    ReplayWriter writer(replay_address_, {"selfplay"}, "actor-0/job", 8, nullptr);
    incarnations[life] = writer.incarnation();
    for (int i = 0; i < 40; ++i) ASSERT_TRUE(writer.Push(ValidTrajectory(0)));
    ASSERT_TRUE(writer.Flush(30s));
    EXPECT_EQ(writer.acked(), 40);
    EXPECT_EQ(writer.duplicates(), 0) << "life " << life;
    writer.Stop();
  }
  EXPECT_NE(incarnations[0], incarnations[1]);
  EXPECT_NE(incarnations[0], 0u);
  EXPECT_EQ(OnlyTable().size(), 80);

  // Over the wire: a partial key is refused naming the field; a keyless item is stored each
  // time (at least once), a keyed resend once.
  auto stub = v1::ReplayService::NewStub(MakeChannel(replay_address_));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(30s));
  auto stream = stub->Insert(&ctx);
  v1::InsertRequest req;
  v1::InsertResponse ack;
  req.add_tables("selfplay");
  auto send = [&](const v1::Trajectory& t) {
    *req.mutable_trajectory() = t;
    EXPECT_TRUE(stream->Write(req));
    EXPECT_TRUE(stream->Read(&ack));
    return ack;
  };
  v1::Trajectory partial = ValidTrajectory(5);
  partial.clear_incarnation();
  ack = send(partial);
  EXPECT_EQ(ack.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(ack.error().rfind("incarnation: missing from the key", 0), 0u) << ack.error();
  partial = ValidTrajectory(0);  // an actor id and incarnation without a sequence
  ack = send(partial);
  EXPECT_EQ(ack.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(ack.error().rfind("sequence: missing from the key", 0), 0u) << ack.error();
  v1::Trajectory keyless = testing::TicTacToeTrajectory(0);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(send(keyless).code(), 0) << ack.error();
  EXPECT_FALSE(ack.duplicate());
  for (int i = 0; i < 2; ++i) EXPECT_EQ(send(ValidTrajectory(1)).code(), 0) << ack.error();
  EXPECT_TRUE(ack.duplicate());
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  v1::TableInfo table = OnlyTable();
  EXPECT_EQ(table.size(), 83);
  EXPECT_EQ(table.rejected_total(), 2);
}

// One row of docs/reliability.md's table of bad input: what is sent, the code and the error.
struct BadInsert {
  const char* what;
  std::function<void(v1::InsertRequest&)> spoil;
  grpc::StatusCode code;
  const char* error;
};

TEST_F(ReplayServiceTest, EveryClassOfBadInputGetsItsOwnErrorAndTheReplayServesOn) {
  ASSERT_FALSE(SubmitJob("game: tictactoe\nstop: {max_wall_seconds: 300}\n"
                         "replay: {tables: [{name: selfplay, max_size: 16, max_bytes: 200000}]}\n")
                   .empty());
  using C = grpc::StatusCode;
  const std::vector<BadInsert> rows = {
      {"wrong game", [](auto& r) { r.mutable_trajectory()->set_game("chess"); },
       C::INVALID_ARGUMENT, "game: 'chess' but this job plays 'tictactoe'"},
      {"wrong shape", [](auto& r) { r.mutable_trajectory()->mutable_turns(0)->add_observation(0); },
       C::INVALID_ARGUMENT, "turns[0].observation: 28 floats, the game's observation has 27"},
      {"out-of-range action",
       [](auto& r) { r.mutable_trajectory()->mutable_turns(0)->set_action(9); },
       C::INVALID_ARGUMENT, "turns[0].action: 9 is not among the legal actions"},
      {"out-of-range seat", [](auto& r) { r.mutable_trajectory()->mutable_turns(0)->set_seat(5); },
       C::INVALID_ARGUMENT, "turns[0].seat: 5 out of range [0, 2)"},
      {"non-finite reward",
       [](auto& r) { r.mutable_trajectory()->mutable_turns(0)->set_reward(NAN); },
       C::INVALID_ARGUMENT, "turns[0].reward"},
      {"non-finite observation",
       [](auto& r) { r.mutable_trajectory()->mutable_turns(0)->set_observation(0, INFINITY); },
       C::INVALID_ARGUMENT, "turns[0].observation: holds a value that is not finite"},
      {"extreme log-probability",
       [](auto& r) {
         r.mutable_trajectory()->mutable_turns(0)->set_behaviour_log_probs(0, -1e30f);
       },
       C::INVALID_ARGUMENT, "turns[0].behaviour_log_probs[0]"},
      {"oversize id", [](auto& r) { r.mutable_trajectory()->set_task_id(std::string(300, 't')); },
       C::INVALID_ARGUMENT, "task_id"},
      {"oversize item",
       [](auto& r) {
         for (int i = 0; i < 60000; ++i) {
           r.mutable_trajectory()->mutable_turns(0)->add_observation_tokens(i);
         }
       },
       C::INVALID_ARGUMENT, "exceeds the table's max_bytes (200000)"},
      {"negative priority", [](auto& r) { r.set_priority(-1); }, C::INVALID_ARGUMENT,
       "priority: must be finite and >= 0, got -1"},
      {"no table", [](auto& r) { r.clear_tables(); }, C::INVALID_ARGUMENT,
       "tables: name at least one table"},
      {"unknown table",
       [](auto& r) {
         r.clear_tables();
         r.add_tables("nope");
       },
       C::NOT_FOUND, "unknown table 'nope' (this job has selfplay)"},
      {"partial key", [](auto& r) { r.mutable_trajectory()->clear_incarnation(); },
       C::INVALID_ARGUMENT, "incarnation: missing from the key"},
      {"both forms", [](auto& r) { r.set_trajectory_zstd("x"); }, C::INVALID_ARGUMENT,
       "set trajectory or trajectory_zstd, not both"},
      {"malformed zstd frame",
       [](auto& r) {
         r.clear_trajectory();
         r.set_trajectory_zstd("not a frame");
       },
       C::INVALID_ARGUMENT, "trajectory_zstd: "},
  };
  auto stub = v1::ReplayService::NewStub(MakeChannel(replay_address_));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(60s));
  auto stream = stub->Insert(&ctx);
  uint64_t seq = 0;
  for (const BadInsert& row : rows) {
    v1::InsertRequest req;
    req.add_tables("selfplay");
    *req.mutable_trajectory() = ValidTrajectory(++seq);
    row.spoil(req);
    v1::InsertResponse ack;
    ASSERT_TRUE(stream->Write(req)) << row.what;
    ASSERT_TRUE(stream->Read(&ack)) << row.what;
    EXPECT_EQ(ack.code(), static_cast<int>(row.code)) << row.what << ": " << ack.error();
    EXPECT_NE(ack.error().find(row.error), std::string::npos) << row.what << ": " << ack.error();
    std::printf("| Insert | %s | %d | %s |\n", row.what, ack.code(), ack.error().c_str());
  }
  // The stream and the replay serve on: a good item is stored.
  v1::InsertRequest good;
  good.add_tables("selfplay");
  *good.mutable_trajectory() = ValidTrajectory(++seq);
  v1::InsertResponse ack;
  ASSERT_TRUE(stream->Write(good));
  ASSERT_TRUE(stream->Read(&ack));
  EXPECT_EQ(ack.code(), 0) << ack.error();
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(OnlyTable().size(), 1);
  EXPECT_EQ(OnlyTable().rejected_total(), static_cast<int64_t>(rows.size()));

  // Sample and UpdatePriorities: the stream or call gets the code, the replay serves on.
  auto sample_error = [&](v1::SampleRequest req) {
    grpc::ClientContext c;
    c.set_deadline(DeadlineIn(5s));
    auto s = stub->Sample(&c);
    s->Write(req);
    v1::SampleResponse resp;
    while (s->Read(&resp)) {
    }
    return s->Finish();
  };
  v1::SampleRequest unknown;
  unknown.set_table("nope");
  unknown.set_batch_size(1);
  unknown.set_credits(1);
  grpc::Status st = sample_error(unknown);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(st.error_message(), "unknown table 'nope'");
  v1::SampleRequest zero = unknown;
  zero.set_table("selfplay");
  zero.set_batch_size(0);
  st = sample_error(zero);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "batch_size 0 must be at least 1");
  // Credits below zero count as none: nothing is sent until the client grants some.
  v1::SampleRequest negative = zero;
  negative.set_batch_size(1);
  negative.set_credits(-5);
  {
    grpc::ClientContext c;
    c.set_deadline(DeadlineIn(10s));
    auto s = stub->Sample(&c);
    ASSERT_TRUE(s->Write(negative));
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(OnlyTable().size(), 1) << "a batch went out without credits";
    v1::SampleRequest grant;
    grant.set_credits(1);
    ASSERT_TRUE(s->Write(grant));
    v1::SampleResponse resp;
    ASSERT_TRUE(s->Read(&resp));
    EXPECT_EQ(resp.items_size(), 1);
    c.TryCancel();
    s->Finish();
  }
  for (const auto& [priority, key, code, error] :
       std::vector<std::tuple<double, uint64_t, grpc::StatusCode, std::string>>{
           {NAN, 1, grpc::StatusCode::INVALID_ARGUMENT,
            "updates[0].priority: must be finite and >= 0, got nan"},
           {1.0, 999999, grpc::StatusCode::NOT_FOUND,
            "updates[0].key: table 'selfplay' has no item with key 999999"}}) {
    grpc::ClientContext c;
    c.set_deadline(DeadlineIn(5s));
    v1::UpdatePrioritiesRequest req;
    req.set_table("selfplay");
    auto* u = req.add_updates();
    u->set_key(key);
    u->set_priority(priority);
    v1::UpdatePrioritiesResponse resp;
    st = stub->UpdatePriorities(&c, req, &resp);
    EXPECT_EQ(st.error_code(), code) << st.error_message();
    EXPECT_NE(st.error_message().find(error), std::string::npos) << st.error_message();
  }
  EXPECT_TRUE(testing::HealthServing(replay_address_, ""));
}

TEST_F(ReplayServiceTest, ItemsSentBeforeTheReplayHasItsJobAreSentAgainNotDropped) {
  // A replay restarted after a crash serves before control gives it its job back. Its answer
  // to inserts meanwhile was FAILED_PRECONDITION, which writers took for a refusal and dropped.
  ReplayWriter writer(replay_address_, {"selfplay"}, "early", 8, nullptr);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(writer.Push(ValidTrajectory(0)));
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(writer.acked(), 0);
  EXPECT_GT(writer.retried(), 0);
  ASSERT_FALSE(SubmitJob().empty());
  ASSERT_TRUE(writer.Flush(30s));
  EXPECT_EQ(writer.acked(), 5);
  EXPECT_EQ(writer.rejected(), 0);
  EXPECT_EQ(OnlyTable().size(), 5);
  writer.Stop();
}

TEST_F(ReplayServiceTest, MemoryStaysBoundedWhileItemsStreamThroughABoundedTable) {
  // 256 MB of 64 KB items through a table that keeps 32 of them: the replay's resident memory
  // grows by far less than what passed through (a leaked request buffer would keep it all).
  ASSERT_FALSE(SubmitJob("game: tictactoe\nstop: {max_wall_seconds: 300}\n"
                         "replay: {tables: [{name: selfplay, max_size: 32, sampler: uniform,\n"
                         "  remover: fifo, rate_limiter: min_size, max_times_sampled: 0}]}\n")
                   .empty());
  ReplayWriter writer(replay_address_, {"selfplay"}, "memory", 64, nullptr);
  const v1::Trajectory item = PaddedTrajectory(0, 64 << 10);
  auto push = [&](int n) {
    for (int i = 0; i < n; ++i) ASSERT_TRUE(writer.Push(item));
    ASSERT_TRUE(writer.Flush(60s)) << "acked " << writer.acked();
  };
  push(300);  // warm: the table full, buffers and pools at their working size
  const int64_t warm = ResidentBytes(replay_->pid());
  ASSERT_GT(warm, 0);
  push(4000);
  const int64_t after = ResidentBytes(replay_->pid());
  std::printf("replay resident: %lld MiB warm, %lld MiB after 256 MB more\n",
              static_cast<long long>(warm >> 20), static_cast<long long>(after >> 20));
  EXPECT_EQ(writer.acked(), 4300);
  EXPECT_EQ(OnlyTable().size(), 32);
  EXPECT_LT(after - warm, int64_t{64} << 20)
      << "resident " << warm / (1 << 20) << " MiB when warm, " << after / (1 << 20)
      << " MiB after another 256 MB";
  writer.Stop();
}

TEST_F(ReplayServiceTest, AStreamHeldBackByTheRateLimiterHoldsTheSenderBack) {
  // A queue of 8 that nobody samples: after 8 items every insert is held back. A client that
  // writes without waiting for acks is stopped by flow control (the replay reads no further
  // requests), so neither side buffers what it keeps trying to send.
  ASSERT_FALSE(SubmitJob("game: tictactoe\nstop: {max_wall_seconds: 300}\n"
                         "replay: {tables: [{name: selfplay, max_size: 8, rate_limiter: queue}]}\n")
                   .empty());
  const int64_t before = ResidentBytes(replay_->pid());
  auto stub = v1::ReplayService::NewStub(MakeChannel(replay_address_));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(4s));
  auto stream = stub->Insert(&ctx);
  v1::InsertRequest req;
  req.add_tables("selfplay");
  *req.mutable_trajectory() = PaddedTrajectory(0, 64 << 10);
  int written = 0;
  for (uint64_t seq = 1; seq <= 20000; ++seq) {
    req.mutable_trajectory()->set_sequence(seq);
    if (!stream->Write(req)) break;  // blocked until the deadline ended the call
    ++written;
  }
  stream->Finish();
  const int64_t after = ResidentBytes(replay_->pid());
  std::printf("held back: %d items of 64 KB written in 4 s; replay resident %lld -> %lld MiB\n",
              written, static_cast<long long>(before >> 20), static_cast<long long>(after >> 20));
  // 4 s at the tens of thousands of items per second this replay can store would be far more;
  // what got through is the queue, the items waiting in the replay and the transport's windows.
  EXPECT_GE(written, 8);
  EXPECT_LT(written, 1000);
  EXPECT_LT(after - before, int64_t{64} << 20);
  EXPECT_EQ(OnlyTable().size(), 8);  // and the replay serves on

  // The item held back until the client's deadline is one observation of about 4 s.
  const std::string held = "rally_replay_insert_blocked_seconds_count{table=\"selfplay\"}";
  EXPECT_EQ(SeriesValueOnce(metrics_address_, held, 1), 1);
  const double held_s = SeriesValue(HttpGet(metrics_address_, "/metrics"),
                                    "rally_replay_insert_blocked_seconds_sum{table=\"selfplay\"}");
  EXPECT_GT(held_s, 2.5);
  EXPECT_LT(held_s, 4.5);
  // A sample the limiter lets through at once is not a held call; one it holds back until its
  // client gives up is one.
  const std::string sample_held = "rally_replay_sample_blocked_seconds_count{table=\"selfplay\"}";
  ASSERT_TRUE(testing::SampleOnce(*stub, "selfplay", 8, /*accept_zstd=*/false, 10s).has_value());
  EXPECT_EQ(SeriesValue(HttpGet(metrics_address_, "/metrics"), sample_held), 0);
  EXPECT_FALSE(testing::SampleOnce(*stub, "selfplay", 1, /*accept_zstd=*/false, 1s).has_value());
  EXPECT_EQ(SeriesValueOnce(metrics_address_, sample_held, 1), 1);
}

TEST_F(ReplayServiceTest, AcknowledgesABurstInOrderWithRunsOfStoredItemsSharingAResponse) {
  ASSERT_FALSE(SubmitJob().empty());
  auto stub = v1::ReplayService::NewStub(MakeChannel(replay_address_));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(30s));
  auto stream = stub->Insert(&ctx);
  // 12 items (the table holds 16) sent without waiting for acks; item 5 is invalid, item 9 a
  // resend of item 2.
  constexpr uint64_t kItems = 12;
  v1::InsertRequest req;
  req.add_tables("selfplay");
  for (uint64_t seq = 1; seq <= kItems; ++seq) {
    *req.mutable_trajectory() = ValidTrajectory(seq == 9 ? 2 : seq);
    if (seq == 5) req.mutable_trajectory()->mutable_turns(0)->set_action(9);
    ASSERT_TRUE(stream->Write(req));
  }
  stream->WritesDone();
  // Each response settles `count` items ending at its `sequence`; the invalid item and the
  // duplicate have responses of their own.
  std::vector<uint64_t> order = {0};  // the sequence each sent item carried, by position
  for (uint64_t seq = 1; seq <= kItems; ++seq) order.push_back(seq == 9 ? 2 : seq);
  uint64_t next = 1;
  int responses = 0;
  v1::InsertResponse ack;
  while (next <= kItems && stream->Read(&ack)) {
    ++responses;
    const uint64_t count = std::max<uint32_t>(ack.count(), 1);
    const uint64_t last = next + count - 1;
    ASSERT_LE(last, kItems);
    EXPECT_EQ(ack.sequence(), order[last]);
    if (last == 5 || last == 9 || next == 5 || next == 9) {
      EXPECT_EQ(count, 1u) << "item " << next;
    }
    if (last == 5) {
      EXPECT_EQ(ack.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
    } else {
      EXPECT_EQ(ack.code(), 0) << ack.error();
      EXPECT_EQ(ack.duplicate(), last == 9);
    }
    next = last + 1;
  }
  EXPECT_EQ(next, kItems + 1);
  EXPECT_GE(responses, 3);
  EXPECT_LE(responses, static_cast<int>(kItems));
  EXPECT_TRUE(stream->Finish().ok());
  v1::TableInfo table = OnlyTable();
  EXPECT_EQ(table.inserted_total(), static_cast<int64_t>(kItems) - 2);
  EXPECT_EQ(table.duplicates_total(), 1);
}

TEST_F(ReplayServiceTest, BytesThatAreNotAnInsertRequestEndTheStreamAndTheReplayServesOn) {
  ASSERT_FALSE(SubmitJob().empty());
  auto channel = MakeChannel(replay_address_);
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(30s));
  // A client that writes raw bytes on Insert, as a broken or foreign one might.
  auto stream = OpenRawInsertStream(channel, &ctx);
  grpc::Slice junk(std::string("\x12\xff\xff\x7f not a message"));
  ASSERT_TRUE(stream->Write(grpc::ByteBuffer(&junk, 1)));
  stream->WritesDone();
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("not an InsertRequest"), std::string::npos)
      << status.error_message();

  // A well-formed stream is served as before.
  auto stub = v1::ReplayService::NewStub(channel);
  grpc::ClientContext ok_ctx;
  ok_ctx.set_deadline(DeadlineIn(30s));
  auto ok_stream = stub->Insert(&ok_ctx);
  v1::InsertRequest req;
  req.add_tables("selfplay");
  *req.mutable_trajectory() = ValidTrajectory(1);
  ASSERT_TRUE(ok_stream->Write(req));
  v1::InsertResponse ack;
  ASSERT_TRUE(ok_stream->Read(&ack));
  EXPECT_EQ(ack.code(), 0) << ack.error();
  ok_stream->WritesDone();
  EXPECT_TRUE(ok_stream->Finish().ok());
  EXPECT_EQ(OnlyTable().inserted_total(), 1);
}

TEST_F(ReplayServiceTest, ItemsBatchedInOneRequestAreStoredAndAcknowledgedEachOnItsOwn) {
  ASSERT_FALSE(SubmitJob().empty());
  auto stub = v1::ReplayService::NewStub(MakeChannel(replay_address_));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(30s));
  auto stream = stub->Insert(&ctx);
  // One message: item 1, then in `more` item 2, an invalid item 3, an item 4 that nests a
  // further batch (refused), and item 5 naming an unknown table.
  v1::InsertRequest req;
  req.add_tables("selfplay");
  *req.mutable_trajectory() = ValidTrajectory(1);
  for (uint64_t seq = 2; seq <= 5; ++seq) {
    v1::InsertRequest* item = req.add_more();
    item->add_tables(seq == 5 ? "nope" : "selfplay");
    *item->mutable_trajectory() = ValidTrajectory(seq);
    if (seq == 3) item->mutable_trajectory()->mutable_turns(0)->set_action(9);
    if (seq == 4) *item->add_more()->mutable_trajectory() = ValidTrajectory(6);
  }
  ASSERT_TRUE(stream->Write(req));
  stream->WritesDone();
  // Acks by item, expanding runs that share a response.
  std::map<uint64_t, v1::InsertResponse> acks;
  uint64_t next = 1;
  v1::InsertResponse ack;
  while (next <= 5 && stream->Read(&ack)) {
    const uint64_t count = std::max<uint32_t>(ack.count(), 1);
    for (uint64_t i = 0; i < count; ++i) acks[next++] = ack;
  }
  ASSERT_EQ(acks.size(), 5u);
  for (uint64_t seq = 1; seq <= 5; ++seq) EXPECT_LE(seq, acks[seq].sequence());
  EXPECT_EQ(acks[1].code(), 0) << acks[1].error();
  EXPECT_EQ(acks[2].code(), 0) << acks[2].error();
  EXPECT_EQ(acks[2].sequence(), 2u);
  EXPECT_EQ(acks[3].code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_EQ(acks[3].sequence(), 3u);
  EXPECT_EQ(acks[4].code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_NE(acks[4].error().find("more:"), std::string::npos) << acks[4].error();
  EXPECT_EQ(acks[5].code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
  EXPECT_TRUE(stream->Finish().ok());
  v1::TableInfo table = OnlyTable();
  EXPECT_EQ(table.inserted_total(), 2);
  EXPECT_EQ(table.rejected_total(), 3);
}

TEST_F(ReplayServiceTest, LargeItemsTravelCompressedBothWays) {
  ASSERT_FALSE(SubmitJob().empty());
  auto stub = v1::ReplayService::NewStub(MakeChannel(replay_address_));
  // A 200 KB item of token ids (as language-model turns carry them) that repeat a 97-token prompt.
  v1::Trajectory big = ValidTrajectory(0);
  for (int i = 0; i < 50000; ++i) big.mutable_turns(0)->add_observation_tokens(1000 + i % 97);
  // The job's table is a queue: each pass inserts the large item (compressed) and a small one,
  // then samples both. A learner that accepts zstd gets the large one compressed; one that does
  // not gets it plain; small items always go plain.
  uint64_t sequence = 1;
  for (bool accept : {true, false}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(30s));
    auto stream = stub->Insert(&ctx);
    v1::InsertRequest req;
    v1::InsertResponse ack;
    req.add_tables("selfplay");
    big.set_sequence(sequence++);
    std::string z = ZstdCompress(big.SerializeAsString());
    ASSERT_FALSE(z.empty());
    ASSERT_LT(z.size(), big.ByteSizeLong() / 2);
    req.set_trajectory_zstd(z);
    ASSERT_TRUE(stream->Write(req));
    ASSERT_TRUE(stream->Read(&ack));
    EXPECT_EQ(ack.code(), 0) << ack.error();
    EXPECT_EQ(ack.sequence(), big.sequence());
    if (accept) {
      // A malformed frame, then both forms at once: each a precise INVALID_ARGUMENT.
      req.set_trajectory_zstd("not zstd");
      ASSERT_TRUE(stream->Write(req));
      ASSERT_TRUE(stream->Read(&ack));
      EXPECT_EQ(ack.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
      EXPECT_NE(ack.error().find("trajectory_zstd: not a zstd frame"), std::string::npos)
          << ack.error();
      req.set_trajectory_zstd(z);
      *req.mutable_trajectory() = ValidTrajectory(100);
      ASSERT_TRUE(stream->Write(req));
      ASSERT_TRUE(stream->Read(&ack));
      EXPECT_EQ(ack.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
      EXPECT_NE(ack.error().find("not both"), std::string::npos) << ack.error();
    }
    // The stream keeps serving: a small plain item.
    req.clear_trajectory_zstd();
    *req.mutable_trajectory() = ValidTrajectory(sequence++);
    ASSERT_TRUE(stream->Write(req));
    ASSERT_TRUE(stream->Read(&ack));
    EXPECT_EQ(ack.code(), 0) << ack.error();
    stream->WritesDone();
    EXPECT_TRUE(stream->Finish().ok());

    auto batch = testing::SampleOnce(*stub, "selfplay", 2, accept, 10s);
    ASSERT_TRUE(batch.has_value());
    ASSERT_EQ(batch->items_size(), 2);
    int compressed = 0;
    bool saw_big = false;
    for (const v1::SampledItem& item : batch->items()) {
      v1::Trajectory t = item.trajectory();
      if (!item.trajectory_zstd().empty()) {
        ++compressed;
        auto raw = ZstdDecompress(item.trajectory_zstd(), 1 << 20);
        ASSERT_TRUE(raw.ok()) << raw.status();
        ASSERT_TRUE(t.ParseFromString(*raw));
      }
      if (t.sequence() == big.sequence()) {
        saw_big = true;
        EXPECT_EQ(t.SerializeAsString(), big.SerializeAsString());
      }
    }
    EXPECT_TRUE(saw_big);
    EXPECT_EQ(compressed, accept ? 1 : 0);
  }
}

TEST_F(ReplayServiceTest, StreamsSamplingTheSameItemsAtOnceEachGetThemWhole) {
  // The replay lends stored trajectories to each response instead of copying them. Four
  // streams sample the same 12 items (uniform, never removed) at once, large and small, plain
  // and zstd, some sent with their token arrays by reference: every copy that arrives must be
  // the item as inserted, and the items must still be stored and sampled afterwards.
  ASSERT_FALSE(SubmitJob("game: tictactoe\nreplay: {tables: [{name: pool, sampler: uniform, "
                         "remover: fifo, max_times_sampled: 0, rate_limiter: min_size, "
                         "min_size_to_sample: 12, max_size: 12}]}\n"
                         "stop: {max_wall_seconds: 300}\n")
                   .empty());
  std::map<uint64_t, std::string> inserted;  // sequence -> serialised trajectory
  {
    ReplayWriter writer(replay_address_, {"pool"}, "lender", 16, nullptr);
    std::mt19937 rng(5);
    for (uint64_t seq = 1; seq <= 12; ++seq) {
      v1::Trajectory t = ValidTrajectory(seq);
      t.set_actor_id("lender");
      t.set_incarnation(writer.incarnation());
      // Every third item is 40 KB of repeating ids (compressible); of the others, every second
      // is 24 KB of random ids pushed shared (the array goes out by reference, plain), the
      // rest small.
      for (int i = 0; seq % 3 == 0 && i < 10000; ++i) {
        t.mutable_turns(0)->add_observation_tokens(static_cast<uint32_t>(seq * 1000 + i % 31));
      }
      for (int i = 0; seq % 3 == 1 && i < 6000; ++i) {
        t.mutable_turns(0)->add_observation_tokens(static_cast<uint32_t>(rng()));
      }
      inserted[seq] = t.SerializeAsString();
      if (seq % 3 == 1) {
        ASSERT_TRUE(writer.Push(std::make_shared<const v1::Trajectory>(std::move(t))));
      } else {
        ASSERT_TRUE(writer.Push(t));
      }
    }
    ASSERT_TRUE(writer.Flush(10s));
  }
  std::atomic<int> checked{0};
  std::vector<std::string> failures[4];
  std::vector<std::thread> samplers;
  for (int k = 0; k < 4; ++k) {
    samplers.emplace_back([&, k] {
      auto stub = v1::ReplayService::NewStub(MakeChannel(replay_address_));
      grpc::ClientContext ctx;
      ctx.set_deadline(DeadlineIn(30s));
      auto stream = stub->Sample(&ctx);
      v1::SampleRequest req;
      req.set_table("pool");
      req.set_batch_size(12);
      req.set_credits(100);
      req.set_accept_zstd(k % 2 == 0);
      stream->Write(req);
      v1::SampleResponse resp;
      for (int batch = 0; batch < 100 && stream->Read(&resp); ++batch) {
        for (const v1::SampledItem& item : resp.items()) {
          v1::Trajectory t = item.trajectory();
          if (!item.trajectory_zstd().empty()) {
            auto raw = ZstdDecompress(item.trajectory_zstd(), 1 << 20);
            if (!raw.ok() || !t.ParseFromString(*raw)) {
              failures[k].push_back("a zstd item does not decode");
              continue;
            }
          }
          auto it = inserted.find(t.sequence());
          if (it == inserted.end() || it->second != t.SerializeAsString()) {
            failures[k].push_back("item " + std::to_string(t.sequence()) + " differs");
          }
          ++checked;
        }
      }
      ctx.TryCancel();
      stream->Finish();
    });
  }
  for (auto& t : samplers) t.join();
  for (const auto& f : failures) EXPECT_TRUE(f.empty()) << f.size() << " bad, first: " << f[0];
  EXPECT_EQ(checked.load(), 4 * 100 * 12);
  EXPECT_EQ(OnlyTable().size(), 12);
  auto stub = v1::ReplayService::NewStub(MakeChannel(replay_address_));
  auto again = testing::SampleOnce(*stub, "pool", 12, false, 10s);
  ASSERT_TRUE(again.has_value());
  for (const v1::SampledItem& item : again->items()) {
    EXPECT_EQ(item.trajectory().SerializeAsString(), inserted[item.trajectory().sequence()]);
  }
}

TEST_F(ReplayServiceTest, SampleBeyondTheTableIsInvalidArgument) {
  SubmitJob();
  auto stub = v1::ReplayService::NewStub(MakeChannel(replay_address_));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(10s));
  auto sample = stub->Sample(&ctx);
  v1::SampleRequest req;
  req.set_table("selfplay");
  req.set_batch_size(17);  // capacity is 16
  req.set_credits(1);
  sample->Write(req);
  sample->WritesDone();
  v1::SampleResponse resp;
  EXPECT_FALSE(sample->Read(&resp));
  grpc::Status s = sample->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("a batch of 17 can never be sampled from table 'selfplay'"),
            std::string::npos)
      << s.error_message();
}

TEST_F(ReplayServiceTest, StopsCleanlyOnSigterm) {
  int status = replay_->Stop(10s);
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_NE(testing::ReadFile(dir_ + "/replay.log").find("\"msg\":\"stopped\""), std::string::npos);
}

}  // namespace
}  // namespace rally
