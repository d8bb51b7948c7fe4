// Durability of rally-replay: a write-ahead log of every table mutation plus periodic snapshots,
// in one directory per replay job:
//   wal-<N>.log            log segments, N = 0, 1, 2, ... in the order they were written
//   snapshot-<N>.pb        a ReplaySnapshot covering every segment before wal-<N>.log: the 8
//                          bytes "RALLYSN1", the payload's length (u64) and CRC-32C (u32),
//                          little-endian, then the payload (the serialised ReplaySnapshot)
//   snapshot.pb            a snapshot from before the header (unchecked): read, never written
//   <file>.damaged         a snapshot recovery found damaged, kept for inspection, never read
// A segment is the 8 bytes "RALLYWL2", then records, each [u32 length][u32 CRC-32C of
// payload][payload = WalRecord], little-endian. (Segments without the header, from before,
// hold records checked with zlib's CRC-32; recovery reads both.)
// An insert's trajectory is stored as it arrived (the actor's zstd frame, or its serialised
// bytes), compressed by the store only when it is above `compress_above_bytes` and that pays.
//
// Guarantee: a record survives kill -9 of the process once Flush() (or a commit) returned after
// it was appended, and a machine crash once a commit did: Sync(), unless fsync = never, or
// SyncTo() with fsync = every_batch (otherwise it only writes). With fsync = every_batch the
// replay commits (SyncTo) before acknowledging inserts, and flushes before answering any other
// call that changed a table (a sample, a priority update); with fsync = interval a background
// thread syncs every interval_ms, so a machine crash can lose the acknowledged items of the last
// interval (a process crash cannot).
//
// Snapshots: WriteSnapshot writes snapshot-<N>.pb to a temporary file, fsyncs it, renames it
// and syncs the directory; only then does anything older go. The newest two snapshots are kept
// (the legacy snapshot.pb counts as the oldest), and the segments the older of the two needs
// stay, so that the older snapshot and the log after it are always a complete fallback: older
// snapshots and the segments before the older one's N are deleted. The first snapshot in a
// directory has no fallback but the whole log, so it deletes nothing.
//
// Writing: with fsync = interval or never, an append writes its record into the page cache at
// once (Flush() has nothing to do). With fsync = every_batch, where the file system allows it,
// a segment is written with direct I/O: appends copy records into an aligned staging buffer,
// and each commit or flush writes the blocks not yet written, the last partial block padded with
// zeros and written again, whole, by the next one (its bytes already on the disk are the same,
// so a torn write cannot lose them). A segment is cut to its length before the next begins; a
// segment left with zeros from its last record to the end of that block (the process died) has
// them cut on recovery. A segment's first block is written with direct I/O when it is created:
// a file system that refuses such writes gets the page cache instead.
// Direct I/O spares the page cache: its copy, its buffer heads and freeing its pages cost about
// a quarter of the machine at the log's full rate.
//
// Recovery tries the snapshots newest first (checked ones, then snapshot.pb). One that is
// truncated, lacks its header, fails its checksum, does not parse or does not match its name is
// renamed to <name>.damaged and reported, and the next older one is used; with none, the log
// alone from wal-0.log. Then it reads the segments from the snapshot's N to the last, which must
// all be there: a missing first segment or a gap is reported as data lost (acknowledged items
// may be missing) and what the remaining segments hold is recovered. Every such finding is a
// line in RecoveredState::problems and the process log (an error); data_lost says whether
// acknowledged items may be missing. Damage never makes Open fail, and never passes for an empty
// directory. In the log, a torn last record (a crash mid-write) is detected by its length or
// checksum, reported, and cut off; a bad record before the last segment's end, or a segment
// that begins with neither header nor record, is DATA_LOSS (Open fails; the bytes stay).
// Thread safety: all methods may be called from any thread.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "common/util/zstd.h"
#include "rally/v1/replay_storage.pb.h"
#include "services/replay/table.h"

