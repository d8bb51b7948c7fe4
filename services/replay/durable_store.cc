#include "services/replay/durable_store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/net/proto_wire.h"
#include "common/util/crc32c.h"
#include "common/util/durable_file.h"
#include "common/util/log.h"
#include "common/util/zstd.h"

namespace rally {
namespace {

namespace fs = std::filesystem;

std::string SegmentName(uint64_t index) { return absl::StrCat("wal-", index, ".log"); }

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

void StoreU32(char* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

void PutU32(std::string& out, uint32_t v) {
  char bytes[4];
  StoreU32(bytes, v);
  out.append(bytes, 4);
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

// Segments written since the log moved to CRC-32C begin with this; older ones (records from
// the first byte, zlib's CRC-32) are still read.
constexpr std::string_view kSegmentMagic = "RALLYWL2";
// A synced segment leaves the page cache once at least this much more is synced (see
// DropSyncedPagesLocked).
constexpr uint64_t kDropBytes = 8 << 20;
// No record is longer: one holds at most one trajectory, and requests are capped at 64 MiB.
constexpr uint32_t kMaxRecordBytes = 128u << 20;
// Direct I/O writes whole blocks of this size from addresses aligned to it (any Linux file
// system's logical block size divides it).
constexpr uint64_t kBlock = 4096;

uint64_t BlockStart(uint64_t offset) { return offset & ~(kBlock - 1); }
// The staging buffer is aligned to a huge page, which the kernel may back it with.
constexpr size_t kHugePage = 2 << 20;

// The CRC-32 of a version-1 segment's record.
uint32_t LegacyCrc(std::string_view payload) {
  return static_cast<uint32_t>(
      crc32_z(0, reinterpret_cast<const Bytef*>(payload.data()), payload.size()));
}

// Writes every byte of `iov` at `offset` (pwritev), or at the file's position when `offset` is
// negative (writev), with as few calls as IOV_MAX allows. `direct`: the pieces are whole blocks
// of a file opened with O_DIRECT.
bool WriteIovecs(int fd, std::vector<iovec> iov, off_t offset, bool direct = false) {
  size_t first = 0;
  while (first < iov.size()) {
    const int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    ssize_t n = offset < 0 ? writev(fd, iov.data() + first, count)
                           : pwritev(fd, iov.data() + first, count, offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;  // nothing written and no error: do not spin
      return false;
    }
    if (offset >= 0) offset += n;
    // Skip what was written; a partial write leaves the rest of one piece.
    auto left = static_cast<size_t>(n);
    while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    // A direct write cut short mid-block goes on from that block's start (its pieces are whole
    // blocks), so that the next call reports why the first stopped instead of EINVAL.
    if (const auto part = static_cast<size_t>(offset % static_cast<off_t>(kBlock));
        direct && part > 0 && left >= part) {
      offset -= static_cast<off_t>(part);
      left -= part;
    }
    if (left > 0) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return true;
}

// Writes every byte of `pieces` (a record's header, its small fields and its trajectory in the
// pieces it arrived in) at the file's position.
bool WriteAll(int fd, const std::vector<std::string_view>& pieces) {
  std::vector<iovec> iov;
  iov.reserve(pieces.size());
  for (std::string_view p : pieces) {
    if (!p.empty()) iov.push_back({const_cast<char*>(p.data()), p.size()});
  }
  return WriteIovecs(fd, std::move(iov), -1);
}

// Cuts the file at `path` to `bytes`, durably: a cut that a power loss undid would bring back
// bytes that recovery had judged torn, in a segment that is no longer the last.
absl::Status CutTo(const std::string& path, int64_t bytes) {
  const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  const bool ok = fd >= 0 && ftruncate(fd, bytes) == 0 && fsync(fd) == 0;
  const absl::Status status = ok ? absl::OkStatus() : Errno("truncate " + path);
  if (fd >= 0) close(fd);
  return status;
}

// The index N of a file named `prefix`N`suffix` (N decimal digits only); nullopt otherwise.
std::optional<uint64_t> IndexIn(std::string_view name, std::string_view prefix,
                                std::string_view suffix) {
  if (name.size() <= prefix.size() + suffix.size() || name.substr(0, prefix.size()) != prefix ||
      name.substr(name.size() - suffix.size()) != suffix) {
    return std::nullopt;
  }
  const std::string_view digits =
      name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.size() > 19 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return std::stoull(std::string(digits));
}

// Indices of the files named `prefix`N`suffix` in `dir`, ascending.
std::vector<uint64_t> Indexed(const std::string& dir, std::string_view prefix,
                              std::string_view suffix) {
  std::vector<uint64_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (auto i = IndexIn(e.path().filename().string(), prefix, suffix)) out.push_back(*i);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Segment indices present in `dir`, ascending.
std::vector<uint64_t> Segments(const std::string& dir) { return Indexed(dir, "wal-", ".log"); }

// Checked snapshots: `snapshot-<next_segment>.pb`, the 8 bytes "RALLYSN1", the payload's length
// (u64) and CRC-32C (u32), little-endian, then the payload (a ReplaySnapshot).
constexpr std::string_view kSnapshotMagic = "RALLYSN1";
constexpr size_t kSnapshotHeaderBytes = 8 + 8 + 4;
// The one unchecked snapshot written before them (no header); read, never written.
constexpr char kLegacySnapshot[] = "snapshot.pb";
// What a file found damaged is renamed to end with (kept for inspection, never read again).
constexpr char kDamaged[] = ".damaged";

std::string SnapshotName(uint64_t next_segment) {
  return absl::StrCat("snapshot-", next_segment, ".pb");
}

// Next-segment indices of the checked snapshots in `dir`, ascending.
std::vector<uint64_t> Snapshots(const std::string& dir) { return Indexed(dir, "snapshot-", ".pb"); }

std::string EncodeSnapshot(const v1::ReplaySnapshot& snapshot) {
  const std::string payload = snapshot.SerializeAsString();
  std::string out(kSnapshotMagic);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((payload.size() >> (8 * i)) & 0xff));
  PutU32(out, Crc32c(0, payload));
  return out + payload;
}

std::string Hex(uint32_t v) { return absl::StrCat("0x", absl::Hex(v, absl::PadSpec::kZeroPad8)); }

// The snapshot `data` holds (checked: with the header; else the legacy form), or what is wrong
// with it, as a DATA_LOSS status whose message completes "<file>: ".
absl::StatusOr<v1::ReplaySnapshot> DecodeSnapshot(std::string_view data, bool checked) {
  v1::ReplaySnapshot snapshot;
  if (!checked) {
    if (!snapshot.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
      return absl::DataLossError(absl::StrCat("does not parse (", data.size(), " bytes)"));
    }
    return snapshot;
  }
  if (data.size() < kSnapshotHeaderBytes) {
    return absl::DataLossError(absl::StrCat("truncated (", data.size(), " bytes, shorter than the ",
                                            kSnapshotHeaderBytes, "-byte header)"));
  }
  if (data.substr(0, kSnapshotMagic.size()) != kSnapshotMagic) {
    return absl::DataLossError(absl::StrCat("missing its header (does not begin with \"",
                                            std::string(kSnapshotMagic), "\")"));
  }
  uint64_t length = 0;
  for (int i = 0; i < 8; ++i) {
    length |= static_cast<uint64_t>(static_cast<uint8_t>(data[kSnapshotMagic.size() + i]))
              << (8 * i);
  }
  const uint32_t stored = GetU32(data.data() + 16);
  const std::string_view payload = data.substr(kSnapshotHeaderBytes);
  if (payload.size() != length) {
    return absl::DataLossError(
        absl::StrCat(payload.size() < length ? "truncated" : "too long", " (the header says ",
                     length, " payload bytes, the file holds ", payload.size(), ")"));
  }
  if (const uint32_t computed = Crc32c(0, payload); computed != stored) {
    return absl::DataLossError(
        absl::StrCat("checksum mismatch (stored ", Hex(stored), ", computed ", Hex(computed), ")"));
  }
  if (!snapshot.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return absl::DataLossError("does not parse (its checksum matches)");
  }
  return snapshot;
}

// Renames `dir`/`name` to `name`.damaged (or .damaged-2, ... when that is taken), so that it is
// kept for inspection and never read as data again; returns what the file is called now.
std::string SetAside(const fs::path& dir, const std::string& name) {
  std::string to = absl::StrCat(name, kDamaged);
  for (int n = 2; fs::exists(dir / to); ++n) to = absl::StrCat(name, kDamaged, "-", n);
  std::error_code ec;
  fs::rename(dir / name, dir / to, ec);
  if (ec) return absl::StrCat(name, " (which cannot be renamed: ", ec.message(), ")");
  SyncDirectory(dir).IgnoreError();
  return to;
}

// Whether `dir` holds a checked snapshot set aside as damaged whose index is above `index`.
bool DamagedSnapshotAbove(const std::string& dir, uint64_t index) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t at = name.find(absl::StrCat(".pb", kDamaged));
    if (at == std::string::npos) continue;
    if (auto i = IndexIn(name.substr(0, at + 3), "snapshot-", ".pb"); i && *i > index) return true;
  }
  return false;
}

// The name of a snapshot or log segment in `dir`; empty when it holds none.
std::string DataFileIn(const std::string& dir) {
  if (const auto s = Snapshots(dir); !s.empty()) return SnapshotName(s.back());
  if (fs::exists(fs::path(dir) / kLegacySnapshot)) return std::string(kLegacySnapshot);
  if (const auto s = Segments(dir); !s.empty()) return SegmentName(s.back());
  return "";
}

// "wal-3.log" or "wal-3.log to wal-6.log".
std::string SegmentRange(uint64_t from, uint64_t to) {
  return from == to ? SegmentName(from) : absl::StrCat(SegmentName(from), " to ", SegmentName(to));
}

}  // namespace

absl::StatusOr<SegmentRead> ReadSegment(const std::string& path) {
  absl::StatusOr<std::string> read = ReadFileBytes(path);
  if (!read.ok()) return read.status();
  std::string data = *std::move(read);
  SegmentRead out;
  out.file_bytes = static_cast<int64_t>(data.size());
  const bool legacy = data.compare(0, kSegmentMagic.size(), kSegmentMagic) != 0;
  // A segment without the header begins with a record, whose length is far below what the
  // header's first bytes read as: those bytes, damaged, are corruption, not a torn record.
  if (legacy && data.size() >= 4 && GetU32(data.data()) > kMaxRecordBytes) {
    return absl::DataLossError(
        absl::StrCat(path, " begins with neither the segment header nor a record"));
  }
  size_t off = legacy ? 0 : kSegmentMagic.size();
  while (off + 8 <= data.size()) {
    uint32_t len = GetU32(data.data() + off);
    uint32_t crc = GetU32(data.data() + off + 4);
    if (len == 0) break;                     // zeros where a record should be: not written
    if (off + 8 + len > data.size()) break;  // torn: the record was cut short
    std::string payload = data.substr(off + 8, len);
    if ((legacy ? LegacyCrc(payload) : Crc32c(0, payload)) != crc) break;  // torn or corrupt
    v1::WalRecord record;
    if (!record.ParseFromString(payload)) break;
    out.records.push_back(std::move(record));
    off += 8 + len;
  }
  out.good_bytes = static_cast<int64_t>(off);
  out.zero_tail = off < data.size() && std::all_of(data.begin() + static_cast<ptrdiff_t>(off),
                                                   data.end(), [](char c) { return c == 0; });
  return out;
}

EncodedTrajectory DurableStore::EncodeTrajectory(const v1::Trajectory& t,
                                                 AdaptiveCompressor* compressor) const {
  return EncodeWire(absl::Cord(t.SerializeAsString()), compressor);
}

EncodedTrajectory DurableStore::EncodeWire(absl::Cord serialized,
                                           AdaptiveCompressor* compressor) const {
  if (serialized.size() > options_.compress_above_bytes) {
    std::string z = (compressor != nullptr ? *compressor : compressor_).Compress(serialized);
    if (!z.empty()) return {absl::Cord(std::move(z)), true};
  }
  return {std::move(serialized), false};
}

void DurableStore::FillWalInsertFields(const std::string& table, const StoredItem& item,
                                       bool compressed, v1::WalInsert* out) {
  out->set_table(table);
  out->set_key(item.key);
  out->set_priority(item.priority);
  out->set_policy_version(item.policy_version);
  out->set_bytes(item.bytes);
  out->set_compressed(compressed);
}

void DurableStore::FillWalInsert(const std::string& table, const StoredItem& item,
                                 const EncodedTrajectory& encoded, v1::WalInsert* out) {
  FillWalInsertFields(table, item, encoded.compressed, out);
  absl::CopyCordToString(encoded.bytes, out->mutable_trajectory());
}

absl::StatusOr<std::shared_ptr<v1::Trajectory>> DurableStore::DecodeTrajectory(
    const v1::WalInsert& in) {
  auto t = std::make_shared<v1::Trajectory>();
  if (!in.compressed()) {
    if (!t->ParseFromString(in.trajectory())) {
      return absl::DataLossError(absl::StrCat("stored item ", in.key(), " does not parse"));
    }
    return t;
  }
  auto raw = ZstdDecompress(in.trajectory(), size_t{1} << 31);
  if (!raw.ok() || !t->ParseFromString(*raw)) {
    return absl::DataLossError(absl::StrCat("stored item ", in.key(), " does not decompress: ",
                                            raw.ok() ? "bad content" : raw.status().message()));
  }
  return t;
}

absl::StatusOr<std::unique_ptr<DurableStore>> DurableStore::Open(DurabilityOptions options) {
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot create ", options.dir, ": ", ec.message()));
  }
  std::unique_ptr<DurableStore> store(new DurableStore(std::move(options)));
  if (auto s = store->Recover(); !s.ok()) return s;
  store->sync_thread_ = std::thread([s = store.get()] { s->SyncLoop(); });
  return store;
}

DurableStore::~DurableStore() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (sync_thread_.joinable()) sync_thread_.join();
  Sync().IgnoreError();
  Flush().IgnoreError();
  std::lock_guard<std::mutex> lock(mu_);
  // A direct I/O segment's last block was padded with zeros: cut it to its length.
  if (fd_ >= 0 && direct_ && error_.ok() && written_to_ >= segment_bytes_ &&
      ftruncate(fd_, static_cast<off_t>(segment_bytes_)) != 0) {
    LogWarning("cannot cut the write-ahead log to its length (recovery will)",
               {{"error", std::strerror(errno)}});
  }
  if (fd_ >= 0) close(fd_);
}

