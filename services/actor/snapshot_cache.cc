#include "services/actor/snapshot_cache.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/net/server.h"
#include "services/actor/weight_subscriber.h"

namespace rally {

SnapshotCache::SnapshotCache(std::shared_ptr<grpc::Channel> channel, int capacity,
                             std::chrono::milliseconds timeout)
    : stub_(v1::WeightService::NewStub(std::move(channel))),
      capacity_(static_cast<size_t>(std::max(capacity, 1))),
      timeout_(timeout) {}

SnapshotCache::SnapshotCache(const std::string& address, int capacity,
                             std::chrono::milliseconds timeout)
    : SnapshotCache(MakeChannel(address), capacity, timeout) {}

absl::StatusOr<std::shared_ptr<const std::string>> SnapshotCache::Get(int64_t version) {
  if (version < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("opponent snapshot version ", version,
                     " is not a version: snapshots are versions >= 1 (the latest version comes "
                     "from the weight subscription)"));
  }
  std::shared_ptr<Entry> entry;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(version);
    if (it != entries_.end()) {
      entry = it->second;
      if (entry->done) {
        lru_.splice(lru_.begin(), lru_, entry->lru);
        return entry->result;
      }
      // Another caller is fetching this version: wait for its result.
      mu_.Await(absl::Condition(
          +[](Entry* e) { return e->done; }, entry.get()));
      return entry->result;
    }
    entry = std::make_shared<Entry>();
    entries_[version] = entry;
    ++fetches_;
  }

  absl::StatusOr<std::shared_ptr<const std::string>> result = Fetch(version);

  absl::MutexLock lock(&mu_);
  entry->result = result;
  entry->done = true;
  if (!result.ok()) {
    entries_.erase(version);  // waiters hold `entry`; the next Get() fetches again
    return result;
  }
  lru_.push_front(version);
  entry->lru = lru_.begin();
  while (lru_.size() > capacity_) {
    entries_.erase(lru_.back());
    lru_.pop_back();
  }
  return result;
}

absl::StatusOr<std::shared_ptr<const std::string>> SnapshotCache::Fetch(int64_t version) {
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(timeout_));
  v1::GetWeightsRequest req;
  req.set_version(version);
  auto stream = stub_->Get(&ctx, req);
  v1::WeightChunk chunk;
  WeightAssembler assembler;
  std::shared_ptr<const std::string> blob;
  absl::Status bad;
  while (!blob && stream->Read(&chunk)) {
    absl::StatusOr<bool> complete = assembler.Add(chunk);
    if (!complete.ok()) {
      bad = complete.status();
      ctx.TryCancel();
      break;
    }
    if (*complete) blob = std::make_shared<const std::string>(assembler.TakeBlob());
  }
  if (blob) {
    while (stream->Read(&chunk)) {
    }
  }
  grpc::Status s = stream->Finish();
  if (!bad.ok()) return bad;
  if (!s.ok()) {
    return absl::Status(FromGrpc(s).code(), absl::StrCat("fetching weight snapshot ", version, ": ",
                                                         s.error_message()));
  }
  if (!blob) {
    return absl::DataLossError(
        absl::StrCat("the weight stream of snapshot ", version, " ended before its last chunk"));
  }
  if (assembler.version() != version) {
    return absl::DataLossError(absl::StrCat("asked for weight snapshot ", version,
                                            " and the learner sent version ", assembler.version()));
  }
  return blob;
}

size_t SnapshotCache::size() const {
  absl::MutexLock lock(&mu_);
  return lru_.size();
}

int64_t SnapshotCache::fetches() const {
  absl::MutexLock lock(&mu_);
  return fetches_;
}

}  // namespace rally
