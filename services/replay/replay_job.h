// The replay state of one job: its tables, the per-actor insert watermarks that make inserts
// idempotent, and (when the replay has a data directory) the write-ahead log and snapshots that
// make acknowledged items survive a crash.
//
// Idempotency: an actor numbers its trajectories 1, 2, 3, ... and sends them in order; after a
// reconnect it resends the ones it saw no ack for. The job keeps the highest stored sequence per
// actor id, and a trajectory at or below it is acknowledged as a duplicate without being stored.
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
#include "services/replay/table.h"

namespace rally {

class ReplayJob {
 public:
  // Builds the job's tables. With a `store`, recovers them from it when it holds the same job
  // (and starts a fresh log otherwise), and snapshots every replay.snapshot_every_seconds.
  static absl::StatusOr<std::unique_ptr<ReplayJob>> Create(const std::string& job_id,
                                                           const std::string& spec_yaml,
                                                           const JobConfig& config,
                                                           DurableStore* store);
  ~ReplayJob();

  const std::string& id() const { return id_; }
  const Game& game() const { return *game_; }
  const JobConfig& config() const { return config_; }
  Table* table(const std::string& name) const;
  std::vector<Table*> tables() const;
  DurableStore* store() const { return store_; }
  // Items recovered from disk when the job was created (0 for a fresh job).
  int64_t recovered_items() const { return recovered_items_; }

  // True if (actor_id, sequence) is already stored.
  bool IsDuplicate(const std::string& actor_id, uint64_t sequence) const;
  void MarkStored(const std::string& actor_id, uint64_t sequence);

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
  absl::Status Recover(const RecoveredState& recovered);
  void SnapshotLoop();

  std::string id_;
  std::string spec_yaml_;
  JobConfig config_;
  std::shared_ptr<const Game> game_;
  std::map<std::string, std::unique_ptr<Table>> tables_;
  DurableStore* store_ = nullptr;
  int64_t recovered_items_ = 0;
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> watermarks_;
  std::thread snapshot_thread_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
};

// The TableOptions a table config describes.
TableOptions ToTableOptions(const ReplayTableConfig& config);

}  // namespace rally