absl::Status DurableStore::Recover() {
  const std::vector<uint64_t> segments = Segments(options_.dir);
  const std::vector<uint64_t> snapshots = Snapshots(options_.dir);
  const std::string used = LoadNewestGoodSnapshot(snapshots);
  const uint64_t first = used.empty() ? 0 : recovered_.snapshot.next_segment();
  for (const auto& t : recovered_.snapshot.tables()) lsn_ = std::max(lsn_, t.last_lsn());
  CheckLog(segments, first, used, !snapshots.empty());
  if (auto s = ReadLog(segments, first); !s.ok()) return s;
  // New segments go after every index in use (a damaged snapshot's included).
  segment_ = first;
  if (!segments.empty()) segment_ = std::max(segment_, segments.back());
  if (!snapshots.empty()) segment_ = std::max(segment_, snapshots.back());
  return absl::OkStatus();
}

void DurableStore::Report(const std::string& problem, bool data_lost) {
  recovered_.problems.push_back(problem);
  recovered_.data_lost = recovered_.data_lost || data_lost;
  LogError(data_lost ? "replay data lost: acknowledged items may be missing"
                     : "replay data directory: a damaged or missing file",
           {{"dir", options_.dir}, {"problem", problem}});
}

std::string DurableStore::LoadNewestGoodSnapshot(const std::vector<uint64_t>& snapshots) {
  const fs::path dir(options_.dir);
  std::vector<std::string> candidates;
  for (auto it = snapshots.rbegin(); it != snapshots.rend(); ++it) {
    candidates.push_back(SnapshotName(*it));
  }
  if (fs::exists(dir / kLegacySnapshot)) candidates.emplace_back(kLegacySnapshot);
  std::vector<std::pair<std::string, std::string>> damaged;  // what is wrong, where it is kept
  std::string used;
  for (const std::string& name : candidates) {
    const bool checked = name != kLegacySnapshot;
    absl::StatusOr<v1::ReplaySnapshot> snapshot = absl::DataLossError("");
    if (absl::StatusOr<std::string> bytes = ReadFileBytes(dir / name); bytes.ok()) {
      snapshot = DecodeSnapshot(*bytes, checked);
    } else {
      snapshot = bytes.status();
    }
    if (snapshot.ok() && checked && SnapshotName(snapshot->next_segment()) != name) {
      snapshot = absl::DataLossError(
          absl::StrCat("holds the snapshot named ", SnapshotName(snapshot->next_segment())));
    }
    if (snapshot.ok()) {
      recovered_.snapshot = std::move(*snapshot);
      used = name;
      break;
    }
    ++damaged_files_;
    damaged.push_back({absl::StrCat(name, ": ", snapshot.status().message()),
                       absl::StrCat("kept as ", SetAside(dir, name))});
  }
  const std::string outcome = used.empty()
                                  ? "no good snapshot is left: recovering from the log alone"
                                  : absl::StrCat("fell back to ", used, " and the log from ",
                                                 SegmentName(recovered_.snapshot.next_segment()));
  for (const auto& [what, kept] : damaged) {
    Report(absl::StrCat(what, "; ", outcome, "; ", kept), false);
  }
  return used;
}