namespace rally {

enum class FsyncPolicy { kEveryBatch, kInterval, kNever };

struct DurabilityOptions {
  std::string dir;
  FsyncPolicy fsync = FsyncPolicy::kEveryBatch;
  int interval_ms = 100;
  size_t compress_above_bytes = 4096;
  // Direct I/O's staging buffer (a multiple of 4 KiB); a record larger than it streams through.
  size_t stage_bytes = 32 << 20;
};

struct RecoveredState {
  v1::ReplaySnapshot snapshot;         // empty job when there was none
  std::vector<v1::WalRecord> records;  // after the snapshot, in order
  bool torn_tail = false;              // a torn last record was cut off
  int64_t torn_bytes = 0;
  // One line per damaged or missing file, naming it, what is wrong, and what recovery did.
  std::vector<std::string> problems;
  // No complete snapshot-and-log chain was found: acknowledged items may be missing.
  bool data_lost = false;
};

class DurableStore : public TableObserver {
 public:
  // Opens `options.dir` (creating it) and reads what it holds.
  static absl::StatusOr<std::unique_ptr<DurableStore>> Open(DurabilityOptions options);
  ~DurableStore() override;

  const RecoveredState& recovered() const { return recovered_; }

  // Starts the log of a new `job` (its first record) in wal-0.log. Deletes nothing: a directory
  // that holds a snapshot or a segment (another job's data, or this one's) is refused with
  // FAILED_PRECONDITION. recovered() keeps what recovery found.
  absl::Status StartJob(const v1::WalJob& job);
  // Continues the recovered log (same job), also after recovery found problems or nothing at
  // all: new records go to a new segment, after the highest index any file in the directory had.
  absl::Status ContinueJob();

  // TableObserver: appends one record each and returns its LSN.
  uint64_t OnInsert(const std::string& table, const StoredItem& item,
                    const EncodedTrajectory* encoded) override;
  uint64_t OnSample(const std::string& table, const std::vector<uint64_t>& keys) override;
  uint64_t OnDelete(const std::string& table, uint64_t key) override;
  uint64_t OnUpdate(const std::string& table, uint64_t key, double priority) override;
  uint64_t OnPolicyVersion(const std::string& table, int64_t version) override;

  // Makes everything appended so far durable (fdatasync), if anything is pending; with
  // fsync = never it only flushes.
  absl::Status Sync();
  // Makes everything appended so far survive kill -9 of the process: writes what the direct I/O
  // staging buffer holds (nothing to do otherwise). Concurrent callers share a write.
  absl::Status Flush();
  // Whether the current segment is written with direct I/O.
  bool direct_io() const;
  // Group commit: returns once every record up to `lsn` is durable. Concurrent callers share
  // one fdatasync: while one runs, the others wait for it and only sync again if it did not
  // cover their records. With fsync = never or interval it only writes the records (with
  // direct I/O; through the page cache they are written already) and returns.
  absl::Status SyncTo(uint64_t lsn);
  // LSN of the last record appended.
  uint64_t last_lsn() const;
  // Changes the fsync policy (a job's replay.fsync); see the guarantee above.
  void SetFsync(FsyncPolicy policy, int interval_ms);
  // A log that failed resumes instead (Resume()). Otherwise:
  // starts a new segment, then writes the snapshot `capture` returns (its next_segment filled
  // in) durably and, once it is, deletes what the previous snapshot no longer needs (see the
  // top of this file). Records appended while `capture` runs land in the new
  // segment; tables skip, on replay, the records their captured state already includes
  // (TableSnapshot.last_lsn), so nothing is lost or applied twice.
  absl::Status WriteSnapshot(const std::function<v1::ReplaySnapshot()>& capture);
  // The first error any append or commit met since the log last resumed (appends meanwhile are
  // dropped: the tables refuse the inserts they would log); OK otherwise.
  absl::Status health() const;
  // Failures of the log so far (each one a health() error until Resume()).
  int64_t failures() const { return failures_; }
  // After a failure (a full disk, an I/O error): cuts the failed segment after its last whole
  // record, starts a new one and writes a snapshot of what `capture` returns (it must leave out
  // the items whose record is NotDurable()); once that is durable, appends go on. Records
  // appended from the failure until now stay not durable for good: SyncTo() fails for them, so
  // their inserts are refused, never acknowledged. An error (still no room) leaves the log
  // failed; call again later. OK at once when the log is healthy.
  absl::Status Resume(const std::function<v1::ReplaySnapshot()>& capture);
  // Whether the record `lsn` was appended while the log was failing (and so never becomes
  // durable). False for 0.
  bool NotDurable(uint64_t lsn) const;
  int64_t records_since_snapshot() const { return records_since_snapshot_; }
  int64_t bytes_written() const { return bytes_written_; }
  // Snapshot files recovery found damaged (and renamed to <name>.damaged).
  int64_t damaged_files() const { return damaged_files_; }

