// Faults injected into a running replay while writers stream into it (the actors' ReplayWriter,
// over gRPC to a real rally-replay): its volume fills up and is freed, it is killed with SIGKILL
// and restarted, its snapshots are deleted or damaged between restarts. After each, every
// acknowledged item is in the table exactly once. The moments are random, from a seed printed
// at the start (RALLY_FAULTS_SEED sets it); the test prints a table: fault, times injected,
// items acked, items lost (must be 0), duplicates (must be 0), recovery time.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "common/net/server.h"
#include "rally/v1/replay.grpc.pb.h"
#include "services/actor/replay_writer.h"
#include "tests/integration/control_and_replay.h"
#include "tests/integration/process.h"

namespace rally {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// One line of the printed table.
struct FaultRow {
  std::string fault;
  int injected = 0;
  int64_t acked = 0;
  int64_t lost = 0;
  int64_t duplicates = 0;
  double recovery_seconds = 0;
};

void PrintTable(uint64_t seed, const std::vector<FaultRow>& rows) {
  std::printf("\nfaults (seed %llu)\n", static_cast<unsigned long long>(seed));
  std::printf("| %-34s | %8s | %11s | %10s | %10s | %13s |\n", "fault", "injected", "items acked",
              "items lost", "duplicates", "recovery (s)");
  for (const FaultRow& r : rows) {
    std::printf("| %-34s | %8d | %11lld | %10lld | %10lld | %13.2f |\n", r.fault.c_str(),
                r.injected, static_cast<long long>(r.acked), static_cast<long long>(r.lost),
                static_cast<long long>(r.duplicates), r.recovery_seconds);
  }
  std::fflush(stdout);
}

uint64_t SeedFromEnvironment() {
  if (const char* s = std::getenv("RALLY_FAULTS_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

// A tmpfs of `bytes` mounted at `dir` while it lives (root only).
class Volume {
 public:
  Volume(const std::string& dir, size_t bytes) : dir_(dir) {
    fs::create_directories(dir_);
    mounted_ =
        mount("tmpfs", dir_.c_str(), "tmpfs", 0, ("size=" + std::to_string(bytes)).c_str()) == 0;
  }
  ~Volume() {
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
  }
  bool ok() const { return mounted_; }

 private:
  std::string dir_;
  bool mounted_ = false;
};

// An item of about `bytes` that does not compress, so that it takes its room on the volume.
v1::Trajectory Incompressible(std::mt19937& rng, size_t bytes) {
  v1::Trajectory t = testing::TicTacToeTrajectory(0, 4);
  for (size_t k = 0; k < bytes / 4; ++k) t.mutable_turns(0)->add_observation_tokens(rng());
  return t;
}

// The items of table `q`, drained: the count of each (writer, sequence).
std::map<std::pair<std::string, uint64_t>, int> Drain(const std::string& address, int64_t size) {
  std::map<std::pair<std::string, uint64_t>, int> seen;
  auto stub = v1::ReplayService::NewStub(MakeChannel(address));
  auto batch = testing::SampleOnce(*stub, "q", static_cast<int>(size), false, 60s);
  EXPECT_TRUE(batch.has_value());
  if (!batch) return seen;
  for (const auto& item : batch->items()) {
    ++seen[{item.trajectory().actor_id(), item.trajectory().sequence()}];
  }
  return seen;
}

// Counts, for what `writers` saw acknowledged, how many are missing from `seen` and how many
// are there more than once.
void Tally(const std::vector<std::unique_ptr<ReplayWriter>>& writers,
           const std::map<std::pair<std::string, uint64_t>, int>& seen, FaultRow* row) {
  for (const auto& w : writers) {
    for (uint64_t s : w->acked_sequences()) {
      ++row->acked;
      auto it = seen.find({w->actor_id(), s});
      if (it == seen.end()) ++row->lost;
    }
  }
  for (const auto& [key, n] : seen) row->duplicates += n - 1;
}

TEST(Faults, AFullVolumeRefusesInsertsUntilFreedAndLosesNothing) {
  const uint64_t seed = SeedFromEnvironment();
  std::printf("faults seed %llu (RALLY_FAULTS_SEED=%llu reproduces it)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::mt19937 rng(static_cast<uint32_t>(seed));
  const std::string dir = testing::TempDir("faults-full");
  const std::string data = dir + "/volume";
  Volume volume(data, 24 << 20);
  if (!volume.ok()) GTEST_SKIP() << "cannot mount a tmpfs (not root?)";
  // A filler leaves the log 5 MB; freeing it makes room for the snapshot that resuming writes.
  const std::string filler = data + "/filler";
  {
    std::ofstream out(filler, std::ios::binary);
    const std::string block(1 << 20, 'f');
    for (int i = 0; i < 18; ++i) out.write(block.data(), block.size());
  }
  testing::ControlAndReplay replay(dir, data + "/replay");
  const std::string job = replay.SubmitJob(
      "game: tictactoe\nstop: {max_wall_seconds: 600}\n"
      "replay: {fsync: every_batch, snapshot_every_seconds: 0,\n"
      "         tables: [{name: q, max_size: 100000}]}\n");
  ASSERT_EQ(replay.TableSize(job), 0);

  // Two writers, 400 items of 16 KB each: 12.8 MB, more than the volume has room for.
  constexpr int kWriters = 2;
  constexpr int kPerWriter = 400;
  std::vector<std::unique_ptr<ReplayWriter>> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.push_back(std::make_unique<ReplayWriter>(replay.address(),
                                                     std::vector<std::string>{"q"},
                                                     "writer-" + std::to_string(w), 32, nullptr));
  }
  std::vector<v1::Trajectory> items;
  for (int i = 0; i < 32; ++i) items.push_back(Incompressible(rng, 16 << 10));
  std::vector<std::thread> producers;
  for (int w = 0; w < kWriters; ++w) {
    producers.emplace_back([&, w] {
      for (int i = 0; i < kPerWriter; ++i) {
        if (!writers[w]->Push(items[static_cast<size_t>(i) % items.size()])) return;
      }
    });
  }
  // The volume fills: the log fails, inserts are refused (not stored), health says so.
  const auto fill_deadline = Clock::now() + 60s;
  while (Clock::now() < fill_deadline &&
         testing::MetricValue(replay.Metrics(), "rally_replay_wal_failing") != 1) {
    std::this_thread::sleep_for(100ms);
  }
  const std::string full = replay.Metrics();
  ASSERT_EQ(testing::MetricValue(full, "rally_replay_wal_failing"), 1) << "the volume never filled";
  EXPECT_GT(testing::MetricValue(full, "rally_replay_items_not_durable_total"), 0);
  std::this_thread::sleep_for(500ms);
  EXPECT_FALSE(testing::HealthServing(replay.address(), ""));
  // Held full for a random moment, then freed: the log resumes without a restart.
  std::this_thread::sleep_for(
      std::chrono::milliseconds(std::uniform_int_distribution<int>(500, 2500)(rng)));
  fs::remove(filler);
  const auto freed = Clock::now();
  while (Clock::now() < freed + 60s &&
         testing::MetricValue(replay.Metrics(), "rally_replay_wal_failing") != 0) {
    std::this_thread::sleep_for(50ms);
  }
  FaultRow row{"replay volume full, then freed", 1};
  row.recovery_seconds = std::chrono::duration<double>(Clock::now() - freed).count();
  EXPECT_EQ(testing::MetricValue(replay.Metrics(), "rally_replay_wal_failing"), 0);
  for (auto& t : producers) t.join();
  int64_t retried = 0;
  for (auto& w : writers) {
    ASSERT_TRUE(w->Flush(120s)) << "a writer did not drain";
    retried += w->retried();
    EXPECT_EQ(w->rejected(), 0);
  }
  EXPECT_GT(retried, 0) << "no item was refused and sent again";
  EXPECT_TRUE(testing::HealthServing(replay.address(), ""));
  const int64_t size = replay.TableSize(job);
  EXPECT_EQ(size, kWriters * kPerWriter);
  Tally(writers, Drain(replay.address(), size), &row);
  for (auto& w : writers) w->Stop();
  PrintTable(seed, {row});
  EXPECT_EQ(row.acked, kWriters * kPerWriter);
  EXPECT_EQ(row.lost, 0);
  EXPECT_EQ(row.duplicates, 0);
  replay.StopReplay();
}

TEST(Faults, KilledReplaysAndLostSnapshotsLoseNothing) {
  const uint64_t seed = SeedFromEnvironment();
  std::printf("faults seed %llu (RALLY_FAULTS_SEED=%llu reproduces it)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::mt19937 rng(static_cast<uint32_t>(seed));
  const std::string dir = testing::TempDir("faults-kill");
  testing::ControlAndReplay replay(dir, dir + "/replay");
  const std::string job = replay.SubmitJob(
      "game: tictactoe\nstop: {max_wall_seconds: 600}\n"
      "replay: {fsync: every_batch, snapshot_every_seconds: 0.3,\n"
      "         tables: [{name: q, max_size: 100000}]}\n");
  ASSERT_EQ(replay.TableSize(job), 0);
  const std::string job_dir = dir + "/replay/jobs/" + job;

  constexpr int kWriters = 3;
  constexpr int kPerWriter = 1500;
  std::vector<std::unique_ptr<ReplayWriter>> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.push_back(std::make_unique<ReplayWriter>(replay.address(),
                                                     std::vector<std::string>{"q"},
                                                     "writer-" + std::to_string(w), 32, nullptr));
  }
  std::vector<std::thread> producers;
  for (int w = 0; w < kWriters; ++w) {
    producers.emplace_back([&, w] {
      for (int i = 0; i < kPerWriter; ++i) {
        if (!writers[w]->Push(testing::TicTacToeTrajectory(0, i % 9))) return;
        std::this_thread::sleep_for(1ms);  // spread over the faults
      }
    });
  }
  // Each round: a random pause, SIGKILL; then, between the kill and the restart, the newest
  // snapshot deleted (round 2) or its bytes damaged (round 3).
  FaultRow killed{"replay SIGKILL, restarted", 0};
  FaultRow deleted{"... and newest snapshot deleted", 0};
  FaultRow damaged{"... and newest snapshot damaged", 0};
  double recovery = 0;
  for (int round = 1; round <= 3; ++round) {
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(300, 1200)(rng)));
    replay.KillReplay();
    std::vector<fs::path> snapshots;
    for (const auto& e : fs::directory_iterator(job_dir)) {
      const std::string n = e.path().filename().string();
      if (n.rfind("snapshot-", 0) == 0 && n.size() > 3 && n.substr(n.size() - 3) == ".pb") {
        snapshots.push_back(e.path());
      }
    }
    std::sort(snapshots.begin(), snapshots.end(), [](const fs::path& a, const fs::path& b) {
      return std::stoull(a.stem().string().substr(9)) < std::stoull(b.stem().string().substr(9));
    });
    if (round == 2 && !snapshots.empty()) {
      fs::remove(snapshots.back());
      ++deleted.injected;
    } else if (round == 3 && !snapshots.empty()) {
      std::fstream f(snapshots.back(), std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(fs::file_size(snapshots.back()) / 2));
      f.put('\x5a');
      ++damaged.injected;
    } else {
      ++killed.injected;
    }
    const auto start = Clock::now();
    replay.StartReplay();
    EXPECT_GE(replay.TableSize(job), 0);
    recovery = std::chrono::duration<double>(Clock::now() - start).count();
    (round == 1 ? killed : round == 2 ? deleted : damaged).recovery_seconds = recovery;
  }
  for (auto& t : producers) t.join();
  for (auto& w : writers) {
    ASSERT_TRUE(w->Flush(120s)) << "a writer did not drain";
    EXPECT_EQ(w->rejected(), 0);
  }
  const int64_t size = replay.TableSize(job);
  EXPECT_EQ(size, kWriters * kPerWriter);
  FaultRow all{"all of the above (totals)", killed.injected + deleted.injected + damaged.injected};
  Tally(writers, Drain(replay.address(), size), &all);
  all.recovery_seconds = recovery;
  for (auto& w : writers) w->Stop();
  const std::string metrics = replay.Metrics();
  PrintTable(seed, {killed, deleted, damaged, all});
  EXPECT_EQ(all.acked, kWriters * kPerWriter);
  EXPECT_EQ(all.lost, 0);
  EXPECT_EQ(all.duplicates, 0);
  // The last restart fell back from a damaged snapshot: counted, nothing lost.
  EXPECT_EQ(deleted.injected, 1);
  EXPECT_EQ(damaged.injected, 1);
  EXPECT_GE(testing::MetricValue(metrics, "rally_replay_recovery_problems"), 1);
  EXPECT_EQ(testing::MetricValue(metrics, "rally_replay_recovery_data_lost"), 0);
  replay.StopReplay();
}

}  // namespace
}  // namespace rally