void DurableStore::CheckLog(const std::vector<uint64_t>& segments, uint64_t first,
                            const std::string& used, bool had_snapshots) {
  std::vector<uint64_t> needed;
  for (uint64_t s : segments) {
    if (s >= first) needed.push_back(s);
  }
  const std::string after =
      used.empty() ? "and no good snapshot covers it" : absl::StrCat("(the log after ", used, ")");
  if (needed.empty()) {
    if (!used.empty() || had_snapshots) {
      Report(used.empty() ? absl::StrCat(SegmentName(first),
                                         ": missing and no good snapshot is left: nothing was "
                                         "recovered, every acknowledged item is lost")
                          : absl::StrCat(SegmentName(first), ": missing ", after,
                                         ": items acknowledged after that snapshot are lost"),
             true);
    }
    return;
  }
  if (needed.front() != first) {
    Report(absl::StrCat(SegmentRange(first, needed.front() - 1), ": missing ", after,
                        ": acknowledged items in it may be lost; recovered what ",
                        SegmentName(needed.front()), " on holds"),
           true);
  }
  for (size_t i = 1; i < needed.size(); ++i) {
    if (needed[i] != needed[i - 1] + 1) {
      Report(absl::StrCat(SegmentRange(needed[i - 1] + 1, needed[i] - 1),
                          ": missing from the middle of the log: acknowledged items in it may "
                          "be lost"),
             true);
    }
  }
  // The segments before a checked snapshot's next_segment go only once a newer snapshot is
  // durable (this one kept as its fallback): with none of them left, that newer one is gone
  // (unless it was found damaged, and reported, at an earlier start). Nothing is lost.
  if (!used.empty() && used != kLegacySnapshot && first > 0 && segments.front() >= first &&
      !DamagedSnapshotAbove(options_.dir, first)) {
    Report(absl::StrCat("a snapshot newer than ", used, " is missing (the log before ",
                        SegmentName(first), " is gone, which happens only once a newer one is ",
                        "durable); recovered from ", used, " and the complete log after it"),
           false);
  }
}

