// Durability under a crash: writers stream trajectories (the actors' ReplayWriter, over gRPC)
// while rally-replay is killed with SIGKILL at a random moment and restarted on the same data
// directory. Afterwards every trajectory any writer saw acknowledged is in the table exactly
// once, and sampling works. The log syncs every batch, so it is written with direct I/O.
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/vfs.h>

#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "common/net/free_port.h"
#include "common/net/server.h"
#include "rally/v1/control.grpc.pb.h"
#include "rally/v1/replay.grpc.pb.h"
#include "services/actor/replay_writer.h"
#include "tests/integration/control_and_replay.h"
#include "tests/integration/process.h"

namespace rally {
namespace {

using namespace std::chrono_literals;
using testing::Process;

TEST(ReplayCrash, EveryAcknowledgedItemSurvivesSigkillExactlyOnce) {
  const std::string dir = testing::TempDir("crash");

  auto control = std::make_unique<Process>(
      "rally-control",
      std::vector<std::string>{"--port=0", "--port_file=" + dir + "/control.port",
                               "--db=" + dir + "/control.sqlite"},
      dir + "/control.log");
  const std::string control_address =
      "127.0.0.1:" + testing::WaitForPortFile(dir + "/control.port", 30s);
  const int port = FreePort();
  const std::string replay_address = "127.0.0.1:" + std::to_string(port);
  const std::vector<std::string> replay_args = {"--control=" + control_address,
                                                "--port=" + std::to_string(port),
                                                "--data_dir=" + dir + "/replay", "--name=replay-0"};
  auto replay = std::make_unique<Process>("rally-replay", replay_args, dir + "/replay.log");
  ASSERT_TRUE(WaitForServing(replay_address, 30s).ok());

  auto jobs = v1::JobService::NewStub(MakeChannel(control_address));
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(DeadlineIn(10s));
    v1::SubmitJobRequest req;
    req.set_spec_yaml(
        "game: tictactoe\n"
        "stop: {max_wall_seconds: 600}\n"
        "replay:\n"
        "  fsync: every_batch\n"
        "  snapshot_every_seconds: 0.3\n"
        "  tables: [{name: q, max_size: 100000}]\n");
    v1::Job job;
    ASSERT_TRUE(jobs->SubmitJob(&ctx, req, &job).ok());
  }
  auto replay_stub = v1::ReplayService::NewStub(MakeChannel(replay_address));
  auto wait_for_job = [&] {
    for (int i = 0; i < 600; ++i) {
      grpc::ClientContext c;
      c.set_deadline(DeadlineIn(2s));
      v1::InfoResponse info;
      if (replay_stub->Info(&c, v1::InfoRequest(), &info).ok() && !info.job_id().empty()) {
        return info;
      }
      std::this_thread::sleep_for(50ms);
    }
    return v1::InfoResponse();
  };
  ASSERT_FALSE(wait_for_job().job_id().empty());

  constexpr int kWriters = 3;
  constexpr int kPerWriter = 1500;
  std::vector<std::unique_ptr<ReplayWriter>> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.push_back(std::make_unique<ReplayWriter>(replay_address, std::vector<std::string>{"q"},
                                                     "writer-" + std::to_string(w), 32, nullptr));
  }
  // Every tenth item of the last writer carries 80 KB of token ids: it travels zstd-compressed
  // and the log stores the actor's frame as it came. Its tokens encode its sequence number.
  constexpr int kTokens = 20000;
  const std::string large_writer = "writer-" + std::to_string(kWriters - 1);
  auto is_large = [&](const std::string& writer, uint64_t sequence) {
    return writer == large_writer && sequence % 10 == 1;
  };
  auto token = [](uint64_t sequence, int k) {
    return static_cast<uint32_t>(sequence * 7 + static_cast<uint64_t>(k % 97));
  };
  std::vector<std::thread> producers;
  for (int w = 0; w < kWriters; ++w) {
    producers.emplace_back([&, w] {
      for (int i = 0; i < kPerWriter; ++i) {
        v1::Trajectory t = testing::TicTacToeTrajectory(0, i % 9);
        const uint64_t sequence = static_cast<uint64_t>(i) + 1;  // the writer numbers from 1
        if (is_large("writer-" + std::to_string(w), sequence)) {
          for (int k = 0; k < kTokens; ++k) {
            t.mutable_turns(0)->add_observation_tokens(token(sequence, k));
          }
        }
        if (!writers[w]->Push(std::move(t))) return;
      }
    });
  }
  // Kill at a random moment while the writers stream.
  std::mt19937 rng(std::random_device{}());
  auto delay = std::chrono::milliseconds(std::uniform_int_distribution<int>(200, 1200)(rng));
  std::this_thread::sleep_for(delay);
  int64_t acked_before = 0;
  for (auto& w : writers) acked_before += w->acked();
  kill(replay->pid(), SIGKILL);
  replay->Wait(10s);
  replay = std::make_unique<Process>("rally-replay", replay_args, dir + "/replay.log");
  ASSERT_TRUE(WaitForServing(replay_address, 30s).ok());

