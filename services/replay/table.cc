#include "services/replay/table.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace rally {

int64_t OldestPolicyVersion(const v1::Trajectory& trajectory) {
  if (trajectory.turns_size() == 0) return 0;
  int64_t v = trajectory.turns(0).policy_version();
  for (const v1::Turn& t : trajectory.turns()) v = std::min(v, t.policy_version());
  return v;
}

absl::Status TableOptions::Validate() const {
  auto bad = [&](const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("table '", name, "': ", what));
  };
  if (name.empty()) return bad("name must not be empty");
  if (max_size < 1) return bad("max_size must be at least 1");
  if (max_bytes < 1) return bad("max_bytes must be at least 1");
  if (max_times_sampled < 0) return bad("max_times_sampled must be >= 0");
  if (max_staleness < 0) return bad("max_staleness must be >= 0");
  if (!(importance_sampling_exponent >= 0)) return bad("importance_sampling_exponent must be >= 0");
  if (auto s = rate_limiter.Validate(); !s.ok()) return bad(std::string(s.message()));
  if (rate_limiter.min_size_to_sample > max_size) {
    return bad(absl::StrCat("min_size_to_sample (", rate_limiter.min_size_to_sample,
                            ") exceeds max_size (", max_size, "): nothing could be sampled"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Table>> Table::Create(TableOptions options, uint64_t seed) {
  if (auto s = options.Validate(); !s.ok()) return s;
  auto sampler = MakeSelector(options.sampler, options.priority_exponent);
  if (!sampler.ok()) return sampler.status();
  auto remover = MakeSelector(options.remover, options.priority_exponent);
  if (!remover.ok()) return remover.status();
  return std::unique_ptr<Table>(
      new Table(std::move(options), std::move(*sampler), std::move(*remover), seed));
}

Table::Table(TableOptions options, std::unique_ptr<ItemSelector> sampler,
             std::unique_ptr<ItemSelector> remover, uint64_t seed)
    : options_(std::move(options)),
      sampler_(std::move(sampler)),
      remover_(std::move(remover)),
      limiter_(options_.rate_limiter),
      rng_(seed) {}

void Table::set_observer(TableObserver* observer) {
  std::lock_guard<std::mutex> lock(mu_);
  observer_ = observer;
}

absl::Status Table::InsertLocked(StoredItem item) {
  if (items_.count(item.key)) {
    return absl::AlreadyExistsError(absl::StrCat("key ", item.key, " already stored"));
  }
  if (auto s = sampler_->Insert(item.key, item.priority); !s.ok()) return s;
  if (auto s = remover_->Insert(item.key, item.priority); !s.ok()) {
    sampler_->Delete(item.key).IgnoreError();
    return s;
  }
  bytes_ += item.bytes;
  next_key_ = std::max(next_key_, item.key + 1);
  items_.emplace(item.key, std::move(item));
  limiter_.Inserted();
  return absl::OkStatus();
}

bool Table::WithdrawLocked(uint64_t key) {
  if (!DeleteLocked(key).ok()) return false;
  limiter_.Uninserted();
  return true;
}

bool Table::Withdraw(uint64_t key) {
  std::unique_lock<std::mutex> lock(mu_);
  const bool withdrawn = WithdrawLocked(key);
  lock.unlock();
  cv_.notify_all();  // room for an insert the rate limiter held back
  return withdrawn;
}

absl::Status Table::DeleteLocked(uint64_t key) {
  auto it = items_.find(key);
  if (it == items_.end()) return absl::NotFoundError(absl::StrCat("no item with key ", key));
  sampler_->Delete(key).IgnoreError();
  remover_->Delete(key).IgnoreError();
  bytes_ -= it->second.bytes;
  items_.erase(it);
  return absl::OkStatus();
}

// One sample of `key`: counts it and deletes the item once it reached max_times_sampled.
absl::Status Table::SampledLocked(uint64_t key) {
  auto it = items_.find(key);
  if (it == items_.end()) return absl::NotFoundError(absl::StrCat("no item with key ", key));
  ++it->second.times_sampled;
  limiter_.Sampled();
  if (options_.max_times_sampled > 0 && it->second.times_sampled >= options_.max_times_sampled) {
    return DeleteLocked(key);
  }
  return absl::OkStatus();
}

void Table::EnforceCapacityLocked() {
  while (static_cast<int64_t>(items_.size()) > options_.max_size || bytes_ > options_.max_bytes) {
    auto victim = remover_->Select(rng_);
    if (!victim.ok()) return;
    DeleteLocked(victim->key).IgnoreError();
    if (observer_) Observed(observer_->OnDelete(options_.name, victim->key));
  }
}

void Table::EvictStaleLocked() {
  if (options_.max_staleness <= 0) return;
  std::vector<uint64_t> stale;
  for (const auto& [key, item] : items_) {
    if (policy_version_ - item.policy_version > options_.max_staleness) stale.push_back(key);
  }
  for (uint64_t key : stale) {
    DeleteLocked(key).IgnoreError();
    ++evicted_stale_;
    if (observer_) Observed(observer_->OnDelete(options_.name, key));
  }
  if (!stale.empty()) cv_.notify_all();
}

absl::StatusOr<uint64_t> Table::Insert(std::shared_ptr<const v1::Trajectory> trajectory,
                                       double priority, Clock::time_point deadline,
                                       const EncodedTrajectory* encoded) {
  if (!(priority >= 0) || !std::isfinite(priority)) {
    return absl::InvalidArgumentError(
        absl::StrCat("priority must be finite and >= 0, got ", priority));
  }
  StoredItem item;
  item.bytes = static_cast<int64_t>(trajectory->ByteSizeLong());
  item.policy_version = OldestPolicyVersion(*trajectory);
  item.trajectory = std::move(trajectory);
  item.priority = priority;
  if (item.bytes > options_.max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "item of ", item.bytes, " bytes exceeds the table's max_bytes (", options_.max_bytes, ")"));
  }
  std::unique_lock<std::mutex> lock(mu_);
  bool ready = cv_.wait_until(lock, deadline, [&] {
    return closed_ || limiter_.CanInsert(static_cast<int64_t>(items_.size()));
  });
  if (closed_) return absl::CancelledError(absl::StrCat("table '", name(), "' closed"));
  if (!ready) {
    return absl::DeadlineExceededError(absl::StrCat("table '", name(),
                                                    "': the rate limiter held the insert back (",
                                                    limiter_.DebugString(), ")"));
  }
  if (options_.max_staleness > 0 &&
      policy_version_ - item.policy_version > options_.max_staleness) {
    return absl::FailedPreconditionError(absl::StrCat(
        "item acted with policy version ", item.policy_version, ", more than max_staleness ",
        options_.max_staleness, " versions behind the learner's ", policy_version_));
  }
  item.key = next_key_;
  if (auto s = InsertLocked(item); !s.ok()) return s;
  if (observer_) {
    const uint64_t lsn = observer_->OnInsert(options_.name, item, encoded);
    if (lsn == 0) {
      WithdrawLocked(item.key);
      return absl::UnavailableError(
          absl::StrCat("table '", name(), "': the write-ahead log did not take the insert"));
    }
    Observed(lsn);
    items_[item.key].lsn = lsn;
  }
  EnforceCapacityLocked();
  lock.unlock();
  cv_.notify_all();
  return item.key;
}

absl::StatusOr<std::vector<SampledItem>> Table::Sample(int n, Clock::time_point deadline) {
  const auto& rl = options_.rate_limiter;
  if (n < 1) return absl::InvalidArgumentError("batch size must be at least 1");
  if (rl.max_diff - rl.min_diff < n && rl.max_diff < 1e17) {
    return absl::InvalidArgumentError(
        absl::StrCat("a batch of ", n, " can never be sampled from table '", name(),
                     "': the rate limiter's error buffer allows at most ",
                     rl.max_diff - rl.min_diff, " samples ahead of inserts"));
  }
  if (options_.max_times_sampled == 1 && n > options_.max_size) {
    return absl::InvalidArgumentError(absl::StrCat("batch size ", n, " exceeds table '", name(),
                                                   "' max_size ", options_.max_size));
  }
  std::unique_lock<std::mutex> lock(mu_);
  auto enough = [&] {
    int64_t size = static_cast<int64_t>(items_.size());
    // Items sampled at most once must all be distinct and present.
    bool distinct_ok = options_.max_times_sampled != 1 || size >= n;
    return closed_ || (size > 0 && distinct_ok && limiter_.CanSample(size, n));
  };
  bool ready = cv_.wait_until(lock, deadline, enough);
  if (closed_) return absl::CancelledError(absl::StrCat("table '", name(), "' closed"));
  if (!ready) {
    return absl::DeadlineExceededError(absl::StrCat("table '", name(), "' holds ", items_.size(),
                                                    " items; the rate limiter held the sample "
                                                    "back (",
                                                    limiter_.DebugString(), ")"));
  }
  std::vector<SampledItem> out;
  std::vector<uint64_t> keys;
  out.reserve(n);
  for (int i = 0; i < n; ++i) {
    auto picked = sampler_->Select(rng_);
    if (!picked.ok()) break;  // only when max_times_sampled removed every item mid-batch
    SampledItem s;
    s.probability = picked->probability;
    s.table_size = static_cast<int64_t>(items_.size());
    s.item = items_.at(picked->key);
    s.item.times_sampled += 1;
    s.staleness = policy_version_ - s.item.policy_version;
    keys.push_back(picked->key);
    SampledLocked(picked->key).IgnoreError();
    out.push_back(std::move(s));
  }
  if (observer_) Observed(observer_->OnSample(options_.name, keys));
  // Importance weights (N * P)^-beta, normalised so the largest in the batch is 1.
  double max_w = 0;
  for (SampledItem& s : out) {
    s.weight = std::pow(static_cast<double>(s.table_size) * s.probability,
                        -options_.importance_sampling_exponent);
    max_w = std::max(max_w, s.weight);
  }
  for (SampledItem& s : out) s.weight = max_w > 0 ? s.weight / max_w : 1.0;
  lock.unlock();
  cv_.notify_all();
  return out;
}

absl::Status Table::UpdatePriorities(const std::vector<std::pair<uint64_t, double>>& updates) {
  // A value that can never be right is refused whatever its key; then every key must be there.
  for (size_t i = 0; i < updates.size(); ++i) {
    const auto& [key, priority] = updates[i];
    if (!(priority >= 0) || !std::isfinite(priority)) {
      return absl::InvalidArgumentError(absl::StrCat("updates[", i, "].priority: must be finite ",
                                                     "and >= 0, got ", priority, " (key ", key,
                                                     ")"));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < updates.size(); ++i) {
    const uint64_t key = updates[i].first;
    if (!items_.count(key)) {
      return absl::NotFoundError(absl::StrCat("updates[", i, "].key: table '", name(),
                                              "' has no item with key ", key,
                                              " (sampled away or evicted?)"));
    }
  }
  for (const auto& [key, priority] : updates) {
    items_[key].priority = priority;
    sampler_->Update(key, priority).IgnoreError();
    remover_->Update(key, priority).IgnoreError();
    if (observer_) Observed(observer_->OnUpdate(options_.name, key, priority));
  }
  return absl::OkStatus();
}

void Table::SetPolicyVersion(int64_t version) {
  std::lock_guard<std::mutex> lock(mu_);
  if (version <= policy_version_) return;
  policy_version_ = version;
  if (observer_) Observed(observer_->OnPolicyVersion(options_.name, version));
  EvictStaleLocked();
}

void Table::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

absl::Status Table::RestoreInsert(const StoredItem& item) {
  // Capacity evictions were logged as deletes of their own: replaying them does the same.
  std::lock_guard<std::mutex> lock(mu_);
  return InsertLocked(item);
}

absl::Status Table::RestoreSample(const std::vector<uint64_t>& keys) {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint64_t key : keys) {
    if (auto s = SampledLocked(key); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Table::RestoreDelete(uint64_t key) {
  std::lock_guard<std::mutex> lock(mu_);
  return DeleteLocked(key);
}

absl::Status Table::RestoreUpdate(uint64_t key, double priority) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = items_.find(key);
  if (it == items_.end()) return absl::NotFoundError(absl::StrCat("no item with key ", key));
  it->second.priority = priority;
  sampler_->Update(key, priority).IgnoreError();
  remover_->Update(key, priority).IgnoreError();
  return absl::OkStatus();
}

void Table::RestorePolicyVersion(int64_t version) {
  std::lock_guard<std::mutex> lock(mu_);
  policy_version_ = std::max(policy_version_, version);
}

Table::State Table::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  State s;
  for (const auto& [key, item] : items_) s.items.push_back(item);
  s.inserts = limiter_.inserts();
  s.samples = limiter_.samples();
  s.policy_version = policy_version_;
  s.next_key = next_key_;
  s.last_lsn = last_lsn_;
  return s;
}

absl::Status Table::Restore(const State& state) {
  std::lock_guard<std::mutex> lock(mu_);
  sampler_->Clear();
  remover_->Clear();
  items_.clear();
  bytes_ = 0;
  for (const StoredItem& item : state.items) {
    if (auto s = InsertLocked(item); !s.ok()) return s;
  }
  limiter_.Restore(state.inserts, state.samples);
  policy_version_ = state.policy_version;
  next_key_ = std::max(next_key_, state.next_key);
  last_lsn_ = state.last_lsn;
  return absl::OkStatus();
}

int64_t Table::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(items_.size());
}
int64_t Table::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}
int64_t Table::inserted_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return limiter_.inserts();
}
int64_t Table::sampled_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return limiter_.samples();
}
int64_t Table::evicted_stale_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return evicted_stale_;
}
double Table::cursor() const {
  std::lock_guard<std::mutex> lock(mu_);
  return limiter_.cursor();
}

std::string Table::DebugString() const {
  std::lock_guard<std::mutex> lock(mu_);
  return absl::StrCat("table(name=", options_.name, ", sampler=", sampler_->DebugString(),
                      ", remover=", remover_->DebugString(), ", size=", items_.size(), "/",
                      options_.max_size, ", ", limiter_.DebugString(), ")");
}

}  // namespace rally