absl::Status DurableStore::ReadLog(const std::vector<uint64_t>& segments, uint64_t first) {
  for (size_t i = 0; i < segments.size(); ++i) {
    if (segments[i] < first) continue;
    std::string path = (fs::path(options_.dir) / SegmentName(segments[i])).string();
    auto read = ReadSegment(path);
    if (!read.ok()) return read.status();
    for (auto& r : read->records) {
      lsn_ = std::max(lsn_, r.lsn());
      recovered_.records.push_back(std::move(r));
    }
    // Zeros from the last record to the end of its block: the padding of a direct I/O write
    // whose segment was not cut to its length (the process died first). Nothing was lost.
    const bool padding = read->zero_tail && read->file_bytes % kBlock == 0 &&
                         read->file_bytes - read->good_bytes < static_cast<int64_t>(kBlock);
    if (read->good_bytes < read->file_bytes && padding) {
      LogInfo("cutting the zero padding after the write-ahead log's last record",
              {{"segment", path}, {"bytes", read->file_bytes - read->good_bytes}});
      if (auto s = CutTo(path, read->good_bytes); !s.ok()) return s;
    } else if (read->good_bytes < read->file_bytes) {
      // Only the last segment can end in a torn record (appends go to the newest segment); a
      // bad record in an earlier one is corruption, and its bytes stay for inspection.
      if (i + 1 < segments.size()) {
        return absl::DataLossError(absl::StrCat(path, " is corrupt before its end (at byte ",
                                                read->good_bytes, " of ", read->file_bytes, ")"));
      }
      // Cut the torn record off so appends continue cleanly.
      recovered_.torn_tail = true;
      recovered_.torn_bytes += read->file_bytes - read->good_bytes;
      LogWarning("write-ahead log ends in a torn record; cutting it off",
                 {{"segment", path}, {"bytes", read->file_bytes - read->good_bytes}});
      if (auto s = CutTo(path, read->good_bytes); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status DurableStore::OpenSegmentLocked(std::unique_lock<std::mutex>& lock, bool first) {
  // A commit in progress syncs the current segment's descriptor outside the lock (and the
  // wait releases the lock, so the index is chosen after it).
  sync_cv_.wait(lock, [&] { return !syncing_ && !writing_; });
  const uint64_t index = first ? 0 : segment_ + 1;
  // The current segment is made durable first (written from the stage and cut to its length
  // with direct I/O); the new one is made whole (header written and synced) under a temporary
  // name and renamed into place, so no wal-N.log ever exists without its header. If anything
  // fails, appends go on into the current segment.
  if (fd_ >= 0 && direct_ &&
      (!WriteStagedLocked(staged_to_) || ftruncate(fd_, static_cast<off_t>(segment_bytes_)) != 0)) {
    return Errno("write-ahead log roll");
  }
  if (fd_ >= 0 && fsync(fd_) != 0) return Errno("fsync");
  const fs::path dir(options_.dir);
  const fs::path path = dir / SegmentName(index);
  const fs::path tmp = dir / (SegmentName(index) + ".tmp");
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("open " + tmp.string());
  if (!WriteAll(fd, {kSegmentMagic}) || fdatasync(fd) != 0 ||
      rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status failed = Errno("create " + path.string());
    close(fd);
    unlink(tmp.c_str());
    return failed;
  }
  // Make the new file's directory entry durable: records acknowledged in it must not vanish
  // with its name.
  if (absl::Status synced = SyncDirectory(options_.dir); !synced.ok()) {
    // Appends go on into the current segment, which must stay the last one: a torn record
    // is accepted only at the end of the log.
    close(fd);
    unlink(path.c_str());
    return synced;
  }
  // A log that syncs every batch writes the new segment with direct I/O, where it can.
  const int direct_fd = fsync_ == FsyncPolicy::kEveryBatch ? OpenDirectLocked(path.string()) : -1;
  const bool direct = direct_fd >= 0;
  if (direct) {
    close(fd);
    fd = direct_fd;
  }
  if (fd_ >= 0) {
    posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);  // synced above; see DropSyncedPagesLocked
    close(fd_);
    synced_lsn_ = std::max(synced_lsn_, lsn_);
    written_lsn_ = std::max(written_lsn_, lsn_);
  }
  fd_ = fd;
  segment_ = index;
  ++generation_;
  segment_bytes_ = kSegmentMagic.size();
  synced_bytes_ = 0;
  dropped_to_ = 0;
  direct_ = direct;
  if (direct) {
    // The header is on the disk; the stage holds it for the first block's rewrite.
    std::memcpy(stage_.get(), kSegmentMagic.data(), kSegmentMagic.size());
    stage_base_ = 0;
    staged_to_ = written_to_ = kSegmentMagic.size();
  }
  return absl::OkStatus();
}

int DurableStore::OpenDirectLocked(const std::string& path) {
  std::string why;
  const int fd = open(path.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) why = std::strerror(errno);
  if (fd >= 0 && !stage_) {
    const size_t allocated = (StageCapacity() + kHugePage - 1) / kHugePage * kHugePage;
    stage_.reset(static_cast<char*>(std::aligned_alloc(kHugePage, allocated)));
    // Each write pins the stage's pages for the device: fewer, larger ones cost less.
    if (stage_) madvise(stage_.get(), allocated, MADV_HUGEPAGE);
    tail_block_.reset(static_cast<char*>(std::aligned_alloc(kBlock, kBlock)));
    if (!stage_ || !tail_block_) why = "no memory for the staging buffer";
  }
  // The first block (the header, padded) is written this way at once, so that a file system
  // that opens with O_DIRECT but refuses the writes falls back here, not at the first commit.
  if (why.empty()) {
    std::memset(tail_block_.get(), 0, kBlock);
    std::memcpy(tail_block_.get(), kSegmentMagic.data(), kSegmentMagic.size());
    const ssize_t n = pwrite(fd, tail_block_.get(), kBlock, 0);
    if (n != static_cast<ssize_t>(kBlock)) why = n < 0 ? std::strerror(errno) : "a short write";
  }
  if (why.empty()) return fd;
  if (fd >= 0) close(fd);
  if (!told_no_direct_) {
    LogInfo("the write-ahead log is written through the page cache: no direct I/O here",
            {{"segment", path}, {"error", why}});
  }
  told_no_direct_ = true;
  return -1;
}

absl::Status DurableStore::StartJob(const v1::WalJob& job) {
  if (const std::string held = DataFileIn(options_.dir); !held.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start job '", job.job_id(), "' in ", options_.dir, ": it holds ", held,
                     " (another job's data, kept): give each job a directory of its own"));
  }
  {
    std::unique_lock<std::mutex> lock(mu_);
    sync_cv_.wait(lock, [&] { return !syncing_ && !writing_; });
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    direct_ = false;
    error_ = absl::OkStatus();
    lsn_ = 0;
    synced_lsn_ = 0;
    written_lsn_ = 0;
    if (auto s = OpenSegmentLocked(lock, /*first=*/true); !s.ok()) return s;
  }
  v1::WalRecord r;
  *r.mutable_job() = job;
  Append(r);
  return Sync();
}

absl::Status DurableStore::ContinueJob() {
  std::unique_lock<std::mutex> lock(mu_);
  return OpenSegmentLocked(lock, /*first=*/false);
}

uint64_t DurableStore::Append(v1::WalRecord& record, std::string_view tail,
                              const absl::Cord* body) {
  std::unique_lock<std::mutex> lock(mu_);
  // Room in the stage first: the wait may let other records in, so the LSN is taken after it.
  // (At most 32 bytes more than this: the LSN's field and the record's header.)
  if (direct_) {
    RoomLocked(lock, record.ByteSizeLong() + 32 + tail.size() + (body ? body->size() : 0));
  }
  if (!error_.ok() || fd_ < 0) return 0;
  record.set_lsn(lsn_ + 1);
  const std::string payload = record.SerializeAsString();
  std::vector<std::string_view> pieces = {{}, payload, tail};
  size_t length = payload.size() + tail.size();
  if (body != nullptr) {
    for (absl::string_view chunk : body->Chunks()) pieces.emplace_back(chunk.data(), chunk.size());
    length += body->size();
  }
  // A record that fits in the stage is checksummed there, each chunk just after it was copied
  // (in cache), rather than in a pass of its own over the request's buffers.
  const bool staged_whole = direct_ && StageRoom() >= 8 + length;
  uint32_t crc = 0;
  if (!staged_whole) {
    for (size_t i = 1; i < pieces.size(); ++i) crc = Crc32c(crc, pieces[i]);
  }
  std::string header;
  PutU32(header, static_cast<uint32_t>(length));
  PutU32(header, crc);
  pieces[0] = header;
  if (direct_ ? !StageLocked(pieces, /*checksum=*/staged_whole) : !WriteAll(fd_, pieces)) {
    FailLocked(Errno("write-ahead log append"));
    return 0;
  }
  ++lsn_;
  if (!direct_) written_lsn_ = lsn_;  // in the page cache already
  segment_bytes_ += header.size() + length;
  ++records_since_snapshot_;
  bytes_written_ += static_cast<int64_t>(header.size() + length);
  return lsn_;
}

uint64_t DurableStore::OnInsert(const std::string& table, const StoredItem& item,
                                const EncodedTrajectory* encoded) {
  EncodedTrajectory own;
  if (encoded == nullptr) {
    own = EncodeTrajectory(*item.trajectory);
    encoded = &own;
  }
  v1::WalRecord r;
  FillWalInsertFields(table, item, encoded->compressed, r.mutable_insert());
  // The trajectory follows the record's other fields as a second occurrence of `insert` that
  // holds only it (protobuf merges the two), so its bytes go to the file without a copy.
  const size_t n = encoded->bytes.size();
  std::string inner;
  AppendFieldHeader(inner, v1::WalInsert::kTrajectoryFieldNumber, n);
  std::string tail;
  AppendFieldHeader(tail, v1::WalRecord::kInsertFieldNumber, inner.size() + n);
  tail += inner;
  return Append(r, tail, &encoded->bytes);
}

uint64_t DurableStore::OnSample(const std::string& table, const std::vector<uint64_t>& keys) {
  v1::WalRecord r;
  r.mutable_sample()->set_table(table);
  r.mutable_sample()->mutable_keys()->Add(keys.begin(), keys.end());
  return Append(r);
}

uint64_t DurableStore::OnDelete(const std::string& table, uint64_t key) {
  v1::WalRecord r;
  r.mutable_delete_()->set_table(table);
  r.mutable_delete_()->set_key(key);
  return Append(r);
}

uint64_t DurableStore::OnUpdate(const std::string& table, uint64_t key, double priority) {
  v1::WalRecord r;
  r.mutable_update()->set_table(table);
  r.mutable_update()->set_key(key);
  r.mutable_update()->set_priority(priority);
  return Append(r);
}

uint64_t DurableStore::OnPolicyVersion(const std::string& table, int64_t version) {
  v1::WalRecord r;
  r.mutable_policy_version()->set_table(table);
  r.mutable_policy_version()->set_version(version);
  return Append(r);
}

absl::Status DurableStore::Sync() {
  if (absl::Status h = health(); !h.ok()) return h;
  if (fsync_ == FsyncPolicy::kNever) return Flush();
  return CommitTo(last_lsn());
}

absl::Status DurableStore::Flush() { return CommitTo(last_lsn(), /*sync=*/false); }

bool DurableStore::direct_io() const { return direct_; }

uint64_t DurableStore::last_lsn() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lsn_;
}