  for (auto& t : producers) t.join();
  for (auto& w : writers) ASSERT_TRUE(w->Flush(120s)) << "writer did not drain";
  std::map<std::string, std::vector<uint64_t>> acked;
  int64_t duplicates = 0;
  for (int w = 0; w < kWriters; ++w) {
    acked["writer-" + std::to_string(w)] = writers[w]->acked_sequences();
    duplicates += writers[w]->duplicates();
    EXPECT_EQ(writers[w]->rejected(), 0);
    writers[w]->Stop();
  }
  RecordProperty("killed_after_ms", static_cast<int>(delay.count()));
  RecordProperty("acked_before_kill", static_cast<int>(acked_before));
  RecordProperty("duplicate_acks", static_cast<int>(duplicates));
  ASSERT_GT(acked_before, 0) << "the kill came before any item was stored";

  // Drain the table: each (writer, sequence) exactly once, and every acknowledged one present.
  v1::InfoResponse info = wait_for_job();
  ASSERT_EQ(info.tables_size(), 1);
  const int64_t size = info.tables(0).size();
  EXPECT_EQ(size, kWriters * kPerWriter);
  std::map<std::string, std::map<uint64_t, int>> seen;
  auto batch =
      testing::SampleOnce(*replay_stub, "q", static_cast<int>(size), /*accept_zstd=*/false, 60s);
  ASSERT_TRUE(batch.has_value());
  int large = 0;
  for (const auto& item : batch->items()) {
    const v1::Trajectory& t = item.trajectory();
    ++seen[t.actor_id()][t.sequence()];
    if (!is_large(t.actor_id(), t.sequence())) continue;
    ++large;
    ASSERT_EQ(t.turns(0).observation_tokens_size(), kTokens) << "sequence " << t.sequence();
    for (int k = 0; k < kTokens; ++k) {
      ASSERT_EQ(t.turns(0).observation_tokens(k), token(t.sequence(), k))
          << "sequence " << t.sequence() << " token " << k;
    }
  }
  EXPECT_EQ(large, kPerWriter / 10);
  for (const auto& [writer, seqs] : acked) {
    EXPECT_EQ(seqs.size(), static_cast<size_t>(kPerWriter)) << writer;
    for (uint64_t s : seqs) EXPECT_EQ(seen[writer][s], 1) << writer << " sequence " << s;
  }
  for (const auto& [writer, counts] : seen) {
    for (const auto& [s, n] : counts) EXPECT_EQ(n, 1) << writer << " sequence " << s;
  }
  std::string log = testing::ReadFile(dir + "/replay.log");
  EXPECT_NE(log.find("job recovered from disk"), std::string::npos);
  // fsync: every_batch wrote the log with direct I/O, where the file system takes it (the
  // replay says so once when it does not).
  struct statfs fsinfo {};
  if (statfs(dir.c_str(), &fsinfo) == 0 && fsinfo.f_type != TMPFS_MAGIC) {
    EXPECT_EQ(log.find("written through the page cache"), std::string::npos) << log;
  }
}

