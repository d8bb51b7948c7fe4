#include "services/replay/durable_store.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "common/util/crc32c.h"
#include "common/util/zstd.h"

namespace rally {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// An empty directory for one test, removed when the test binary exits.
std::string FreshDir(const std::string& name) {
  struct Made {
    std::vector<fs::path> dirs;
    ~Made() {
      std::error_code ec;
      for (const fs::path& d : dirs) fs::remove_all(d, ec);
    }
  };
  static Made made;
  fs::path d = fs::temp_directory_path() / ("rally-store-" + std::to_string(getpid()) + "-" + name);
  fs::remove_all(d);
  made.dirs.push_back(d);
  return d.string();
}

std::shared_ptr<const v1::Trajectory> Item(uint64_t seq, size_t payload = 10) {
  auto t = std::make_shared<v1::Trajectory>();
  t->set_actor_id("a");
  t->set_sequence(seq);
  t->set_task_id(std::string(payload, 'p'));
  return t;
}

std::unique_ptr<Table> QueueTable() {
  TableOptions o;
  o.max_size = 100;
  o.rate_limiter = RateLimiterOptions::Queue(100);
  return std::move(*Table::Create(o));
}

// A store over `dir` that started a fresh job, and a queue table that logs to it.
struct LoggedTable {
  std::unique_ptr<DurableStore> store;
  std::unique_ptr<Table> table;  // destroyed first: it points at the store
};

// A store opened with `options` that started a fresh job.
std::unique_ptr<DurableStore> StartedStore(const DurabilityOptions& options) {
  auto store = DurableStore::Open(options);
  if (!store.ok() || !(*store)->StartJob(v1::WalJob()).ok()) {
    ADD_FAILURE() << "cannot start a log in " << options.dir;
    std::abort();
  }
  return std::move(*store);
}

LoggedTable StartLogged(const std::string& dir) {
  LoggedTable out{StartedStore({dir}), QueueTable()};
  out.table->set_observer(out.store.get());
  return out;
}

// Bytes of `path` held in the page cache.
size_t CachedBytes(const std::string& path) {
  const size_t size = fs::file_size(path);
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0 || size == 0) return 0;
  void* map = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return 0;
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident((size + page - 1) / page);
  size_t cached = 0;
  if (mincore(map, size, resident.data()) == 0) {
    for (unsigned char r : resident) cached += (r & 1) ? page : 0;
  }
  munmap(map, size);
  return cached;
}

// An item of 256 KB of random token ids: the log cannot compress it.
std::shared_ptr<const v1::Trajectory> RandomItem(uint64_t seq, std::mt19937& rng) {
  auto t = std::make_shared<v1::Trajectory>();
  t->set_actor_id("a");
  t->set_sequence(seq);
  v1::Turn* turn = t->add_turns();
  for (int k = 0; k < 65536; ++k) turn->add_observation_tokens(static_cast<uint32_t>(rng()));
  return t;
}

// `n` random items appended and each committed as the replay does before acknowledging;
// returns the last LSN.
uint64_t AppendRandomItems(DurableStore& store, int n, bool commit) {
  std::mt19937 rng(5);
  uint64_t lsn = 0;
  for (int i = 0; i < n; ++i) {
    const auto seq = static_cast<uint64_t>(i + 1);
    lsn = store.OnInsert("t", StoredItem{.key = seq, .trajectory = RandomItem(seq, rng)}, nullptr);
    if (commit && !store.SyncTo(lsn).ok()) ADD_FAILURE() << "commit of record " << lsn;
  }
  return lsn;
}

TEST(DurableStore, TheLogCompressesLargeItemsOnlyWhenTheyShrink) {
  auto store = DurableStore::Open({FreshDir("encode")});  // compresses above 4 KB
  ASSERT_TRUE(store.ok());
  auto text = Item(1, 30000);  // 30 KB of one letter
  EncodedTrajectory e = (*store)->EncodeTrajectory(*text);
  EXPECT_TRUE(e.compressed);
  EXPECT_LT(e.bytes.size(), 3000u);
  v1::WalInsert logged;
  DurableStore::FillWalInsert("t", StoredItem{.key = 1, .trajectory = text}, e, &logged);
  auto back = DurableStore::DecodeTrajectory(logged);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)->SerializeAsString(), text->SerializeAsString());
  std::mt19937 rng(9);
  auto noise = RandomItem(2, rng);
  EncodedTrajectory plain = (*store)->EncodeTrajectory(*noise);
  EXPECT_FALSE(plain.compressed);
  EXPECT_EQ(std::string(plain.bytes), noise->SerializeAsString());
  EXPECT_FALSE((*store)->EncodeTrajectory(*Item(3, 10)).compressed);  // small: left alone
}

TEST(DurableStore, SyncedLogPagesLeaveThePageCache) {
  struct statfs fsinfo {};
  if (statfs(fs::temp_directory_path().c_str(), &fsinfo) == 0 && fsinfo.f_type == TMPFS_MAGIC) {
    GTEST_SKIP() << "the temporary directory is tmpfs: its pages are the files themselves";
  }
  // Unsynced pages stay cached (fsync = never relies on the kernel holding them): the
  // measurement sees them.
  const std::string never = FreshDir("pages-never");
  {
    auto store = StartedStore({.dir = never, .fsync = FsyncPolicy::kNever, .interval_ms = 10});
    AppendRandomItems(*store, 64, /*commit=*/false);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_GE(CachedBytes(never + "/wal-0.log"), size_t{15} << 20);
  }
  // Synced ones are dropped by the background thread (every interval_ms, once 8 MiB more are
  // synced), and a segment that rolls leaves entirely. (fsync = every_batch writes around the
  // page cache altogether, with direct I/O.)
  const std::string dir = FreshDir("pages");
  auto store = StartedStore({.dir = dir, .fsync = FsyncPolicy::kInterval, .interval_ms = 10});
  AppendRandomItems(*store, 128, /*commit=*/true);
  const std::string first = dir + "/wal-0.log";
  ASSERT_GE(fs::file_size(first), size_t{32} << 20);
  // What is left is the part synced since the last drop (under 8 MiB), plus a large folio
  // that straddles the end of the range dropped (the kernel keeps those whole).
  const size_t left = size_t{10} << 20;
  size_t cached = CachedBytes(first);
  for (int i = 0; i < 250 && cached > left; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    cached = CachedBytes(first);
  }
  EXPECT_LE(cached, left) << "of " << fs::file_size(first) << " bytes";
  AppendRandomItems(*store, 4, /*commit=*/true);
  ASSERT_TRUE(store->ContinueJob().ok());  // rolls to wal-1.log
  EXPECT_EQ(CachedBytes(first), 0u);
  EXPECT_TRUE(store->health().ok());
}