absl::Status DurableStore::SyncTo(uint64_t lsn) {
  return CommitTo(lsn, /*sync=*/fsync_ == FsyncPolicy::kEveryBatch);
}

absl::Status DurableStore::CommitTo(uint64_t lsn, bool sync) {
  std::unique_lock<std::mutex> lock(mu_);
  // An LSN from before StartJob (an old job's late ack) is beyond the new log's.
  lsn = std::min(lsn, lsn_);
  // A record appended while the log was failing never becomes durable, even once it resumes.
  if (LostLocked(lsn)) {
    return absl::UnavailableError(absl::StrCat(
        "not durable: the write-ahead log failed before record ", lsn, " reached the disk",
        error_.ok() ? "" : absl::StrCat(" (", error_.message(), ")")));
  }
  if (lsn <= (sync ? synced_lsn_ : written_lsn_)) return absl::OkStatus();
  // A log that failed takes no appends until it resumes: nothing more becomes durable.
  if (!error_.ok()) return error_;
  while ((sync ? synced_lsn_ : written_lsn_) < lsn) {
    if (!error_.ok()) return error_;
    // One write at a time (it reads the stage's blocks, which stay where they are meanwhile;
    // appends go on after them) and one commit at a time (callers that wait for it find more
    // to cover afterwards); a flush does not wait for a commit's fdatasync.
    if (writing_ || (sync && syncing_)) {
      sync_cv_.wait(lock);
      continue;
    }
    if (fd_ < 0) return absl::OkStatus();
    writing_ = true;
    if (sync) syncing_ = true;
    const uint64_t target = lsn_;
    const uint64_t bytes = segment_bytes_;
    const int fd = fd_;
    off_t offset = 0;
    std::vector<iovec> writes;
    if (direct_) writes = StagedWritesLocked(bytes, &offset);
    lock.unlock();
    const bool written = WriteIovecs(fd, writes, offset, /*direct=*/true);
    int error = errno;
    lock.lock();
    writing_ = false;
    if (written) {
      if (direct_) written_to_ = std::max(written_to_, bytes);
      written_lsn_ = std::max(written_lsn_, target);
    }
    bool ok = written;
    if (written && sync) {
      sync_cv_.notify_all();  // flushes and appends waiting for room go on meanwhile
      lock.unlock();
      ok = fdatasync(fd) == 0;
      error = errno;
      lock.lock();
    }
    if (sync) syncing_ = false;
    if (!ok) {
      FailLocked(absl::UnavailableError(absl::StrCat(
          written ? "fdatasync" : "write-ahead log write", ": ", std::strerror(error))));
    } else if (sync) {
      synced_lsn_ = std::max(synced_lsn_, target);
      synced_bytes_ = std::max(synced_bytes_, bytes);
    }
    sync_cv_.notify_all();
  }
  return absl::OkStatus();
}

