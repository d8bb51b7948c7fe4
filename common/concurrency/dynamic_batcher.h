// DynamicBatcher: many producers submit single requests and wait for their responses; one
// consumer takes them in batches of at most `max_batch` and answers each.
//
// Batching rule: NextBatch() blocks until at least one request is pending, then waits until
// `max_batch` requests are pending or `timeout` has passed since the oldest pending request was
// submitted, whichever comes first, and returns at most `max_batch` requests in submission order.
// A lone request is therefore answered within `timeout` plus the consumer's work.
//
// Thread safety: Submit() from any number of threads; NextBatch() from any number of consumer
// threads (each batch goes to one of them). Close() wakes every waiter: pending and later
// submissions fail with CANCELLED, and NextBatch() returns an empty batch from then on.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rally {

template <typename Request, typename Response>
class DynamicBatcher {
 public:
  struct Item {
    Request request;
    std::promise<absl::StatusOr<Response>> promise;
    std::chrono::steady_clock::time_point submitted;
  };

  DynamicBatcher(int max_batch, std::chrono::microseconds timeout)
      : max_batch_(max_batch), timeout_(timeout) {}

  ~DynamicBatcher() { Close(); }

  // Queues `request`; the future holds the response or the error the consumer set.
  std::future<absl::StatusOr<Response>> Submit(Request request) {
    std::promise<absl::StatusOr<Response>> promise;
    auto future = promise.get_future();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) {
        promise.set_value(absl::CancelledError("batcher closed"));
        return future;
      }
      pending_.push_back(
          Item{std::move(request), std::move(promise), std::chrono::steady_clock::now()});
    }
    cv_.notify_all();
    return future;
  }

  // The next batch (see the batching rule above); empty only after Close().
  std::vector<Item> NextBatch() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return closed_ || !pending_.empty(); });
    if (closed_ || pending_.empty()) return {};
    auto deadline = pending_.front().submitted + timeout_;
    cv_.wait_until(lock, deadline, [&] {
      return closed_ || static_cast<int>(pending_.size()) >= max_batch_ || pending_.empty();
    });
    if (closed_) return {};
    std::vector<Item> batch;
    int n = std::min<int>(max_batch_, static_cast<int>(pending_.size()));
    batch.reserve(n);
    for (int i = 0; i < n; ++i) {
      batch.push_back(std::move(pending_.front()));
      pending_.pop_front();
    }
    // Another consumer may find a full batch (or the next oldest request's deadline) waiting.
    if (!pending_.empty()) cv_.notify_all();
    return batch;
  }

  void Close() {
    std::deque<Item> dropped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return;
      closed_ = true;
      dropped.swap(pending_);
    }
    cv_.notify_all();
    for (Item& item : dropped) item.promise.set_value(absl::CancelledError("batcher closed"));
  }

  int max_batch() const { return max_batch_; }

 private:
  const int max_batch_;
  const std::chrono::microseconds timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> pending_;
  bool closed_ = false;
};

}  // namespace rally