// Whether `dir`'s file system takes direct I/O (tmpfs does not).
bool TakesDirectIo(const std::string& dir) {
  const std::string probe = dir + ".probe";
  const int fd = open(probe.c_str(), O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
  if (fd >= 0) close(fd);
  unlink(probe.c_str());
  return fd >= 0;
}

TEST(DurableStore, EveryBatchWritesWithDirectIoAndEachCommitReachesTheFile) {
  const std::string dir = FreshDir("direct");
  if (!TakesDirectIo(dir)) GTEST_SKIP() << "no direct I/O in " << fs::temp_directory_path();
  // A 16 KiB stage: small records share it, a 256 KB one streams through it.
  auto store = StartedStore({.dir = dir, .stage_bytes = 16 << 10});
  ASSERT_TRUE(store->direct_io());
  const std::string segment = dir + "/wal-0.log";
  std::mt19937 rng(3);
  uint64_t lsn = 0;
  size_t records = 1;  // the job
  // Records not yet committed that fill the stage are written to make room.
  for (uint64_t i = 1; i <= 20; ++i) {
    lsn = store->OnInsert("t", StoredItem{.key = i, .trajectory = Item(i, 2000)}, nullptr);
    ++records;
  }
  ASSERT_TRUE(store->SyncTo(lsn).ok());
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 5; ++i) {
      const auto seq = static_cast<uint64_t>(10 * round + i + 1);
      lsn = store->OnInsert("t", StoredItem{.key = seq, .trajectory = Item(seq, 100 + 900 * i)},
                            nullptr);
      ++records;
    }
    lsn = store->OnInsert("t", StoredItem{.key = 99, .trajectory = RandomItem(99, rng)}, nullptr);
    ++records;
    if (round % 2 == 0) {
      ASSERT_TRUE(store->SyncTo(lsn).ok());
    } else {
      // A sample's record is flushed, not synced, before its reply.
      lsn = store->OnSample("t", {1, 2});
      ++records;
      ASSERT_TRUE(store->Flush().ok());
    }
    // Everything so far is in the file, whole blocks of it, the last padded with zeros.
    auto read = ReadSegment(segment);
    ASSERT_TRUE(read.ok()) << read.status();
    ASSERT_EQ(read->records.size(), records) << "round " << round;
    EXPECT_EQ(read->records.back().lsn(), lsn);
    EXPECT_EQ(read->file_bytes % 4096, 0);
    EXPECT_TRUE(read->zero_tail || read->good_bytes == read->file_bytes);
  }
  // A roll cuts the segment to its length.
  ASSERT_TRUE(store->ContinueJob().ok());
  auto first = ReadSegment(segment);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->good_bytes, first->file_bytes);
  EXPECT_EQ(first->records.size(), records);
  store->OnDelete("t", 1);
  store.reset();
  EXPECT_NE(fs::file_size(dir + "/wal-1.log") % 4096, 0u);  // cut to its length on close
  auto reopened = DurableStore::Open({dir});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_FALSE((*reopened)->recovered().torn_tail);
  ASSERT_EQ((*reopened)->recovered().records.size(), records + 1);
  EXPECT_TRUE((*reopened)->recovered().records.back().has_delete_());
  auto big = DurableStore::DecodeTrajectory((*reopened)->recovered().records[26].insert());
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ((*big)->turns(0).observation_tokens_size(), 65536);
}

// An item of random token ids (the log cannot compress it), 12 B to 40 KB, made from its key.
std::shared_ptr<const v1::Trajectory> KeyedItem(uint64_t key) {
  std::mt19937 rng(static_cast<uint32_t>(key));
  auto t = std::make_shared<v1::Trajectory>();
  t->set_sequence(key);
  v1::Turn* turn = t->add_turns();
  for (uint64_t n = ((key * 7919) % 40000) / 4 + 1; n > 0; --n) {
    turn->add_observation_tokens(static_cast<uint32_t>(rng()));
  }
  return t;
}