void DurableStore::RoomLocked(std::unique_lock<std::mutex>& lock, size_t needed) {
  while (direct_ && fd_ >= 0 && error_.ok()) {
    if (StageRoom() >= needed) return;
    if (writing_) {  // it reads the stage
      sync_cv_.wait(lock);
      continue;
    }
    CompactStageLocked();
    // A record larger than the stage streams through it (StageLocked writes as it fills).
    if (StageRoom() >= needed || needed > StageCapacity() - kBlock) return;
    // Records not yet committed fill it: their whole blocks go to the disk now.
    if (!WriteStagedLocked(BlockStart(staged_to_))) {
      FailLocked(Errno("write-ahead log write"));
      return;
    }
  }
}

size_t DurableStore::StageCapacity() const {
  return std::max(2 * kBlock, BlockStart(options_.stage_bytes));
}

size_t DurableStore::StageRoom() const { return StageCapacity() - (staged_to_ - stage_base_); }

bool DurableStore::StageLocked(const std::vector<std::string_view>& pieces, bool checksum) {
  const uint64_t start = staged_to_;
  uint32_t crc = 0;
  constexpr size_t kChunk = 16 << 10;  // copied, then checksummed while in the L1/L2 cache
  for (size_t i = 0; i < pieces.size(); ++i) {
    for (std::string_view piece = pieces[i]; !piece.empty();) {
      if (StageRoom() == 0) {
        // Only a record larger than the stage gets here, with no commit writing (RoomLocked).
        if (!WriteStagedLocked(BlockStart(staged_to_))) return false;
        CompactStageLocked();
      }
      const size_t n = std::min({StageRoom(), piece.size(), kChunk});
      char* out = stage_.get() + (staged_to_ - stage_base_);
      std::memcpy(out, piece.data(), n);
      if (checksum && i > 0) crc = Crc32c(crc, std::string_view(out, n));
      staged_to_ += n;
      piece.remove_prefix(n);
    }
  }
  // The record fitted, so its header is still where it was copied.
  if (checksum) StoreU32(stage_.get() + (start - stage_base_) + 4, crc);
  return true;
}