  // Encodes a trajectory as the log stores it: compressed when it is above
  // `compress_above_bytes` and `compressor` (by default the log's own, for its inserts) finds
  // that it pays.
  EncodedTrajectory EncodeTrajectory(const v1::Trajectory& t,
                                     AdaptiveCompressor* compressor = nullptr) const;
  // The same for a trajectory already serialised (as it arrived on the wire): kept as it is
  // unless compressing makes it smaller.
  EncodedTrajectory EncodeWire(absl::Cord serialized,
                               AdaptiveCompressor* compressor = nullptr) const;
  // The log's record of `item` in `table`, its trajectory `encoded` (for snapshots: the log
  // appends its inserts without copying the trajectory into a record).
  static void FillWalInsert(const std::string& table, const StoredItem& item,
                            const EncodedTrajectory& encoded, v1::WalInsert* out);
  static absl::StatusOr<std::shared_ptr<v1::Trajectory>> DecodeTrajectory(const v1::WalInsert& in);

 private:
  explicit DurableStore(DurabilityOptions options)
      : options_(std::move(options)), fsync_(options_.fsync), interval_ms_(options_.interval_ms) {}
  absl::Status Recover();
  // WriteSnapshot's work: a new segment, then the snapshot, then what it makes outdated goes.
  // `covered`: the new segment's index.
  absl::Status SnapshotNow(const std::function<v1::ReplaySnapshot()>& capture, uint64_t* covered);
  // The log failed with `error`: records from the last durable one on are lost (see Resume).
  void FailLocked(absl::Status error);
  bool LostLocked(uint64_t lsn) const;
  // Adds `problem` to recovered_.problems (and data_lost) and logs it as an error.
  void Report(const std::string& problem, bool data_lost);
  // Loads the newest whole snapshot of `snapshots` (checked, ascending), else snapshot.pb;
  // sets each damaged one aside and reports it. Returns the file's name, empty for none.
  std::string LoadNewestGoodSnapshot(const std::vector<uint64_t>& snapshots);
  // Reports a segment missing from `first` (the snapshot's next_segment, 0 without one) to the
  // last of `segments`, and a newest snapshot that is missing.
  void CheckLog(const std::vector<uint64_t>& segments, uint64_t first, const std::string& used,
                bool had_snapshots);
  // Reads the records of `segments` from `first` on; cuts a torn tail or padding off.
  absl::Status ReadLog(const std::vector<uint64_t>& segments, uint64_t first);
  // After snapshot-<newest>.pb is durable: deletes the snapshots older than the one before it,
  // and the segments that one does not need.
  void DropOutdated(uint64_t newest);
  // Waits for a commit in progress, then rolls to the next segment (`first`: segment 0).
  absl::Status OpenSegmentLocked(std::unique_lock<std::mutex>& lock, bool first);
  // Writes every record up to `lsn` (from the staging buffer) and, with `sync`, makes it
  // durable: concurrent callers share one write and one fdatasync.
  absl::Status CommitTo(uint64_t lsn, bool sync = true);
  // Direct I/O: the writes (from the staging buffer) that put the file's bytes up to `end` on
  // the disk, beginning with the block that holds the first byte not yet written; a partial
  // last block is copied into tail_block_ and padded with zeros. Sets `*offset`.
  std::vector<iovec> StagedWritesLocked(uint64_t end, off_t* offset);
  // Writes the staged bytes up to `end` now, under the lock (no commit may be writing).
  bool WriteStagedLocked(uint64_t end);
  // Drops the staged blocks already written (all but the partial one), making room.
  void CompactStageLocked();
  // Waits until a record of up to `needed` bytes fits in the staging buffer: drops the blocks
  // already written (after a commit's write in flight), or writes those not yet written.
  void RoomLocked(std::unique_lock<std::mutex>& lock, size_t needed);
  // Copies `pieces` (one record, after RoomLocked) into the staging buffer; a record larger
  // than the buffer is written block by block as it fills. With `checksum` (the record fits;
  // its header, pieces[0], lacks the CRC), the CRC is computed over the copy and put in.
  bool StageLocked(const std::vector<std::string_view>& pieces, bool checksum);
  // Opens the segment at `path` for direct I/O (allocating the stage the first time); -1, said
  // once in the log, where the file system does not take it.
  int OpenDirectLocked(const std::string& path);
  size_t StageCapacity() const;
  size_t StageRoom() const;  // bytes the staging buffer can take without dropping or writing
  // The log is read again only by recovery. The background thread drops its synced pages from
  // the page cache (every interval_ms, once kDropBytes more are synced: each call drains the
  // kernel's per-CPU page lists), so appends write into pages the kernel has just freed rather
  // than taking new ones (on this machine a page touched for the first time costs ~10x a
  // copy), and the log does not crowd out the pages others use. Off the commit path.
  void DropSyncedPagesLocked(std::unique_lock<std::mutex>& lock);
  // Appends `record` with `tail` and then `body` after its serialised bytes (the record's
  // payload is all three); returns its LSN, 0 after an error.
  uint64_t Append(v1::WalRecord& record, std::string_view tail = {},
                  const absl::Cord* body = nullptr);
  static void FillWalInsertFields(const std::string& table, const StoredItem& item, bool compressed,
                                  v1::WalInsert* out);
  void SyncLoop();