TEST(DurableStore, ConcurrentAppendsCommitsFlushesAndRollsKeepEveryRecordInOrder) {
  const std::string dir = FreshDir("concurrent");
  if (!TakesDirectIo(dir)) GTEST_SKIP() << "no direct I/O in " << fs::temp_directory_path();
  // A 16 KiB stage: appends land while commits and flushes write outside the lock, records
  // larger than the stage stream through it, and the log rolls meanwhile.
  auto store = StartedStore({.dir = dir, .interval_ms = 5, .stage_bytes = 16 << 10});
  ASSERT_TRUE(store->direct_io());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 150;
  std::vector<std::thread> threads;
  for (int w = 0; w < kThreads; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937 rng(100 + w);
      for (int i = 0; i < kPerThread; ++i) {
        const auto key = static_cast<uint64_t>(w * kPerThread + i + 1);
        const uint64_t lsn =
            store->OnInsert("t", StoredItem{.key = key, .trajectory = KeyedItem(key)}, nullptr);
        ASSERT_GT(lsn, 0u);
        if (rng() % 3 == 0) {
          ASSERT_TRUE(store->SyncTo(lsn).ok());
        } else if (rng() % 2 == 0) {
          ASSERT_TRUE(store->Flush().ok());
        }
        if (w == 0 && i % 50 == 25) ASSERT_TRUE(store->ContinueJob().ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(store->health().ok()) << store->health();
  store.reset();
  auto reopened = DurableStore::Open({dir});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  const RecoveredState& rec = (*reopened)->recovered();
  EXPECT_FALSE(rec.torn_tail);
  ASSERT_EQ(rec.records.size(), size_t{kThreads * kPerThread + 1});
  std::vector<bool> seen(kThreads * kPerThread + 1);
  for (size_t i = 0; i < rec.records.size(); ++i) {
    EXPECT_EQ(rec.records[i].lsn(), i + 1);
    if (i == 0) continue;
    const uint64_t key = rec.records[i].insert().key();
    ASSERT_LT(key, seen.size());
    EXPECT_FALSE(seen[key]) << "key " << key << " twice";
    seen[key] = true;
    auto t = DurableStore::DecodeTrajectory(rec.records[i].insert());
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ((*t)->SerializeAsString(), KeyedItem(key)->SerializeAsString()) << "key " << key;
  }
}

// Runs `body` in a child process (its result is the child's exit code; it may also kill
// itself) with a 16 KiB-stage store over `dir` and no background flush; returns the child's
// wait status.
int InChild(const std::string& dir, const std::function<int(DurableStore&)>& body) {
  const pid_t child = fork();
  if (child == 0) {
    auto store = StartedStore({.dir = dir, .interval_ms = 1 << 30, .stage_bytes = 16 << 10});
    _exit(store->direct_io() ? body(*store) : 3);
  }
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child) ADD_FAILURE() << "no child process";
  return status;
}

TEST(DurableStore, WhatWasCommittedOrFlushedSurvivesKill9AndThePaddingIsCut) {
  const std::string dir = FreshDir("killed");
  if (!TakesDirectIo(dir)) GTEST_SKIP() << "no direct I/O in " << fs::temp_directory_path();
  // A child process logs, commits inserts, flushes a sample's record, stages one more record,
  // and is killed. (No background flush: what is only staged must stay so until the kill.)
  const int status = InChild(dir, [](DurableStore& store) {
    std::mt19937 rng(4);
    uint64_t lsn = 0;
    for (uint64_t i = 1; i <= 3; ++i) {
      lsn = store.OnInsert("t", StoredItem{.key = i, .trajectory = RandomItem(i, rng)}, nullptr);
    }
    if (!store.SyncTo(lsn).ok()) return 4;
    store.OnSample("t", {1, 2, 3});
    if (!store.Flush().ok()) return 5;
    store.OnDelete("t", 2);  // staged only: lost with the process
    raise(SIGKILL);
    return 6;
  });
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited with " << WEXITSTATUS(status);
  const std::string segment = dir + "/wal-0.log";
  const auto padded = fs::file_size(segment);
  EXPECT_EQ(padded % 4096, 0u);
  auto store = DurableStore::Open({dir});
  ASSERT_TRUE(store.ok()) << store.status();
  const RecoveredState& rec = (*store)->recovered();
  EXPECT_FALSE(rec.torn_tail);        // zeros, not a torn record
  ASSERT_EQ(rec.records.size(), 5u);  // job, 3 inserts, the sample
  EXPECT_EQ(rec.records[4].sample().keys_size(), 3);
  EXPECT_LT(fs::file_size(segment), padded);  // cut to the last record
  EXPECT_NE(fs::file_size(segment) % 4096, 0u);
}

TEST(DurableStore, AWriteTheFileSystemRefusesFailsTheLogWithItsCause) {
  const std::string dir = FreshDir("refused");
  if (!TakesDirectIo(dir)) GTEST_SKIP() << "no direct I/O in " << fs::temp_directory_path();
  // A child process whose files may not grow past 64 KiB: the commit that crosses it fails,
  // and so does every commit and flush after it, with the cause.
  const int status = InChild(dir, [](DurableStore& store) {
    signal(SIGXFSZ, SIG_IGN);  // the write fails with EFBIG instead
    const rlimit limit{64 << 10, 64 << 10};
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) return 2;
    uint64_t lsn = 0;
    for (uint64_t i = 1; i <= 20; ++i) {
      const uint64_t appended =
          store.OnInsert("t", {.key = i, .trajectory = KeyedItem(i)}, nullptr);
      if (appended != 0) lsn = appended;  // 0: dropped, the log has failed
    }
    absl::Status s = store.SyncTo(lsn);
    if (s.ok() || s.message().find("File too large") == std::string::npos) return 4;
    // The job's record was synced before the failure: it stays durable; nothing after it is.
    if (store.Flush().ok() || !store.SyncTo(1).ok() || store.SyncTo(2).ok() ||
        store.health().ok() || !store.NotDurable(2)) {
      return 5;
    }
    return store.OnSample("t", {1}) == 0 ? 0 : 6;  // appends after the failure are dropped
  });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2: setrlimit, 3: no direct I/O, 4: the commit did not "
                                       "fail with EFBIG, 5: a later call passed, 6: an append "
                                       "after the failure was taken";
}

TEST(DurableStore, LogReplaysEveryMutationInOrder) {
  std::string dir = FreshDir("replay");
  {
    auto store = DurableStore::Open({dir});
    ASSERT_TRUE(store.ok()) << store.status();
    v1::WalJob job;
    job.set_job_id("j1");
    ASSERT_TRUE((*store)->StartJob(job).ok());
    auto table = QueueTable();
    table->set_observer(store->get());
    for (uint64_t i = 1; i <= 5; ++i) {
      ASSERT_TRUE(table->Insert(Item(i, i == 3 ? 20000 : 10), 1, Clock::now()).ok());
    }
    ASSERT_TRUE(table->Sample(2, Clock::now()).ok());
    ASSERT_TRUE((*store)->Sync().ok());
  }
  auto reopened = DurableStore::Open({dir});
  ASSERT_TRUE(reopened.ok());
  const RecoveredState& rec = (*reopened)->recovered();
  EXPECT_FALSE(rec.torn_tail);
  // job, 5 inserts, 1 sample
  ASSERT_EQ(rec.records.size(), 7u);
  EXPECT_TRUE(rec.records[0].has_job());
  EXPECT_TRUE(rec.records[3].insert().compressed());  // the 20 kB item went in compressed
  EXPECT_FALSE(rec.records[1].insert().compressed());
  auto big = DurableStore::DecodeTrajectory(rec.records[3].insert());
  ASSERT_TRUE(big.ok());
  EXPECT_EQ((*big)->task_id().size(), 20000u);
  EXPECT_EQ(rec.records[6].sample().keys_size(), 2);
  for (size_t i = 1; i < rec.records.size(); ++i) {
    EXPECT_EQ(rec.records[i].lsn(), rec.records[i - 1].lsn() + 1);
  }
}

TEST(DurableStore, AnItemsEncodedFormIsLoggedAsGiven) {
  // The replay hands over the zstd frame an actor sent; the log stores it without encoding the
  // trajectory again, and recovery decodes it to the same trajectory.
  std::string dir = FreshDir("encoded");
  auto big = Item(1, 30000);
  EncodedTrajectory frame{absl::Cord(ZstdCompress(big->SerializeAsString())), true};
  ASSERT_FALSE(frame.bytes.empty());
  {
    auto store = DurableStore::Open({dir});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->StartJob(v1::WalJob()).ok());
    auto table = QueueTable();
    table->set_observer(store->get());
    ASSERT_TRUE(table->Insert(big, 1, Clock::now(), &frame).ok());
    // A plain form of a large item stays plain: the log takes what it is given, here in three
    // pieces (as the network delivers a request) written without being joined first.
    const std::string serialized = Item(2, 30000)->SerializeAsString();
    EncodedTrajectory plain{absl::Cord(serialized.substr(0, 7)), false};
    plain.bytes.Append(serialized.substr(7, 20000));
    plain.bytes.Append(serialized.substr(20007));
    ASSERT_TRUE(table->Insert(Item(2, 30000), 1, Clock::now(), &plain).ok());
    ASSERT_TRUE((*store)->Sync().ok());
  }
  auto reopened = DurableStore::Open({dir});
  ASSERT_TRUE(reopened.ok());
  const auto& records = (*reopened)->recovered().records;
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[1].insert().trajectory(), std::string(frame.bytes));
  EXPECT_EQ(records[2].insert().trajectory(), Item(2, 30000)->SerializeAsString());
  EXPECT_TRUE(records[1].insert().compressed());
  EXPECT_FALSE(records[2].insert().compressed());
  for (int i : {1, 2}) {
    auto t = DurableStore::DecodeTrajectory(records[i].insert());
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ((*t)->sequence(), static_cast<uint64_t>(i));
    EXPECT_EQ((*t)->task_id(), std::string(30000, 'p'));
  }
}