std::vector<iovec> DurableStore::StagedWritesLocked(uint64_t end, off_t* offset) {
  std::vector<iovec> out;
  const uint64_t from = BlockStart(written_to_);
  *offset = static_cast<off_t>(from);
  if (end <= written_to_) return out;
  const uint64_t whole = BlockStart(end);
  if (whole > from) out.push_back({stage_.get() + (from - stage_base_), whole - from});
  if (end > whole) {
    // The partial last block from a copy: appends go on into the stage's own meanwhile.
    std::memcpy(tail_block_.get(), stage_.get() + (whole - stage_base_), end - whole);
    std::memset(tail_block_.get() + (end - whole), 0, kBlock - (end - whole));
    out.push_back({tail_block_.get(), kBlock});
  }
  return out;
}

bool DurableStore::WriteStagedLocked(uint64_t end) {
  off_t offset = 0;
  // (The writes first: they set `offset`.)
  const std::vector<iovec> writes = StagedWritesLocked(end, &offset);
  if (!WriteIovecs(fd_, writes, offset, /*direct=*/true)) return false;
  written_to_ = std::max(written_to_, end);
  return true;
}

void DurableStore::CompactStageLocked() {
  const uint64_t keep = BlockStart(written_to_);  // the partial block is written again
  if (keep <= stage_base_) return;
  std::memmove(stage_.get(), stage_.get() + (keep - stage_base_), staged_to_ - keep);
  stage_base_ = keep;
}

void DurableStore::DropSyncedPagesLocked(std::unique_lock<std::mutex>& lock) {
  const uint64_t to = synced_bytes_;
  if (fd_ < 0 || direct_ || to < dropped_to_ + kDropBytes) return;
  // A descriptor of its own: the segment may roll (and its descriptor close) meanwhile.
  const int fd = fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return;
  const uint64_t generation = generation_;
  lock.unlock();
  // From the start each time: the kernel keeps a large folio that a range only partly covers,
  // and the walk over pages already dropped is cheap. (It drops whole pages only, so the
  // partly synced last one stays.)
  posix_fadvise(fd, 0, static_cast<off_t>(to), POSIX_FADV_DONTNEED);
  close(fd);
  lock.lock();
  if (generation_ == generation) dropped_to_ = std::max(dropped_to_, to);
}

