// The replay state of one job: its tables, the producer watermarks that make inserts
// idempotent (producer_watermarks.h), and (when the replay has a data directory) the job's own
// write-ahead log and snapshots, which make acknowledged items survive a crash.
//
// A job's data is its own: the replay gives each job id a directory of its own
// (`DATA_DIR/jobs/<job_id>`), and nothing here deletes another job's. A store that holds another
// job's data is refused.
// Thread safety: all methods may be called from any thread.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/config/job_config.h"
#include "common/games/game.h"
#include "services/replay/durable_store.h"
#include "services/replay/producer_watermarks.h"
#include "services/replay/table.h"

namespace rally {

class ReplayJob {
 public:
  // Builds the job's tables. With a `store` (the job's own directory), recovers them from what
  // it holds, or starts its log when it holds nothing, and snapshots every
  // replay.snapshot_every_seconds. DATA_LOSS when the store holds another job's data.
  static absl::StatusOr<std::unique_ptr<ReplayJob>> Create(const std::string& job_id,
                                                           const std::string& spec_yaml,
                                                           const JobConfig& config,
                                                           std::unique_ptr<DurableStore> store);
  ~ReplayJob();

  const std::string& id() const { return id_; }
  const Game& game() const { return *game_; }
  const JobConfig& config() const { return config_; }
  Table* table(const std::string& name) const;
  std::vector<Table*> tables() const;
  DurableStore* store() const { return store_.get(); }
  // Items recovered from disk when the job was created (0 for a fresh job).
  int64_t recovered_items() const { return recovered_items_; }
  // What recovery found damaged or missing, one line each (empty when all was well), and
  // whether acknowledged items may be missing for it (RecoveredState).
  const std::vector<std::string>& recovery_problems() const { return recovery_problems_; }
  bool recovery_data_lost() const { return recovery_data_lost_; }

  // The idempotency keys of the items stored: Claim() before storing an item.
  ProducerWatermarks& producers() { return producers_; }
  const ProducerWatermarks& producers() const { return producers_; }

  // Makes records up to `lsn` durable according to replay.fsync (group commit).
  absl::Status SyncForAck(uint64_t lsn);
  // Makes what the tables logged survive kill -9 of the process before a reply reveals it (a
  // sample, a priority update); see DurableStore::Flush.
  absl::Status Flush();
  // The LSN of the last logged record (0 without a store).
  uint64_t last_lsn() const { return store_ ? store_->last_lsn() : 0; }
  absl::Status WriteSnapshot();
  void Close();

  std::atomic<int64_t> rejected{0};
  std::atomic<int64_t> duplicates{0};

 private:
  ReplayJob() = default;
  // Recovers the tables from the store, or starts its log; then appends go to a new segment.
  absl::Status OpenLog();
  absl::Status Recover(const RecoveredState& recovered);
  // The job's state as a snapshot stores it: its tables without the items whose insert was
  // logged while the log was failing, and the producer watermarks.
  v1::ReplaySnapshot Capture() const;
  // Snapshots every replay.snapshot_every_seconds, and resumes a failed log every second.
  void SnapshotLoop();

  std::string id_;
  std::string spec_yaml_;
  JobConfig config_;
  std::shared_ptr<const Game> game_;
  std::map<std::string, std::unique_ptr<Table>> tables_;
  std::unique_ptr<DurableStore> store_;
  int64_t recovered_items_ = 0;
  std::vector<std::string> recovery_problems_;
  bool recovery_data_lost_ = false;
  mutable std::mutex mu_;
  ProducerWatermarks producers_;
  std::thread snapshot_thread_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
};

// The directory of `job_id`'s log and snapshots under a replay's data directory:
// DATA_DIR/jobs/<job_id>. INVALID_ARGUMENT for an id that could name another directory.
absl::StatusOr<std::string> JobDataDir(const std::string& data_dir, const std::string& job_id);

// A data directory written before each job had a directory of its own holds one job's log and
// snapshot at its top: moves them into that job's directory, so that the job recovers them
// and no other job's start can touch them. Nothing to do otherwise.
absl::Status AdoptSharedDataDir(const std::string& data_dir);

// The TableOptions a table config describes.
TableOptions ToTableOptions(const ReplayTableConfig& config);

}  // namespace rally