// Snapshots (snapshot-N.pb) and log segments (wal-N.log) in `dir`.
std::vector<std::filesystem::path> Files(const std::string& dir, const std::string& prefix,
                                         const std::string& suffix) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(prefix, 0) == 0 && n.size() > suffix.size() &&
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(e.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ReplayCrash, ALostSnapshotLosesNothingAndLostDataIsReportedNotHidden) {
  // Before: a deleted snapshot made the restarted replay drop every acknowledged item and clear
  // the log, without a word; a truncated one stopped it from starting at all.
  const std::string dir = testing::TempDir("snapshots");
  testing::ControlAndReplay replay(dir, dir + "/replay");
  const std::string& address = replay.address();
  const std::string& log = replay.replay_log();
  const std::string job_id = replay.SubmitJob(
      "game: tictactoe\nstop: {max_wall_seconds: 600}\n"
      "replay: {fsync: every_batch, snapshot_every_seconds: 0.2,\n"
      "         tables: [{name: q, max_size: 100000}]}\n");
  const std::string job_dir = dir + "/replay/jobs/" + job_id;
  ASSERT_EQ(replay.TableSize(job_id), 0);

  // 400 items, acknowledged, with snapshots taken meanwhile; then the replay dies.
  {
    ReplayWriter writer(address, {"q"}, "writer-0", 16, nullptr);
    for (int i = 0; i < 400; ++i) {
      ASSERT_TRUE(writer.Push(testing::TicTacToeTrajectory(0, i % 9)));
      if (i % 100 == 99) std::this_thread::sleep_for(300ms);  // a snapshot or two each time
    }
    ASSERT_TRUE(writer.Flush(60s));
    ASSERT_EQ(writer.acked(), 400);
    writer.Stop();
  }
  // Snapshots go on every 0.2 s: wait for the third, which deletes the log the first needed
  // (so that a missing newest snapshot shows in what it left behind).
  auto third_written = [&] {
    return Files(job_dir, "snapshot-", ".pb").size() >= 2 &&
           !std::filesystem::exists(job_dir + "/wal-0.log");
  };
  for (int i = 0; i < 200 && !third_written(); ++i) std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(third_written());
  replay.KillReplay();

  // The newest snapshot deleted: recovery falls back to the one before and the log after it,
  // which that snapshot's successor kept. All 400 items come back, and the loss is reported.
  std::vector<std::filesystem::path> snaps = Files(job_dir, "snapshot-", ".pb");
  std::filesystem::remove(snaps.back());
  replay.StartReplay();
  EXPECT_EQ(replay.TableSize(job_id), 400);
  std::string metrics = replay.Metrics();
  EXPECT_GE(testing::MetricValue(metrics, "rally_replay_recovery_problems"), 1) << metrics;
  EXPECT_EQ(testing::MetricValue(metrics, "rally_replay_recovery_data_lost"), 0);
  EXPECT_TRUE(testing::HealthServing(address, "rally.replay.recovery"));
  // Nothing names a deleted file; what it left behind does: the log it no longer needed is gone.
  EXPECT_NE(testing::ReadFile(log).find("a snapshot newer than"), std::string::npos);

  // Now every snapshot and the log's first segment are gone: what the later segments hold
  // comes back, and the loss is said loudly: log, metric, health.
  replay.KillReplay();
  for (const auto& f : Files(job_dir, "snapshot", ".pb")) std::filesystem::remove(f);
  const std::vector<std::filesystem::path> segments = Files(job_dir, "wal-", ".log");
  ASSERT_FALSE(segments.empty());
  std::filesystem::remove(segments.front());
  replay.StartReplay();
  const int64_t left = replay.TableSize(job_id);
  EXPECT_GE(left, 0);
  EXPECT_LT(left, 400);
  const std::string metrics_after = replay.Metrics();
  EXPECT_EQ(testing::MetricValue(metrics_after, "rally_replay_recovery_data_lost"), 1)
      << metrics_after;
  EXPECT_FALSE(testing::HealthServing(address, "rally.replay.recovery"));
  EXPECT_TRUE(testing::HealthServing(address, ""));  // it serves on, with what could be recovered
  EXPECT_NE(testing::ReadFile(log).find("acknowledged items may be missing"), std::string::npos);
  replay.StopReplay();
}

}  // namespace
}  // namespace rally