  const DurabilityOptions options_;
  std::atomic<FsyncPolicy> fsync_;
  std::atomic<int> interval_ms_;
  RecoveredState recovered_;
  mutable AdaptiveCompressor compressor_;  // the log's inserts
  mutable std::mutex mu_;
  int fd_ = -1;
  uint64_t segment_ = 0;
  uint64_t lsn_ = 0;
  uint64_t synced_lsn_ = 0;
  bool syncing_ = false;             // a commit is writing or syncing (outside the lock)
  bool writing_ = false;             // a commit or flush is writing (outside the lock)
  std::condition_variable sync_cv_;  // a commit ended
  uint64_t generation_ = 0;          // segments opened (StartJob reuses index 0)
  uint64_t segment_bytes_ = 0;       // bytes appended to the current segment
  uint64_t synced_bytes_ = 0;        // of which synced
  uint64_t dropped_to_ = 0;          // and dropped from the page cache
  uint64_t written_lsn_ = 0;         // the last record written (from the stage, with direct I/O)
  // Direct I/O (see the top of this file): the staging buffer holds the file's bytes from
  // stage_base_ (block-aligned) to staged_to_; those before written_to_ are on the disk.
  std::atomic<bool> direct_{false};  // set under the lock; read without it by direct_io()
  bool told_no_direct_ = false;      // logged once that the file system does not take it
  struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, FreeDeleter> stage_;
  std::unique_ptr<char, FreeDeleter> tail_block_;
  uint64_t stage_base_ = 0;
  uint64_t staged_to_ = 0;
  uint64_t written_to_ = 0;
  absl::Status error_;
  std::atomic<int64_t> failures_{0};
  // LSN ranges [from, to] of records appended while the log was failing (the newest open-ended
  // until it resumes); at most kMaxLostRanges, the oldest forgotten.
  static constexpr size_t kMaxLostRanges = 64;
  std::vector<std::pair<uint64_t, uint64_t>> lost_;
  std::atomic<int64_t> records_since_snapshot_{0};
  std::atomic<int64_t> bytes_written_{0};
  int64_t damaged_files_ = 0;  // set by Recover
  std::thread sync_thread_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
};

// Reads every record of one segment file; stops at (and reports) a torn or corrupt record.
struct SegmentRead {
  std::vector<v1::WalRecord> records;
  int64_t good_bytes = 0;
  int64_t file_bytes = 0;
  // Every byte after good_bytes is zero: never written (the padding of a direct I/O block), not
  // a torn record.
  bool zero_tail = false;
};
absl::StatusOr<SegmentRead> ReadSegment(const std::string& path);

}  // namespace rally
