#include "services/replay/fifo_table.h"

#include "absl/strings/str_cat.h"

namespace rally {

FifoTable::FifoTable(std::string name, int64_t capacity)
    : name_(std::move(name)), capacity_(capacity) {}

absl::StatusOr<uint64_t> FifoTable::Insert(std::shared_ptr<const v1::Trajectory> trajectory,
                                           Clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  bool ready = not_full_.wait_until(
      lock, deadline, [&] { return closed_ || static_cast<int64_t>(items_.size()) < capacity_; });
  if (closed_) return absl::CancelledError(absl::StrCat("table '", name_, "' closed"));
  if (!ready) {
    return absl::DeadlineExceededError(
        absl::StrCat("table '", name_, "' stayed full (", capacity_, " items)"));
  }
  uint64_t key = next_key_++;
  items_.push_back(TableItem{key, std::move(trajectory), 0});
  ++inserted_total_;
  lock.unlock();
  not_empty_.notify_all();
  return key;
}

absl::StatusOr<std::vector<TableItem>> FifoTable::SampleBatch(int batch_size,
                                                              Clock::time_point deadline) {
  if (batch_size < 1 || batch_size > capacity_) {
    return absl::InvalidArgumentError(absl::StrCat("batch_size ", batch_size, " must lie in [1, ",
                                                   capacity_, "] for table '", name_, "'"));
  }
  std::unique_lock<std::mutex> lock(mu_);
  bool ready = not_empty_.wait_until(
      lock, deadline, [&] { return closed_ || static_cast<int64_t>(items_.size()) >= batch_size; });
  if (closed_) return absl::CancelledError(absl::StrCat("table '", name_, "' closed"));
  if (!ready) {
    return absl::DeadlineExceededError(absl::StrCat("table '", name_, "' holds ", items_.size(),
                                                    " items, fewer than ", batch_size));
  }
  std::vector<TableItem> batch;
  batch.reserve(batch_size);
  for (int i = 0; i < batch_size; ++i) {
    batch.push_back(std::move(items_.front()));
    items_.pop_front();
    batch.back().times_sampled += 1;
  }
  sampled_total_ += batch_size;
  lock.unlock();
  not_full_.notify_all();
  return batch;
}

void FifoTable::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  not_full_.notify_all();
  not_empty_.notify_all();
}

int64_t FifoTable::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(items_.size());
}

int64_t FifoTable::inserted_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return inserted_total_;
}

int64_t FifoTable::sampled_total() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sampled_total_;
}

}  // namespace rally
