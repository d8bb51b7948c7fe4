// replay_bench: ingest and sampling throughput of rally-replay over gRPC on loopback, against a
// raw loopback TCP pump measured in the same run (the ceiling for moving bytes here): at the start
// and right before and after each ingest window, each row's ratio taken to the mean of its two.
//
//   replay_bench [--seconds S] [--writers W] [--samplers R] [--item_bytes N] [--json FILE]
//
// For items of 1 KB, 64 KB and 1 MB, with the write-ahead log off and on (fsync every batch),
// W writer streams (the actors' ReplayWriter) insert for S seconds into a uniform table; then
// R sampler streams sample it for S seconds in batches of 256 items (at most 16 MiB), accepting
// zstd as rally-learner does. Items are valid
// TicTacToe trajectories padded to size with token ids (as language-model turns carry them).
//
// A second table gives the CPU seconds each GB ingested cost the writers (this process) and the
// replay over the measured window, against what the pump spent per GB, and how busy the machine
// was: where every core is busy, the ratio to the ceiling is a ratio of CPU costs.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include "common/net/server.h"
#include "common/util/memory.h"
#include "rally/v1/replay.grpc.pb.h"
#include "services/actor/replay_writer.h"
#include "tests/bench/bench_util.h"
#include "tests/integration/process.h"

using namespace rally;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

v1::Trajectory Item(size_t bytes, std::mt19937& rng) {
  v1::Trajectory t = testing::TicTacToeTrajectory();
  v1::Turn* turn = t.mutable_turns(0);
  // Token ids (fixed32: 4 bytes each) from a 150k vocabulary.
  std::uniform_int_distribution<int> token(0, 150000);
  size_t base = t.ByteSizeLong() + 8;
  for (size_t n = bytes > base ? (bytes - base) / 4 : 0; n > 0; --n) {
    turn->add_observation_tokens(token(rng));
  }
  return t;
}

using Cluster = bench::ReplayCluster;

Cluster Start(const std::string& name, bool wal, int64_t max_size) {
  return bench::StartReplayCluster(
      name,
      "game: tictactoe\nstop: {max_wall_seconds: 3600}\n"
      "replay:\n  fsync: every_batch\n  snapshot_every_seconds: 0\n"
      "  tables: [{name: bench, sampler: uniform, remover: fifo, max_times_sampled: 0,\n"
      "            rate_limiter: min_size, max_bytes: 1073741824, max_size: " +
          std::to_string(max_size) + "}]\n",
      wal);
}

// What an ingest window measured: items acknowledged per second, and the CPU seconds the
// writers (this process) and the replay used over it, with the share of the machine busy.
struct IngestRate {
  double items_s = 0;
  double writers_cpu_s = 0;
  double replay_cpu_s = 0;
  double machine_busy = 0;
  double seconds = 0;
};