TEST(DurableStore, ATornLastRecordIsCutOffAndAppendsContinue) {
  std::string dir = FreshDir("torn");
  {
    LoggedTable log = StartLogged(dir);
    for (uint64_t i = 1; i <= 3; ++i) {
      ASSERT_TRUE(log.table->Insert(Item(i), 1, Clock::now()).ok());
    }
  }
  std::string segment = (fs::path(dir) / "wal-0.log").string();
  auto full = fs::file_size(segment);
  // A crash in the middle of the fourth record's write: its header and half its payload.
  {
    auto store = DurableStore::Open({dir});
    ASSERT_TRUE(store.ok());
  }
  {
    std::ofstream out(segment, std::ios::binary | std::ios::app);
    const char partial[] = {40, 0, 0, 0, 1, 2, 3, 4, 8, 1, 18, 5};
    out.write(partial, sizeof(partial));
  }
  auto store = DurableStore::Open({dir});
  ASSERT_TRUE(store.ok()) << store.status();
  const RecoveredState& rec = (*store)->recovered();
  EXPECT_TRUE(rec.torn_tail);
  EXPECT_EQ(rec.torn_bytes, 12);
  EXPECT_EQ(rec.records.size(), 4u);        // job + 3 inserts
  EXPECT_EQ(fs::file_size(segment), full);  // the torn bytes were cut off
  // A corrupted checksum in the last record is caught the same way.
  {
    std::fstream f(segment, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(full) - 1);
    f.put('\x7f');
  }
  auto again = DurableStore::Open({dir});
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE((*again)->recovered().torn_tail);
  EXPECT_EQ((*again)->recovered().records.size(), 3u);
}

TEST(DurableStore, SnapshotCoversOlderSegments) {
  std::string dir = FreshDir("snapshot");
  auto store = DurableStore::Open({dir});
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->StartJob(v1::WalJob()).ok());
  auto table = QueueTable();
  table->set_observer(store->get());
  const auto capture = [&] {
    v1::ReplaySnapshot s;
    s.mutable_job()->set_job_id("j");
    s.add_tables()->set_last_lsn(table->Snapshot().last_lsn);
    return s;
  };
  ASSERT_TRUE(table->Insert(Item(1), 1, Clock::now()).ok());
  ASSERT_TRUE((*store)->WriteSnapshot(capture).ok());
  // The first snapshot has no older one to fall back to: the whole log stays.
  EXPECT_TRUE(fs::exists(fs::path(dir) / "wal-0.log"));
  ASSERT_TRUE(table->Insert(Item(2), 1, Clock::now()).ok());
  ASSERT_TRUE((*store)->WriteSnapshot(capture).ok());
  // The second one's fallback is the first, which needs the log from wal-1.log on.
  EXPECT_FALSE(fs::exists(fs::path(dir) / "wal-0.log"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "wal-1.log"));
  ASSERT_TRUE(table->Insert(Item(3), 1, Clock::now()).ok());
  ASSERT_TRUE((*store)->Sync().ok());
  auto reopened = DurableStore::Open({dir});
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*reopened)->recovered().snapshot.job().job_id(), "j");
  EXPECT_EQ((*reopened)->recovered().snapshot.next_segment(), 2u);
  ASSERT_EQ((*reopened)->recovered().records.size(), 1u);  // only the insert after the snapshot
  EXPECT_EQ((*reopened)->recovered().records[0].insert().key(), 3u);
  EXPECT_TRUE((*reopened)->recovered().problems.empty());
}

TEST(DurableStore, SegmentsWrittenBeforeCrc32cAreStillRead) {
  // A segment as the log wrote it before its header and CRC-32C: records from the first byte,
  // each checked with zlib's CRC-32. Recovery reads it, and new records go to a new segment.
  std::string dir = FreshDir("legacy");
  fs::create_directories(dir);
  {
    std::ofstream out(fs::path(dir) / "wal-0.log", std::ios::binary);
    for (uint64_t lsn = 1; lsn <= 2; ++lsn) {
      v1::WalRecord r;
      r.set_lsn(lsn);
      if (lsn == 1) {
        r.mutable_job()->set_job_id("old");
      } else {
        DurableStore::FillWalInsert("selfplay", StoredItem{.key = 1, .trajectory = Item(1)},
                                    {absl::Cord(Item(1)->SerializeAsString()), false},
                                    r.mutable_insert());
      }
      const std::string payload = r.SerializeAsString();
      const uint32_t header[2] = {
          static_cast<uint32_t>(payload.size()),
          static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(payload.data()),
                                      static_cast<uInt>(payload.size())))};
      out.write(reinterpret_cast<const char*>(header), sizeof(header));  // little-endian host
      out << payload;
    }
  }
  {
    auto store = DurableStore::Open({dir});
    ASSERT_TRUE(store.ok()) << store.status();
    const RecoveredState& rec = (*store)->recovered();
    EXPECT_FALSE(rec.torn_tail);
    ASSERT_EQ(rec.records.size(), 2u);
    EXPECT_EQ(rec.records[0].job().job_id(), "old");
    auto t = DurableStore::DecodeTrajectory(rec.records[1].insert());
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ((*t)->sequence(), 1u);
    ASSERT_TRUE((*store)->ContinueJob().ok());
    auto table = QueueTable();
    table->set_observer(store->get());
    ASSERT_TRUE(table->Insert(Item(2), 1, Clock::now()).ok());
  }
  auto reopened = DurableStore::Open({dir});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  ASSERT_EQ((*reopened)->recovered().records.size(), 3u);
  EXPECT_EQ((*reopened)->recovered().records[2].lsn(), 3u);
  EXPECT_FALSE((*reopened)->recovered().torn_tail);
}

TEST(DurableStore, ASegmentThatCannotBeCreatedLeavesAppendsInTheCurrentOne) {
  // The next segment's temporary file cannot be created (a directory stands in its way): the
  // snapshot fails, and the records after it go on into the current segment and are recovered.
  std::string dir = FreshDir("nosegment");
  {
    LoggedTable log = StartLogged(dir);
    fs::create_directories(fs::path(dir) / "wal-1.log.tmp");
    ASSERT_TRUE(log.table->Insert(Item(1), 1, Clock::now()).ok());
    absl::Status s = log.store->WriteSnapshot([] { return v1::ReplaySnapshot(); });
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("wal-1.log"), std::string::npos) << s;
    EXPECT_FALSE(fs::exists(fs::path(dir) / "wal-1.log"));
    EXPECT_FALSE(fs::exists(fs::path(dir) / "snapshot.pb"));
    EXPECT_FALSE(fs::exists(fs::path(dir) / "snapshot-1.pb"));
    ASSERT_TRUE(log.table->Insert(Item(2), 1, Clock::now()).ok());
    ASSERT_TRUE(log.store->Sync().ok());
    EXPECT_TRUE(log.store->health().ok());
  }
  auto reopened = DurableStore::Open({dir});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  ASSERT_EQ((*reopened)->recovered().records.size(), 3u);  // job + both inserts
  EXPECT_FALSE((*reopened)->recovered().torn_tail);
}

