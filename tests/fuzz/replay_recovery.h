// What rally-replay does with a job's data directory when it starts: DurableStore::Open reads
// the snapshots and the write-ahead log, ReplayJob::Create rebuilds the tables from them. The
// WAL and snapshot targets put their input into a directory and run this.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/config/job_config.h"
#include "services/replay/durable_store.h"
#include "services/replay/replay_job.h"
#include "tests/fuzz/fuzz_util.h"

namespace rally::fuzz {

// The job the seeds were written for (make_corpus.cc): a FIFO queue and a prioritised table.
inline constexpr char kJobId[] = "fuzz-job";
inline constexpr char kJobSpec[] = R"(game: tictactoe
replay:
  fsync: never
  snapshot_every_seconds: 0
  tables:
    - {name: queue, max_size: 64}
    - {name: prioritized, sampler: prioritized, remover: fifo, max_size: 64, rate_limiter: min_size, max_times_sampled: 0}
)";

inline const JobConfig& FuzzJobConfig() {
  static const JobConfig* config = [] {
    absl::StatusOr<JobConfig> c = ParseJobConfig(kJobSpec, "fuzz job");
    FUZZ_CHECK(c.ok());
    return new JobConfig(*c);
  }();
  return *config;
}

// Recovers the job from `dir`, then samples each table once (without waiting), as a learner
// would right after. Damage may fail the recovery; nothing may crash.
inline void RecoverAndSample(const std::string& dir) {
  absl::StatusOr<std::unique_ptr<DurableStore>> store =
      DurableStore::Open({.dir = dir, .fsync = FsyncPolicy::kNever, .stage_bytes = 64 << 10});
  if (!store.ok()) return;
  const RecoveredState& recovered = (*store)->recovered();
  FUZZ_CHECK(!recovered.torn_tail || recovered.torn_bytes > 0);
  absl::StatusOr<std::unique_ptr<ReplayJob>> job =
      ReplayJob::Create(kJobId, kJobSpec, FuzzJobConfig(), std::move(*store));
  if (!job.ok()) return;
  for (Table* table : (*job)->tables()) {
    FUZZ_CHECK(table->size() >= 0);
    table->Sample(1, std::chrono::steady_clock::now()).status().IgnoreError();
  }
  (*job)->Close();
}

}  // namespace rally::fuzz