// Items per second acknowledged to `writers` streams over `seconds` (after a short warm-up).
IngestRate Ingest(const Cluster& c, size_t item_bytes, int writers, double seconds) {
  std::vector<std::unique_ptr<ReplayWriter>> ws;
  for (int w = 0; w < writers; ++w) {
    ws.push_back(std::make_unique<ReplayWriter>(c.replay_address, std::vector<std::string>{"bench"},
                                                "bench-" + std::to_string(w),
                                                item_bytes >= (1 << 20) ? 8 : 64, nullptr));
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937 rng(w + 1);
      // Shared and unchanging, as an actor hands over a finished trajectory: its token array
      // goes out from where it lies.
      auto item = std::make_shared<const v1::Trajectory>(Item(item_bytes, rng));
      while (!stop) {
        if (!ws[w]->Push(item)) return;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto acked = [&] {
    int64_t n = 0;
    for (auto& w : ws) n += w->acked();
    return n;
  };
  int64_t a0 = acked();
  const double self0 = bench::ProcessCpuSeconds(0);
  const double replay0 = bench::ProcessCpuSeconds(c.replay->pid());
  const bench::MachineCpu machine0 = bench::MachineCpuSeconds();
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  int64_t a1 = acked();
  IngestRate r;
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.writers_cpu_s = bench::ProcessCpuSeconds(0) - self0;
  r.replay_cpu_s = bench::ProcessCpuSeconds(c.replay->pid()) - replay0;
  const bench::MachineCpu machine1 = bench::MachineCpuSeconds();
  r.machine_busy =
      (machine1.busy - machine0.busy) / std::max(1e-9, machine1.total - machine0.total);
  r.items_s = static_cast<double>(a1 - a0) / r.seconds;
  stop = true;
  for (auto& w : ws) w->Stop();
  for (auto& t : threads) t.join();
  return r;
}

// Items per second sampled by `samplers` streams in batches of `batch`, accepting zstd for
// large items as rally-learner does.
double SampleRate(const Cluster& c, int samplers, int batch, double seconds) {
  std::atomic<bool> stop{false};
  std::atomic<int64_t> items{0};
  std::vector<std::thread> threads;
  for (int s = 0; s < samplers; ++s) {
    threads.emplace_back([&] {
      auto stub = v1::ReplayService::NewStub(MakeChannel(c.replay_address));
      grpc::ClientContext ctx;
      auto stream = stub->Sample(&ctx);
      v1::SampleRequest req;
      req.set_table("bench");
      req.set_batch_size(batch);
      req.set_credits(8);
      req.set_accept_zstd(true);
      stream->Write(req);
      v1::SampleRequest more;
      more.set_credits(1);
      v1::SampleResponse resp;
      while (!stop && stream->Read(&resp)) {
        items += resp.items_size();
        stream->Write(more);
      }
      ctx.TryCancel();
      stream->Finish();
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  int64_t i0 = items;
  auto t0 = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  int64_t i1 = items;
  double dt = std::chrono::duration<double>(Clock::now() - t0).count();
  stop = true;
  for (auto& t : threads) t.join();
  return (i1 - i0) / dt;
}

double FlagValue(int argc, char** argv, const std::string& name, double fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return std::atof(argv[i + 1]);
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  RetainFreedMemory();  // as rally-actor does: the writers here are the actors
  const double seconds = FlagValue(argc, argv, "seconds", 3);
  const int writers = static_cast<int>(FlagValue(argc, argv, "writers", 2));
  const int samplers = static_cast<int>(FlagValue(argc, argv, "samplers", 2));
  // 0: all three sizes.
  const auto only_bytes = static_cast<size_t>(FlagValue(argc, argv, "item_bytes", 0));
  // The ceiling: the raw pump, median of 3 runs of 1 GiB. It is measured again right before and
  // right after each ingest window, and each row's ratio is to the mean of those two: on a shared
  // machine what a core delivers drifts by a factor of two or more within minutes, and a ceiling
  // measured a minute earlier would compare the ingest with another machine.
  double pump_cpu_s = 0;
  double pump_gb = 0;
  std::vector<double> ceilings;
  auto pump = [&] {
    const double cpu0 = bench::ProcessCpuSeconds(0);
    const double mb_s = bench::LoopbackTcpMegabytesPerSecond(size_t{1} << 30, 3);
    // CPU seconds per GB moved: the pump's sender and receiver, both in this process.
    pump_cpu_s += bench::ProcessCpuSeconds(0) - cpu0;
    pump_gb += 3.0 * static_cast<double>(size_t{1} << 30) / 1e9;
    ceilings.push_back(mb_s);
    return mb_s;
  };
  const double first_ceiling = pump();
  std::printf(
      "raw loopback TCP pump (ceiling): %.0f MB/s (median of 3, 1 GiB each), %.3f CPU s/GB; "
      "measured again around each ingest window\n",
      first_ceiling, pump_cpu_s / pump_gb);
  // For reference, not a ceiling: the same pump keeping every byte in a 512 MiB ring, as the
  // 64 KB runs' table (8192 items) keeps its items.
  const double stored = bench::LoopbackTcpIntoRingMegabytesPerSecond(size_t{1} << 30, 512 << 20, 3);
  std::printf(
      "the same pump storing each byte in a 512 MiB ring: %.0f MB/s (%.2f of the ceiling)\n\n",
      stored, stored / first_ceiling);
  std::printf("%10s %5s %7s %12s %10s %17s %8s %8s %14s %10s\n", "item", "wal", "writers",
              "ingest it/s", "MB/s", "ceiling (bef/aft)", "ratio", "samplers", "sample it/s",
              "MB/s");
  nlohmann::json runs = nlohmann::json::array();
  struct CpuRow {
    size_t bytes;
    bool wal;
    double writers_s_gb, replay_s_gb, busy;
  };
  std::vector<CpuRow> cpu_rows;
  for (size_t bytes : {size_t{1024}, size_t{65536}, size_t{1} << 20}) {
    if (only_bytes != 0 && bytes != only_bytes) continue;
    for (bool wal : {false, true}) {
      Cluster c =
          Start(std::to_string(bytes) + (wal ? "-wal" : ""), wal, bytes >= (1 << 20) ? 256 : 8192);
      const double before = pump();
      const IngestRate in = Ingest(c, bytes, writers, seconds);
      const double after = pump();
      const double ceiling = (before + after) / 2;
      const double items_s = in.items_s;
      double mb_s = items_s * static_cast<double>(bytes) / 1e6;
      const double gb = mb_s * in.seconds / 1e3;
      // Batches of 256 items, at most 16 MiB.
      const int batch = static_cast<int>(std::min<size_t>(256, (size_t{16} << 20) / bytes));
      double sample_s = SampleRate(c, samplers, batch, seconds);
      double sample_mb_s = sample_s * static_cast<double>(bytes) / 1e6;
      c.replay->Stop();
      c.control->Stop();
      // The log of a WAL run holds gigabytes; the processes' logs stay for inspection.
      std::filesystem::remove_all(c.dir + "/replay");
      std::printf("%10zu %5s %7d %12.0f %10.1f %8.0f/%-8.0f %8.3f %8d %14.0f %10.1f\n", bytes,
                  wal ? "on" : "off", writers, items_s, mb_s, before, after, mb_s / ceiling,
                  samplers, sample_s, sample_mb_s);
      std::fflush(stdout);
      cpu_rows.push_back(
          {bytes, wal, in.writers_cpu_s / gb, in.replay_cpu_s / gb, in.machine_busy});
      nlohmann::json run = {{"writers_cpu_s_per_gb", in.writers_cpu_s / gb},
                            {"replay_cpu_s_per_gb", in.replay_cpu_s / gb},
                            {"machine_busy", in.machine_busy},
                            {"item_bytes", bytes},
                            {"wal", wal},
                            {"writers", writers},
                            {"ingest_items_s", items_s},
                            {"ingest_mb_s", mb_s},
                            {"ingest_ratio", mb_s / ceiling},
                            {"ceiling_mb_s", ceiling},
                            {"ceiling_before_mb_s", before},
                            {"ceiling_after_mb_s", after},
                            {"samplers", samplers},
                            {"sample_batch", batch},
                            {"sample_items_s", sample_s},
                            {"sample_mb_s", sample_mb_s}};
      runs.push_back(run);
    }
  }
  // Where the ingest's CPU went, against the pump's cost for the same bytes: on a machine
  // whose cores are all busy (see `busy`), the ratio to the ceiling follows the CPU cost.
  std::printf("\n%10s %5s %16s %15s %14s %13s %9s %6s\n", "item", "wal", "writers CPU s/GB",
              "replay CPU s/GB", "total CPU s/GB", "pump CPU s/GB", "pump/all", "busy");
  const double pump_cpu_s_gb = pump_cpu_s / pump_gb;
  for (const CpuRow& r : cpu_rows) {
    const double total = r.writers_s_gb + r.replay_s_gb;
    std::printf("%10zu %5s %16.3f %15.3f %14.3f %13.3f %9.3f %5.0f%%\n", r.bytes,
                r.wal ? "on" : "off", r.writers_s_gb, r.replay_s_gb, total, pump_cpu_s_gb,
                pump_cpu_s_gb / total, 100 * r.busy);
  }
  std::printf(
      "\ngoals: ingest of 64 KB+ items >= 0.5 of the ceiling (WAL off), >= 0.3 (WAL on, "
      "fsync every batch); sampling of 1 KB items >= 100000 items/s\n");
  // The run's ceiling: the median of every pump measurement in it.
  bench::WriteJson(bench::JsonPath(argc, argv), {{"ceiling_mb_s", bench::Median(ceilings)},
                                                 {"ceilings_mb_s", ceilings},
                                                 {"pump_cpu_s_per_gb", pump_cpu_s_gb},
                                                 {"store_pump_mb_s", stored},
                                                 {"runs", runs}});
  return 0;
}