TEST(DurableStore, DamageBeforeTheLastRecordIsDataLossAndLeavesTheBytes) {
  std::string dir = FreshDir("damage");
  {
    LoggedTable log = StartLogged(dir);
    ASSERT_TRUE(log.table->Insert(Item(1), 1, Clock::now()).ok());
    ASSERT_TRUE(log.store->ContinueJob().ok());  // a second segment: wal-0.log is not the last
    ASSERT_TRUE(log.table->Insert(Item(2), 1, Clock::now()).ok());
  }
  const fs::path first = fs::path(dir) / "wal-0.log";
  const auto size = fs::file_size(first);
  {
    std::fstream f(first, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(size) - 3);
    f.put('\x01');
  }
  auto reopened = DurableStore::Open({dir});
  ASSERT_FALSE(reopened.ok());
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(reopened.status().message().find("wal-0.log is corrupt before its end"),
            std::string::npos)
      << reopened.status();
  EXPECT_EQ(fs::file_size(first), size);  // nothing cut off

  // A damaged header is corruption too, not a torn record to cut off.
  std::string dir2 = FreshDir("header");
  StartLogged(dir2);
  const fs::path only = fs::path(dir2) / "wal-0.log";
  const auto bytes = fs::file_size(only);
  {
    std::fstream f(only, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(1);
    f.put('a');  // "RaLLYWL2"
  }
  auto damaged = DurableStore::Open({dir2});
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(damaged.status().message().find("neither the segment header nor a record"),
            std::string::npos)
      << damaged.status();
  EXPECT_EQ(fs::file_size(only), bytes);
}

// A snapshot of `table` as the replay captures one: its items and the last LSN they include.
v1::ReplaySnapshot SnapshotOf(const Table& table) {
  v1::ReplaySnapshot s;
  s.mutable_job()->set_job_id("j");
  const Table::State state = table.Snapshot();
  v1::TableSnapshot* ts = s.add_tables();
  ts->set_name("t");
  ts->set_last_lsn(state.last_lsn);
  for (const StoredItem& item : state.items) {
    DurableStore::FillWalInsert(
        "t", item, {absl::Cord(item.trajectory->SerializeAsString()), false}, ts->add_items());
  }
  return s;
}

// The keys a recovery brings back: the snapshot's items and the inserts logged after them,
// ascending.
std::vector<uint64_t> RecoveredKeys(const RecoveredState& rec) {
  std::vector<uint64_t> keys;
  uint64_t covered = 0;
  for (const v1::TableSnapshot& t : rec.snapshot.tables()) {
    covered = t.last_lsn();
    for (const v1::WalInsert& item : t.items()) keys.push_back(item.key());
  }
  for (const v1::WalRecord& r : rec.records) {
    if (r.has_insert() && r.lsn() > covered) keys.push_back(r.insert().key());
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

std::vector<uint64_t> KeysUpTo(uint64_t n) {
  std::vector<uint64_t> keys(n);
  for (uint64_t i = 0; i < n; ++i) keys[i] = i + 1;
  return keys;
}

// Thirty items logged in `dir`, a snapshot after the 10th and the 20th: snapshot-1.pb (keys
// 1-10), snapshot-2.pb (keys 1-20), wal-1.log (keys 11-20) and wal-2.log (keys 21-30); wal-0.log
// went once the second snapshot was durable. The job record is LSN 1, key k's insert LSN k + 1.
void LogThirtyItemsAndTwoSnapshots(const std::string& dir) {
  LoggedTable log = StartLogged(dir);
  for (uint64_t i = 1; i <= 30; ++i) {
    ASSERT_TRUE(log.table->Insert(Item(i), 1, Clock::now()).ok());
    if (i % 10 == 0 && i < 30) {
      ASSERT_TRUE(log.store->WriteSnapshot([&] { return SnapshotOf(*log.table); }).ok());
    }
  }
  ASSERT_TRUE(log.store->Sync().ok());
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

uint64_t LittleEndian(std::string_view bytes) {
  uint64_t v = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    v |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
  }
  return v;
}

bool AnyContains(const std::vector<std::string>& lines, const std::string& what) {
  return std::any_of(lines.begin(), lines.end(),
                     [&](const std::string& l) { return l.find(what) != std::string::npos; });
}

// Recovery fell back to snapshot-1.pb and the log from wal-1.log, and lost nothing.
void ExpectFellBackToTheFirstSnapshot(const DurableStore& store) {
  const RecoveredState& rec = store.recovered();
  EXPECT_EQ(rec.snapshot.next_segment(), 1u);
  ASSERT_EQ(rec.snapshot.tables_size(), 1);
  EXPECT_EQ(rec.snapshot.tables(0).items_size(), 10);
  ASSERT_EQ(rec.records.size(), 20u);  // keys 11-30
  EXPECT_EQ(rec.records.front().lsn(), 12u);
  EXPECT_EQ(rec.records.back().lsn(), 31u);
  EXPECT_EQ(RecoveredKeys(rec), KeysUpTo(30));
  EXPECT_EQ(store.last_lsn(), 31u);
  EXPECT_FALSE(rec.data_lost);
}

TEST(DurableStore, ASnapshotCarriesItsLengthAndChecksumAndTheOneBeforeStays) {
  std::string dir = FreshDir("snapshot-format");
  ASSERT_NO_FATAL_FAILURE(LogThirtyItemsAndTwoSnapshots(dir));
  const std::string bytes = ReadAll(fs::path(dir) / "snapshot-2.pb");
  ASSERT_GE(bytes.size(), 20u);
  EXPECT_EQ(bytes.substr(0, 8), "RALLYSN1");
  const std::string_view payload = std::string_view(bytes).substr(20);
  EXPECT_EQ(LittleEndian(std::string_view(bytes).substr(8, 8)), payload.size());
  EXPECT_EQ(LittleEndian(std::string_view(bytes).substr(16, 4)), Crc32c(0, payload));
  v1::ReplaySnapshot snapshot;
  ASSERT_TRUE(snapshot.ParseFromArray(payload.data(), static_cast<int>(payload.size())));
  EXPECT_EQ(snapshot.next_segment(), 2u);
  EXPECT_EQ(snapshot.tables(0).items_size(), 20);
  EXPECT_EQ(snapshot.tables(0).last_lsn(), 21u);
  // The one before is the fallback: it stays, and so does the log it needs.
  EXPECT_TRUE(fs::exists(fs::path(dir) / "snapshot-1.pb"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "wal-1.log"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "wal-0.log"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "snapshot.pb"));
}

TEST(DurableStore, AFlippedByteInTheNewestSnapshotFallsBackToThePreviousOneAndTheLog) {
  std::string dir = FreshDir("snapshot-flipped");
  ASSERT_NO_FATAL_FAILURE(LogThirtyItemsAndTwoSnapshots(dir));
  const fs::path newest = fs::path(dir) / "snapshot-2.pb";
  const auto size = fs::file_size(newest);
  {
    std::fstream f(newest, std::ios::binary | std::ios::in | std::ios::out);
    const auto at = static_cast<std::streamoff>(20 + (size - 20) / 2);
    f.seekg(at);
    const char c = static_cast<char>(f.get());
    f.seekp(at);
    f.put(static_cast<char>(c ^ 0x04));
  }
  auto store = DurableStore::Open({dir});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_NO_FATAL_FAILURE(ExpectFellBackToTheFirstSnapshot(**store));
  const RecoveredState& rec = (*store)->recovered();
  ASSERT_EQ(rec.problems.size(), 1u);
  EXPECT_NE(rec.problems[0].find("snapshot-2.pb: checksum mismatch"), std::string::npos)
      << rec.problems[0];
  EXPECT_NE(rec.problems[0].find("fell back to snapshot-1.pb"), std::string::npos)
      << rec.problems[0];
  EXPECT_EQ((*store)->damaged_files(), 1);
  // Kept for inspection, under a name recovery never reads as a snapshot.
  EXPECT_FALSE(fs::exists(newest));
  EXPECT_EQ(fs::file_size(fs::path(dir) / "snapshot-2.pb.damaged"), size);
}

TEST(DurableStore, ADeletedNewestSnapshotFallsBackToThePreviousOneAndTheLog) {
  std::string dir = FreshDir("snapshot-deleted");
  ASSERT_NO_FATAL_FAILURE(LogThirtyItemsAndTwoSnapshots(dir));
  fs::remove(fs::path(dir) / "snapshot-2.pb");
  auto store = DurableStore::Open({dir});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_NO_FATAL_FAILURE(ExpectFellBackToTheFirstSnapshot(**store));
  // wal-0.log goes only once a newer snapshot than snapshot-1.pb is durable: that one is gone.
  const RecoveredState& rec = (*store)->recovered();
  ASSERT_EQ(rec.problems.size(), 1u);
  EXPECT_NE(rec.problems[0].find("newer than snapshot-1.pb is missing"), std::string::npos)
      << rec.problems[0];
}

TEST(DurableStore, ATruncatedSnapshotOpensAndFallsBack) {
  std::string dir = FreshDir("snapshot-truncated");
  ASSERT_NO_FATAL_FAILURE(LogThirtyItemsAndTwoSnapshots(dir));
  fs::resize_file(fs::path(dir) / "snapshot-2.pb", 100);
  auto store = DurableStore::Open({dir});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_NO_FATAL_FAILURE(ExpectFellBackToTheFirstSnapshot(**store));
  const RecoveredState& rec = (*store)->recovered();
  ASSERT_EQ(rec.problems.size(), 1u);
  EXPECT_NE(rec.problems[0].find("snapshot-2.pb: truncated"), std::string::npos) << rec.problems[0];
  // The next start finds snapshot-1.pb and its log, and a damaged file already set aside.
  store->reset();
  auto again = DurableStore::Open({dir});
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_NO_FATAL_FAILURE(ExpectFellBackToTheFirstSnapshot(**again));
}

TEST(DurableStore, NoSnapshotAndNoFirstSegmentRecoversTheRestAndSaysDataWasLost) {
  std::string dir = FreshDir("snapshot-none");
  ASSERT_NO_FATAL_FAILURE(LogThirtyItemsAndTwoSnapshots(dir));
  fs::remove(fs::path(dir) / "snapshot-1.pb");
  fs::remove(fs::path(dir) / "snapshot-2.pb");
  auto store = DurableStore::Open({dir});
  ASSERT_TRUE(store.ok()) << store.status();
  const RecoveredState& rec = (*store)->recovered();
  EXPECT_TRUE(rec.data_lost);
  EXPECT_TRUE(AnyContains(rec.problems, "wal-0.log")) << rec.problems.size();
  EXPECT_EQ(rec.snapshot.tables_size(), 0);
  ASSERT_EQ(rec.records.size(), 20u);  // wal-1.log and wal-2.log: keys 11-30
  EXPECT_EQ(rec.records.front().lsn(), 12u);
  EXPECT_EQ(rec.records.front().insert().key(), 11u);
  EXPECT_EQ(rec.records.back().lsn(), 31u);
  // The log goes on after the highest segment, its LSNs after the last recovered.
  ASSERT_TRUE((*store)->ContinueJob().ok());
  EXPECT_EQ((*store)->OnDelete("t", 11), 32u);
  ASSERT_TRUE((*store)->Sync().ok());
  EXPECT_GT(fs::file_size(fs::path(dir) / "wal-3.log"), 8u);
}

TEST(DurableStore, EverySnapshotDamagedAndNoLogLeavesNothingButLoudlyAndTheLogGoesOn) {
  std::string dir = FreshDir("snapshot-all-damaged");
  ASSERT_NO_FATAL_FAILURE(LogThirtyItemsAndTwoSnapshots(dir));
  for (const char* name : {"snapshot-1.pb", "snapshot-2.pb"}) {
    std::ofstream(fs::path(dir) / name, std::ios::binary | std::ios::trunc) << "garbage";
  }
  fs::remove(fs::path(dir) / "wal-1.log");
  fs::remove(fs::path(dir) / "wal-2.log");
  auto store = DurableStore::Open({dir});
  ASSERT_TRUE(store.ok()) << store.status();
  const RecoveredState& rec = (*store)->recovered();
  EXPECT_TRUE(rec.data_lost);
  EXPECT_EQ(rec.records.size(), 0u);
  EXPECT_EQ(rec.snapshot.tables_size(), 0);
  EXPECT_EQ((*store)->damaged_files(), 2);
  EXPECT_TRUE(AnyContains(rec.problems, "snapshot-1.pb: truncated"));
  EXPECT_TRUE(AnyContains(rec.problems, "snapshot-2.pb: truncated"));
  EXPECT_GE(rec.problems.size(), 3u);  // and the log that is missing
  EXPECT_TRUE(fs::exists(fs::path(dir) / "snapshot-1.pb.damaged"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "snapshot-2.pb.damaged"));
  ASSERT_TRUE((*store)->ContinueJob().ok());
  EXPECT_EQ((*store)->OnDelete("t", 1), 1u);
  ASSERT_TRUE((*store)->Sync().ok());
  EXPECT_TRUE(fs::exists(fs::path(dir) / "wal-3.log"));  // after the highest index there was
}

TEST(DurableStore, SegmentsGoOnlyOnceASnapshotNewerThanTheirFallbackIsDurable) {
  std::string dir = FreshDir("snapshot-retention");
  ASSERT_NO_FATAL_FAILURE(LogThirtyItemsAndTwoSnapshots(dir));
  auto store = DurableStore::Open({dir});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->ContinueJob().ok());  // wal-3.log
  const v1::ReplaySnapshot all = [&] {
    v1::ReplaySnapshot s = (*store)->recovered().snapshot;
    for (const v1::WalRecord& r : (*store)->recovered().records) {
      *s.mutable_tables(0)->add_items() = r.insert();
    }
    s.mutable_tables(0)->set_last_lsn(31);
    return s;
  }();
  // A snapshot that cannot be written (a directory stands where its temporary file goes)
  // deletes nothing.
  fs::create_directories(fs::path(dir) / "snapshot-4.pb.tmp");
  EXPECT_FALSE((*store)->WriteSnapshot([&] { return all; }).ok());
  for (const char* name : {"snapshot-1.pb", "snapshot-2.pb", "wal-1.log", "wal-2.log"}) {
    EXPECT_TRUE(fs::exists(fs::path(dir) / name)) << name;
  }
  fs::remove(fs::path(dir) / "snapshot-4.pb.tmp");
  ASSERT_TRUE((*store)->WriteSnapshot([&] { return all; }).ok());  // snapshot-5.pb
  // Kept: snapshot-5.pb and its fallback snapshot-2.pb, with the log from wal-2.log on.
  EXPECT_TRUE(fs::exists(fs::path(dir) / "snapshot-5.pb"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "snapshot-2.pb"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "snapshot-1.pb"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "wal-1.log"));
  for (const char* name : {"wal-2.log", "wal-3.log", "wal-4.log", "wal-5.log"}) {
    EXPECT_TRUE(fs::exists(fs::path(dir) / name)) << name;
  }
  store->reset();
  auto reopened = DurableStore::Open({dir});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->recovered().snapshot.next_segment(), 5u);
  EXPECT_EQ(RecoveredKeys((*reopened)->recovered()), KeysUpTo(30));
  EXPECT_TRUE((*reopened)->recovered().problems.empty());
}

TEST(DurableStore, StartJobRefusesADirectoryThatHoldsDataAndDeletesNothing) {
  std::string dir = FreshDir("start-refused");
  {
    LoggedTable log = StartLogged(dir);
    ASSERT_TRUE(log.table->Insert(Item(1), 1, Clock::now()).ok());
    ASSERT_TRUE(log.table->Insert(Item(2), 1, Clock::now()).ok());
    ASSERT_TRUE(log.store->WriteSnapshot([&] { return SnapshotOf(*log.table); }).ok());
  }
  const auto log_bytes = fs::file_size(fs::path(dir) / "wal-0.log");
  {
    auto store = DurableStore::Open({dir});
    ASSERT_TRUE(store.ok()) << store.status();
    v1::WalJob other;
    other.set_job_id("other");
    absl::Status s = (*store)->StartJob(other);
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_NE(s.message().find(dir), std::string::npos) << s;
  }
  EXPECT_EQ(fs::file_size(fs::path(dir) / "wal-0.log"), log_bytes);
  EXPECT_TRUE(fs::exists(fs::path(dir) / "snapshot-1.pb"));
  auto reopened = DurableStore::Open({dir});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ(RecoveredKeys((*reopened)->recovered()), KeysUpTo(2));
  // A snapshot alone is data too.
  std::string lone = FreshDir("start-refused-snapshot");
  fs::create_directories(lone);
  v1::ReplaySnapshot old;
  old.mutable_job()->set_job_id("old");
  std::ofstream(fs::path(lone) / "snapshot.pb", std::ios::binary) << old.SerializeAsString();
  auto store = DurableStore::Open({lone});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->StartJob(v1::WalJob()).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(fs::exists(fs::path(lone) / "wal-0.log"));
}

TEST(DurableStore, ASnapshotFromBeforeTheChecksumIsRecoveredAndGoesOnceTwoNewerAreDurable) {
  // A directory as the replay left it before snapshots were checked: snapshot.pb (keys 1-5,
  // next_segment 1) and the log after it.
  std::string dir = FreshDir("snapshot-legacy");
  v1::ReplaySnapshot legacy;
  {
    LoggedTable log = StartLogged(dir);
    for (uint64_t i = 1; i <= 5; ++i) ASSERT_TRUE(log.table->Insert(Item(i), 1, Clock::now()).ok());
    legacy = SnapshotOf(*log.table);
    legacy.set_next_segment(1);
    ASSERT_TRUE(log.store->ContinueJob().ok());
    for (uint64_t i = 6; i <= 8; ++i) ASSERT_TRUE(log.table->Insert(Item(i), 1, Clock::now()).ok());
  }
  fs::remove(fs::path(dir) / "wal-0.log");
  std::ofstream(fs::path(dir) / "snapshot.pb", std::ios::binary) << legacy.SerializeAsString();
  auto store = DurableStore::Open({dir});
  ASSERT_TRUE(store.ok()) << store.status();
  const RecoveredState& rec = (*store)->recovered();
  EXPECT_TRUE(rec.problems.empty());
  EXPECT_FALSE(rec.data_lost);
  EXPECT_EQ(rec.snapshot.next_segment(), 1u);
  ASSERT_EQ(rec.records.size(), 3u);
  EXPECT_EQ(rec.records.front().lsn(), 7u);
  EXPECT_EQ(RecoveredKeys(rec), KeysUpTo(8));
  ASSERT_TRUE((*store)->ContinueJob().ok());  // wal-2.log
  const auto capture = [&] {
    v1::ReplaySnapshot s = legacy;
    s.mutable_tables(0)->set_last_lsn(9);
    return s;
  };
  ASSERT_TRUE((*store)->WriteSnapshot(capture).ok());  // snapshot-3.pb
  // The old snapshot is the new one's fallback until a second checked one is durable.
  EXPECT_TRUE(fs::exists(fs::path(dir) / "snapshot-3.pb"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "snapshot.pb"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "wal-1.log"));
  ASSERT_TRUE((*store)->WriteSnapshot(capture).ok());  // snapshot-4.pb
  EXPECT_FALSE(fs::exists(fs::path(dir) / "snapshot.pb"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "snapshot-3.pb"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "wal-1.log"));
  EXPECT_FALSE(fs::exists(fs::path(dir) / "wal-2.log"));
  EXPECT_TRUE(fs::exists(fs::path(dir) / "wal-3.log"));
}

// A tmpfs of `bytes` mounted on a fresh directory for one test (root only; `ok()` false where
// mounting is not allowed), unmounted when it goes.
class SmallVolume {
 public:
  SmallVolume(const std::string& name, size_t bytes) : dir_(FreshDir(name)) {
    fs::create_directories(dir_);
    const std::string options = "size=" + std::to_string(bytes);
    mounted_ = mount("tmpfs", dir_.c_str(), "tmpfs", 0, options.c_str()) == 0;
  }
  ~SmallVolume() {
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
  }
  bool ok() const { return mounted_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  bool mounted_ = false;
};

// Writes `bytes` of zeros to `path`; false when the volume has no room.
// An item of about `bytes` that does not compress.
std::shared_ptr<const v1::Trajectory> Incompressible(uint64_t seq, size_t bytes) {
  static std::mt19937 rng(11);
  auto t = std::make_shared<v1::Trajectory>();
  t->set_actor_id("a");
  t->set_sequence(seq);
  v1::Turn* turn = t->add_turns();
  for (size_t k = 0; k < bytes / 4; ++k) turn->add_observation_tokens(static_cast<uint32_t>(rng()));
  return t;
}

bool Fill(const std::string& path, size_t bytes) {
  std::ofstream out(path, std::ios::binary);
  const std::string block(4096, '\0');
  for (size_t n = 0; n < bytes; n += block.size()) out.write(block.data(), block.size());
  out.flush();
  return static_cast<bool>(out);
}

TEST(DurableStore, AFullDiskRefusesInsertsAndTheLogResumesOnceThereIsRoom) {
  // Before: on a full volume inserts were answered "stored but not durable" and kept, and once
  // space was back every insert still failed until a restart.
  SmallVolume volume("full", 4 << 20);
  if (!volume.ok()) GTEST_SKIP() << "cannot mount a tmpfs here (not root?)";
  const std::string dir = volume.dir() + "/log";
  const std::string filler = volume.dir() + "/filler";
  // Freeing it leaves room for the snapshot that resuming writes (as large as the log's items).
  ASSERT_TRUE(Fill(filler, 5 << 19));
  TableOptions o;
  o.max_size = 100000;
  o.rate_limiter = RateLimiterOptions::MinSize(1);
  LoggedTable log{StartedStore({dir}), std::move(*Table::Create(o))};
  log.table->set_observer(log.store.get());
  // Items of 16 KB, each committed before the next, until the volume is full.
  std::vector<uint64_t> acked;
  absl::Status refused;
  uint64_t seq = 0;
  while (refused.ok() && seq < 1000) {
    auto key = log.table->Insert(Incompressible(++seq, 16 << 10), 1, Clock::now());
    if (!key.ok()) {
      refused = key.status();
      break;
    }
    if (absl::Status s = log.store->SyncTo(log.store->last_lsn()); !s.ok()) {
      refused = s;
      ASSERT_TRUE(log.table->Withdraw(*key));
      break;
    }
    acked.push_back(*key);
  }
  ASSERT_FALSE(refused.ok()) << "the volume never filled";
  EXPECT_EQ(refused.code(), absl::StatusCode::kUnavailable) << refused;
  ASSERT_GT(acked.size(), 10u);
  // Not kept, and the log says why until it resumes; further inserts are refused at once.
  EXPECT_EQ(log.table->size(), static_cast<int64_t>(acked.size()));
  EXPECT_FALSE(log.store->health().ok());
  EXPECT_NE(log.store->health().message().find("No space left on device"), std::string::npos)
      << log.store->health();
  EXPECT_EQ(log.table->Insert(Item(++seq), 1, Clock::now()).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(log.store->failures(), 1);
  // Still no room: resuming fails and changes nothing.
  EXPECT_FALSE(log.store->Resume([&] { return SnapshotOf(*log.table); }).ok());
  EXPECT_FALSE(log.store->health().ok());

  // Room again: the log resumes without a restart, inserts are taken and made durable.
  fs::remove(filler);
  ASSERT_TRUE(log.store->Resume([&] { return SnapshotOf(*log.table); }).ok());
  EXPECT_TRUE(log.store->health().ok());
  for (int i = 0; i < 5; ++i) {
    auto key = log.table->Insert(Incompressible(++seq, 16 << 10), 1, Clock::now());
    ASSERT_TRUE(key.ok()) << key.status();
    ASSERT_TRUE(log.store->SyncTo(log.store->last_lsn()).ok());
    acked.push_back(*key);
  }
  // A restart recovers exactly the acknowledged items: none refused, none twice.
  log.table.reset();
  log.store.reset();
  auto reopened = DurableStore::Open({dir});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_TRUE((*reopened)->recovered().problems.empty());
  EXPECT_EQ(RecoveredKeys((*reopened)->recovered()), acked);
}

TEST(DurableStore, RecordsAppendedWhileTheLogFailedNeverBecomeDurable) {
  // A commit that fails leaves records appended but not synced: they stay not durable after
  // the log resumes, so their inserts are refused rather than acknowledged late.
  SmallVolume volume("tiny", 64 << 10);
  if (!volume.ok()) GTEST_SKIP() << "cannot mount a tmpfs here (not root?)";
  const std::string tiny = volume.dir() + "/log";
  LoggedTable full{StartedStore({tiny}), QueueTable()};
  full.table->set_observer(full.store.get());
  ASSERT_TRUE(Fill(volume.dir() + "/filler", 16 << 10));
  ASSERT_TRUE(full.table->Insert(Item(1), 1, Clock::now()).ok());
  ASSERT_TRUE(full.store->SyncTo(full.store->last_lsn()).ok());
  const uint64_t kept = full.store->last_lsn();
  // Five items of 16 KB, appended without a commit: more than the volume has room for. Where
  // the log writes through the page cache the append that finds no room fails; with direct
  // I/O the records wait in its stage and the commit fails.
  uint64_t lost = 0;
  for (uint64_t i = 2; i <= 6; ++i) {
    if (full.table->Insert(Incompressible(i, 16 << 10), 1, Clock::now()).ok()) {
      lost = full.store->last_lsn();
    }
  }
  ASSERT_GT(lost, kept) << "no record was appended before the volume filled";
  EXPECT_FALSE(full.store->SyncTo(lost).ok());
  ASSERT_FALSE(full.store->health().ok());
  EXPECT_TRUE(full.store->SyncTo(kept).ok());  // durable before the failure
  EXPECT_TRUE(full.store->NotDurable(lost));
  EXPECT_FALSE(full.store->NotDurable(kept));
  // The replay takes back the inserts whose records are not durable (each item knows its LSN).
  int withdrawn = 0;
  for (const StoredItem& item : full.table->Snapshot().items) {
    if (full.store->NotDurable(item.lsn)) withdrawn += full.table->Withdraw(item.key);
  }
  EXPECT_EQ(withdrawn, static_cast<int>(lost - kept));
  EXPECT_EQ(full.table->size(), 1);
  fs::remove(volume.dir() + "/filler");
  ASSERT_TRUE(full.store->Resume([&] { return SnapshotOf(*full.table); }).ok());
  EXPECT_FALSE(full.store->SyncTo(lost).ok()) << "a record from the failure became durable";
  EXPECT_TRUE(full.store->NotDurable(lost));
  ASSERT_TRUE(full.table->Insert(Item(500), 1, Clock::now()).ok());
  const uint64_t after = full.store->last_lsn();
  EXPECT_GT(after, lost);
  EXPECT_FALSE(full.store->NotDurable(after));
  EXPECT_TRUE(full.store->SyncTo(after).ok());
}

}  // namespace
}  // namespace rally
