// Item selectors: the strategies a table uses to pick which item to sample next (its sampler)
// and which item to drop when it is full (its remover). The interface follows Reverb's
// ItemSelector: every strategy is a small class behind it.
//
// Thread safety: none. The owning table calls every method under its own lock.
// Complexity: FIFO, LIFO and uniform O(1) per call; prioritised O(log n); heaps O(log n).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rally {

struct SelectedKey {
  uint64_t key = 0;
  // Probability with which this key was selected (1 for deterministic selectors).
  double probability = 1.0;
};

class ItemSelector {
 public:
  virtual ~ItemSelector() = default;
  // Adds `key` (not present) with `priority`.
  virtual absl::Status Insert(uint64_t key, double priority) = 0;
  // Changes the priority of a present key.
  virtual absl::Status Update(uint64_t key, double priority) = 0;
  // Removes a present key.
  virtual absl::Status Delete(uint64_t key) = 0;
  // Picks a key; FAILED_PRECONDITION when empty.
  virtual absl::StatusOr<SelectedKey> Select(std::mt19937_64& rng) = 0;
  virtual void Clear() = 0;
  virtual int64_t size() const = 0;
  // The configuration in words, e.g. "prioritized(exponent=0.6)".
  virtual std::string DebugString() const = 0;
};

// Selector kinds as the job spec names them.
// "fifo", "lifo", "uniform", "prioritized", "max_heap", "min_heap".
absl::StatusOr<std::unique_ptr<ItemSelector>> MakeSelector(const std::string& kind,
                                                           double priority_exponent = 1.0);
std::vector<std::string> SelectorKinds();

}  // namespace rally
