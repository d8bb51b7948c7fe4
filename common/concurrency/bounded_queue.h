// BoundedQueue: a first-in, first-out queue between threads that holds at most `capacity` items.
//
// Blocking: Push() waits while the queue is full, Pop() while it is empty; neither has a
// deadline. PushAll() and PopAll() move runs of items under one lock, so that a consumer is woken
// once for a run rather than once per item.
// Close: Close() wakes every waiter. From then on nothing more goes in (Push() returns false and
// leaves the item with the caller; PushAll() hands back what it could not push), and what is
// queued still comes out: Pop() and PopAll() return the queued items in order, and only then
// nullopt (Pop) or an empty vector (PopAll). Closing twice is closing once.
// Memory: at most `capacity` items are held (a caller may hold more of its own on the way in).
// Thread safety: every method from any number of threads. Built on absl::Mutex's Lock, Unlock
// and Await, which tests/sanitizers/tsan_abseil.cc makes visible to ThreadSanitizer.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"

namespace rally {

template <typename T>
class BoundedQueue {
 public:
  // `capacity` of at least 1.
  explicit BoundedQueue(size_t capacity) : capacity_(capacity < 1 ? 1 : capacity) {}

  BoundedQueue(const BoundedQueue&) = delete;
  BoundedQueue& operator=(const BoundedQueue&) = delete;

  // Queues `item`, waiting while the queue is full. False when the queue is closed (before or
  // while waiting): `item` is then not moved from.
  bool Push(T&& item) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &BoundedQueue::HasRoomOrClosed));
    if (closed_) return false;
    items_.push_back(std::move(item));
    return true;
  }

  // Queues `items` in order, as many at a time as there is room for, waiting while the queue is
  // full. Returns the items it could not queue because the queue closed, in order; empty when
  // every item went in.
  std::vector<T> PushAll(std::vector<T> items) {
    size_t next = 0;
    absl::MutexLock lock(&mu_);
    while (next < items.size()) {
      mu_.Await(absl::Condition(this, &BoundedQueue::HasRoomOrClosed));
      if (closed_) break;
      while (next < items.size() && items_.size() < capacity_) {
        items_.push_back(std::move(items[next++]));
      }
    }
    items.erase(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(next));
    return items;
  }

  // The oldest item, waiting while the queue is empty and open; nullopt once it is closed and
  // empty.
  std::optional<T> Pop() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &BoundedQueue::HasItemsOrClosed));
    return TakeFront();
  }

  // The oldest item if there is one, without waiting.
  std::optional<T> TryPop() {
    absl::MutexLock lock(&mu_);
    return TakeFront();
  }

  // Every queued item, oldest first, waiting while the queue is empty and open; empty only once
  // it is closed and empty.
  std::vector<T> PopAll() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &BoundedQueue::HasItemsOrClosed));
    std::vector<T> out(std::make_move_iterator(items_.begin()),
                       std::make_move_iterator(items_.end()));
    items_.clear();
    return out;
  }

  // Ends the queue (see the contract above).
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }

  bool closed() const {
    absl::MutexLock lock(&mu_);
    return closed_;
  }
  size_t size() const {
    absl::MutexLock lock(&mu_);
    return items_.size();
  }
  size_t capacity() const { return capacity_; }

 private:
  bool HasRoomOrClosed() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || items_.size() < capacity_;
  }
  bool HasItemsOrClosed() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || !items_.empty();
  }
  std::optional<T> TakeFront() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (items_.empty()) return std::nullopt;
    std::optional<T> out(std::move(items_.front()));
    items_.pop_front();
    return out;
  }

  const size_t capacity_;
  mutable absl::Mutex mu_;
  std::deque<T> items_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace rally
