// A FIFO table: items leave in insertion order, each sampled (and removed) exactly once. This is
// Reverb's queue (samples_per_insert = 1, remover FIFO), the on-policy table of a self-play job.
//
// Blocking: Insert() waits while the table holds `capacity` items; SampleBatch() waits until it
// can return `batch_size` items. Both give up at their deadline (DEADLINE_EXCEEDED, nothing
// changed) or when the table is closed (CANCELLED). A full table therefore pushes back on
// inserters instead of dropping acknowledged data.
// Thread safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rally/v1/trajectory.pb.h"

namespace rally {

struct TableItem {
  uint64_t key = 0;
  std::shared_ptr<const v1::Trajectory> trajectory;
  int32_t times_sampled = 0;
};

class FifoTable {
 public:
  using Clock = std::chrono::steady_clock;

  FifoTable(std::string name, int64_t capacity);

  const std::string& name() const { return name_; }
  int64_t capacity() const { return capacity_; }

  // Appends `trajectory`; returns its key.
  absl::StatusOr<uint64_t> Insert(std::shared_ptr<const v1::Trajectory> trajectory,
                                  Clock::time_point deadline);
  // Removes and returns the `batch_size` oldest items, oldest first.
  absl::StatusOr<std::vector<TableItem>> SampleBatch(int batch_size, Clock::time_point deadline);
  // Wakes all waiters with CANCELLED; later calls fail at once.
  void Close();

  int64_t size() const;
  int64_t inserted_total() const;
  int64_t sampled_total() const;

 private:
  const std::string name_;
  const int64_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::deque<TableItem> items_;
  uint64_t next_key_ = 1;
  int64_t inserted_total_ = 0;
  int64_t sampled_total_ = 0;
  bool closed_ = false;
};

}  // namespace rally
