// A replay table: items (trajectories) with a priority each, a sampler that picks what to sample,
// a remover that picks what to drop when the table is over capacity, a rate limiter, and a
// staleness bound. The semantics are Reverb's (reverb/cc/table.h) without TensorFlow.
//
// Blocking: Insert() waits while the rate limiter refuses inserts; Sample() waits until the rate
// limiter allows the whole batch. Both give up at their deadline with DEADLINE_EXCEEDED and
// nothing changed, or with CANCELLED once the table is closed. Time spent blocked is reported to
// the `blocked` callback (for metrics).
// Memory: at most max_size items and max_bytes bytes (of serialized trajectories); over either,
// the remover's choice is deleted before the insert returns.
// Staleness: each item carries the oldest policy version that acted in it. Once the learner's
// version is known (SetPolicyVersion), items more than max_staleness versions older are evicted
// and never sampled.
// Durability: every mutation is reported to an optional TableObserver (the write-ahead log)
// under the table lock, in the order it happened, so that replaying the observed events on an
// empty table with the same options rebuilds the same state.
// Thread safety: every public method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "rally/v1/trajectory.pb.h"
#include "services/replay/rate_limiter.h"
#include "services/replay/selectors.h"

namespace rally {

struct TableOptions {
  std::string name = "selfplay";
  std::string sampler = "fifo";
  std::string remover = "fifo";
  double priority_exponent = 1.0;             // prioritized sampler: P ~ priority^exponent
  double importance_sampling_exponent = 1.0;  // beta of the returned IS weights
  int64_t max_size = 4096;                    // items
  int64_t max_bytes = 1LL << 30;              // serialized trajectory bytes
  int32_t max_times_sampled = 1;              // 0: unlimited
  int64_t max_staleness = 0;                  // policy versions; 0: no bound
  RateLimiterOptions rate_limiter = RateLimiterOptions::Queue(4096);

  absl::Status Validate() const;
};

struct StoredItem {
  uint64_t key = 0;
  std::shared_ptr<const v1::Trajectory> trajectory;
  double priority = 1.0;
  int32_t times_sampled = 0;
  int64_t bytes = 0;
  int64_t policy_version = 0;  // oldest version that acted in the trajectory
  uint64_t lsn = 0;            // the log record of its insert (0: none, or from a snapshot)
};

struct SampledItem {
  StoredItem item;           // as it was when sampled (times_sampled includes this sample)
  double probability = 1.0;  // probability the sampler picked it
  int64_t table_size = 0;    // items in the table when it was picked
  double weight = 1.0;       // importance weight (N * P)^-beta, normalised by the batch maximum
  int64_t staleness = 0;     // learner version - item version when sampled
};

// A trajectory as the log stores it: serialised, and zstd-compressed when `compressed`. Made
// once per insert outside any table lock; usually the bytes as they arrived from the actor
// (compressed or not), still in the pieces the network delivered them in.
struct EncodedTrajectory {
  absl::Cord bytes;
  bool compressed = false;
};

// Receives every mutation, in order, under the table lock, and returns the log sequence number
// it gave the record (0 if none). Implementations must not call back into the table.
class TableObserver {
 public:
  virtual ~TableObserver() = default;
  // `encoded` is the item's trajectory already encoded, or null.
  virtual uint64_t OnInsert(const std::string& table, const StoredItem& item,
                            const EncodedTrajectory* encoded) = 0;
  // The items a sample picked (their times_sampled already incremented).
  virtual uint64_t OnSample(const std::string& table, const std::vector<uint64_t>& keys) = 0;
  virtual uint64_t OnDelete(const std::string& table, uint64_t key) = 0;
  virtual uint64_t OnUpdate(const std::string& table, uint64_t key, double priority) = 0;
  virtual uint64_t OnPolicyVersion(const std::string& table, int64_t version) = 0;
};

class Table {
 public:
  using Clock = std::chrono::steady_clock;

  static absl::StatusOr<std::unique_ptr<Table>> Create(TableOptions options, uint64_t seed = 1);

  const TableOptions& options() const { return options_; }
  const std::string& name() const { return options_.name; }

  void set_observer(TableObserver* observer);

  // Stores `trajectory` with `priority`; returns its key. `encoded` (optional) is handed to the
  // observer, which then need not encode the trajectory under the table lock. With an observer
  // that gives the insert no log record (its log has failed), nothing is stored: UNAVAILABLE.
  absl::StatusOr<uint64_t> Insert(std::shared_ptr<const v1::Trajectory> trajectory, double priority,
                                  Clock::time_point deadline,
                                  const EncodedTrajectory* encoded = nullptr);
  // Samples `n` items (the same item may appear more than once unless the sampler removes it).
  absl::StatusOr<std::vector<SampledItem>> Sample(int n, Clock::time_point deadline);
  // Sets priorities of present keys; NOT_FOUND names the first missing key (none is changed).
  absl::Status UpdatePriorities(const std::vector<std::pair<uint64_t, double>>& updates);
  // The learner's latest policy version: evicts items older than max_staleness versions.
  void SetPolicyVersion(int64_t version);
  void Close();

  // Replays observed events on a fresh table (recovery); these bypass the rate limiter's
  // blocking but keep its counters.
  // Takes back the insert of `key` whose log record never became durable: the item goes, and
  // the rate limiter's count of inserts with it, with nothing logged. False when the item is no
  // longer there (sampled, evicted).
  bool Withdraw(uint64_t key);
  absl::Status RestoreInsert(const StoredItem& item);
  absl::Status RestoreSample(const std::vector<uint64_t>& keys);
  absl::Status RestoreDelete(uint64_t key);
  absl::Status RestoreUpdate(uint64_t key, double priority);
  void RestorePolicyVersion(int64_t version);
  // Every item, ordered by key, and the counters: a snapshot of the table.
  struct State {
    std::vector<StoredItem> items;
    int64_t inserts = 0;
    int64_t samples = 0;
    int64_t policy_version = 0;
    uint64_t next_key = 1;
    uint64_t last_lsn = 0;  // the last observed record this state includes
  };
  State Snapshot() const;
  absl::Status Restore(const State& state);

  int64_t size() const;
  int64_t bytes() const;
  int64_t inserted_total() const;
  int64_t sampled_total() const;
  int64_t evicted_stale_total() const;
  double cursor() const;
  std::string DebugString() const;

 private:
  Table(TableOptions options, std::unique_ptr<ItemSelector> sampler,
        std::unique_ptr<ItemSelector> remover, uint64_t seed);

  absl::Status InsertLocked(StoredItem item);
  absl::Status DeleteLocked(uint64_t key);
  bool WithdrawLocked(uint64_t key);
  absl::Status SampledLocked(uint64_t key);
  void EvictStaleLocked();
  void EnforceCapacityLocked();
  // Records an observed mutation's log sequence number.
  void Observed(uint64_t lsn) { last_lsn_ = std::max(last_lsn_, lsn); }

  const TableOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<ItemSelector> sampler_;
  std::unique_ptr<ItemSelector> remover_;
  RateLimiter limiter_;
  std::map<uint64_t, StoredItem> items_;
  std::mt19937_64 rng_;
  uint64_t next_key_ = 1;
  int64_t bytes_ = 0;
  int64_t policy_version_ = 0;
  int64_t evicted_stale_ = 0;
  bool closed_ = false;
  TableObserver* observer_ = nullptr;
  uint64_t last_lsn_ = 0;
};

// The oldest policy version among a trajectory's turns (0 for none).
int64_t OldestPolicyVersion(const v1::Trajectory& trajectory);

}  // namespace rally