void DurableStore::SetFsync(FsyncPolicy policy, int interval_ms) {
  fsync_ = policy;
  interval_ms_ = std::max(1, interval_ms);
}

void DurableStore::SyncLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    stop_cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_.load()));
    if (stop_) break;
    // With direct I/O, records no caller flushed (none should be left so) reach the disk
    // within an interval too.
    if (fsync_ == FsyncPolicy::kInterval || direct_) {
      lock.unlock();
      (fsync_ == FsyncPolicy::kInterval ? Sync() : Flush()).IgnoreError();
      lock.lock();
    }
    DropSyncedPagesLocked(lock);
  }
}

absl::Status DurableStore::WriteSnapshot(const std::function<v1::ReplaySnapshot()>& capture) {
  if (!health().ok()) return Resume(capture);
  uint64_t covered = 0;
  return SnapshotNow(capture, &covered);
}

absl::Status DurableStore::SnapshotNow(const std::function<v1::ReplaySnapshot()>& capture,
                                       uint64_t* covered) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (auto s = OpenSegmentLocked(lock, /*first=*/false); !s.ok()) return s;
    *covered = segment_;
  }
  v1::ReplaySnapshot snapshot = capture();
  snapshot.set_next_segment(*covered);
  // Durable, name included, before anything older goes.
  if (auto s = ReplaceFileDurably(fs::path(options_.dir) / SnapshotName(*covered),
                                  EncodeSnapshot(snapshot));
      !s.ok()) {
    return s;
  }
  DropOutdated(*covered);
  records_since_snapshot_ = 0;
  return absl::OkStatus();
}

void DurableStore::DropOutdated(uint64_t newest) {
  const fs::path dir(options_.dir);
  // The fallback: the newest checked snapshot before `newest`, else the legacy one, else none
  // (the whole log).
  std::optional<uint64_t> fallback;
  for (uint64_t s : Snapshots(options_.dir)) {
    if (s < newest) fallback = s;
  }
  if (!fallback) return;
  std::error_code ec;
  for (uint64_t s : Snapshots(options_.dir)) {
    if (s < *fallback) fs::remove(dir / SnapshotName(s), ec);
  }
  fs::remove(dir / kLegacySnapshot, ec);
  for (uint64_t s : Segments(options_.dir)) {
    if (s < *fallback) fs::remove(dir / SegmentName(s), ec);
  }
}

absl::Status DurableStore::health() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void DurableStore::FailLocked(absl::Status error) {
  if (!error_.ok()) return;
  error_ = std::move(error);
  ++failures_;
  // What was written (synced, with fsync = every_batch) before the failure stays; every record
  // after it may never reach the disk.
  const uint64_t kept = fsync_ == FsyncPolicy::kEveryBatch ? synced_lsn_ : written_lsn_;
  lost_.emplace_back(kept + 1, std::numeric_limits<uint64_t>::max());
  if (lost_.size() > kMaxLostRanges) lost_.erase(lost_.begin());
  LogError(
      "write-ahead log failed: inserts are refused until it resumes",
      {{"error", error_.ToString()}, {"not_durable_from_lsn", static_cast<int64_t>(kept + 1)}});
}

bool DurableStore::LostLocked(uint64_t lsn) const {
  for (const auto& [from, to] : lost_) {
    if (lsn >= from && lsn <= to) return true;
  }
  return false;
}

bool DurableStore::NotDurable(uint64_t lsn) const {
  std::lock_guard<std::mutex> lock(mu_);
  return lsn != 0 && LostLocked(lsn);
}

absl::Status DurableStore::Resume(const std::function<v1::ReplaySnapshot()>& capture) {
  std::string segment;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (error_.ok()) return absl::OkStatus();
    sync_cv_.wait(lock, [&] { return !syncing_ && !writing_; });
    // The failed segment is left as the disk has it, cut after its last whole record: what
    // follows is a record the failure tore. The records from the failure on belong to inserts
    // that were refused; the snapshot below covers the segment, so recovery does not read them
    // (unless it must fall back past that snapshot).
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    direct_ = false;
    segment = (fs::path(options_.dir) / SegmentName(segment_)).string();
  }
  if (auto read = ReadSegment(segment); read.ok() && read->good_bytes < read->file_bytes) {
    CutTo(segment, read->good_bytes).IgnoreError();
  }
  // A snapshot of the tables as they are: everything durable before the failure plus what
  // happened in memory since (samples, deletes), without the refused inserts (the capture
  // skips items whose record is not durable). Appends stay refused until it is durable.
  uint64_t covered = 0;
  if (auto s = SnapshotNow(capture, &covered); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  const absl::Status was = error_;
  error_ = absl::OkStatus();
  lost_.back().second = lsn_;         // every record appended until now, none after
  synced_lsn_ = written_lsn_ = lsn_;  // nothing before the new segment is waited for
  LogInfo("write-ahead log resumed",
          {{"after", was.ToString()},
           {"segment", static_cast<int64_t>(covered)},
           {"not_durable_lsns", absl::StrCat(lost_.back().first, "-", lost_.back().second)}});
  return absl::OkStatus();
}

}  // namespace rally
