#include "services/replay/selectors.h"

#include <cmath>
#include <deque>
#include <map>
#include <set>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rally {
namespace {

absl::Status Missing(uint64_t key) {
  return absl::NotFoundError(absl::StrCat("key ", key, " is not in the selector"));
}
absl::Status Present(uint64_t key) {
  return absl::AlreadyExistsError(absl::StrCat("key ", key, " is already in the selector"));
}
absl::Status Empty() { return absl::FailedPreconditionError("selector is empty"); }

// Keys in insertion order; FIFO takes the front, LIFO the back. Deletion of an arbitrary key is
// lazy: the key is marked and skipped when it reaches an end.
class OrderSelector : public ItemSelector {
 public:
  explicit OrderSelector(bool lifo) : lifo_(lifo) {}
  absl::Status Insert(uint64_t key, double) override {
    if (live_.count(key)) return Present(key);
    order_.push_back(key);
    live_.insert(key);
    return absl::OkStatus();
  }
  absl::Status Update(uint64_t key, double) override {
    return live_.count(key) ? absl::OkStatus() : Missing(key);
  }
  absl::Status Delete(uint64_t key) override {
    if (!live_.erase(key)) return Missing(key);
    Trim();
    return absl::OkStatus();
  }
  absl::StatusOr<SelectedKey> Select(std::mt19937_64&) override {
    Trim();
    if (live_.empty()) return Empty();
    return SelectedKey{lifo_ ? order_.back() : order_.front(), 1.0};
  }
  void Clear() override {
    order_.clear();
    live_.clear();
  }
  int64_t size() const override { return static_cast<int64_t>(live_.size()); }
  std::string DebugString() const override { return lifo_ ? "lifo" : "fifo"; }

 private:
  void Trim() {
    while (!order_.empty() && !live_.count(order_.front())) order_.pop_front();
    while (!order_.empty() && !live_.count(order_.back())) order_.pop_back();
    // Keep dead keys in the middle from piling up without bound.
    if (order_.size() > 2 * live_.size() + 64) {
      std::deque<uint64_t> kept;
      for (uint64_t k : order_) {
        if (live_.count(k)) kept.push_back(k);
      }
      order_.swap(kept);
    }
  }
  const bool lifo_;
  std::deque<uint64_t> order_;
  std::set<uint64_t> live_;
};

// Uniform over present keys: a dense vector plus an index, swap-remove on delete.
class UniformSelector : public ItemSelector {
 public:
  absl::Status Insert(uint64_t key, double) override {
    if (index_.count(key)) return Present(key);
    index_[key] = keys_.size();
    keys_.push_back(key);
    return absl::OkStatus();
  }
  absl::Status Update(uint64_t key, double) override {
    return index_.count(key) ? absl::OkStatus() : Missing(key);
  }
  absl::Status Delete(uint64_t key) override {
    auto it = index_.find(key);
    if (it == index_.end()) return Missing(key);
    size_t i = it->second;
    keys_[i] = keys_.back();
    index_[keys_[i]] = i;
    keys_.pop_back();
    index_.erase(key);
    return absl::OkStatus();
  }
  absl::StatusOr<SelectedKey> Select(std::mt19937_64& rng) override {
    if (keys_.empty()) return Empty();
    size_t i = std::uniform_int_distribution<size_t>(0, keys_.size() - 1)(rng);
    return SelectedKey{keys_[i], 1.0 / static_cast<double>(keys_.size())};
  }
  void Clear() override {
    keys_.clear();
    index_.clear();
  }
  int64_t size() const override { return static_cast<int64_t>(keys_.size()); }
  std::string DebugString() const override { return "uniform"; }

 private:
  std::vector<uint64_t> keys_;
  std::unordered_map<uint64_t, size_t> index_;
};

// Prioritised: P(key) = p^e / sum p^e, with a sum tree over slots (leaves hold p^e).
class PrioritizedSelector : public ItemSelector {
 public:
  explicit PrioritizedSelector(double exponent) : exponent_(exponent) {}
  absl::Status Insert(uint64_t key, double priority) override {
    if (slot_.count(key)) return Present(key);
    if (!(priority >= 0) || !std::isfinite(priority)) {
      return absl::InvalidArgumentError(
          absl::StrCat("priority must be finite and >= 0, got ", priority));
    }
    size_t s;
    if (!free_.empty()) {
      s = free_.back();
      free_.pop_back();
    } else {
      s = keys_.size();
      keys_.push_back(0);
      if (s >= capacity_) Grow();
    }
    keys_[s] = key;
    slot_[key] = s;
    Set(s, std::pow(priority, exponent_));
    return absl::OkStatus();
  }
  absl::Status Update(uint64_t key, double priority) override {
    auto it = slot_.find(key);
    if (it == slot_.end()) return Missing(key);
    if (!(priority >= 0) || !std::isfinite(priority)) {
      return absl::InvalidArgumentError(
          absl::StrCat("priority must be finite and >= 0, got ", priority));
    }
    Set(it->second, std::pow(priority, exponent_));
    return absl::OkStatus();
  }
  absl::Status Delete(uint64_t key) override {
    auto it = slot_.find(key);
    if (it == slot_.end()) return Missing(key);
    Set(it->second, 0.0);
    free_.push_back(it->second);
    slot_.erase(it);
    return absl::OkStatus();
  }
  absl::StatusOr<SelectedKey> Select(std::mt19937_64& rng) override {
    if (slot_.empty()) return Empty();
    double total = tree_[1];
    if (total <= 0) {
      // Every priority is zero: fall back to uniform over present keys.
      auto it = slot_.begin();
      std::advance(it, std::uniform_int_distribution<size_t>(0, slot_.size() - 1)(rng));
      return SelectedKey{it->first, 1.0 / static_cast<double>(slot_.size())};
    }
    double x = std::uniform_real_distribution<double>(0.0, total)(rng);
    size_t node = 1;
    while (node < capacity_) {
      size_t left = 2 * node;
      if (x < tree_[left] || tree_[left + 1] <= 0) {
        node = left;
      } else {
        x -= tree_[left];
        node = left + 1;
      }
    }
    size_t s = node - capacity_;
    // Rounding can land on an empty slot at the very end; walk back to a live one.
    while (tree_[capacity_ + s] <= 0 && s > 0) --s;
    return SelectedKey{keys_[s], tree_[capacity_ + s] / total};
  }
  void Clear() override {
    keys_.clear();
    slot_.clear();
    free_.clear();
    std::fill(tree_.begin(), tree_.end(), 0.0);
  }
  int64_t size() const override { return static_cast<int64_t>(slot_.size()); }
  std::string DebugString() const override {
    return absl::StrCat("prioritized(exponent=", exponent_, ")");
  }

 private:
  void Grow() {
    size_t old = capacity_;
    std::vector<double> leaves(tree_.begin() + old, tree_.begin() + 2 * old);
    capacity_ *= 2;
    tree_.assign(2 * capacity_, 0.0);
    for (size_t i = 0; i < leaves.size(); ++i) tree_[capacity_ + i] = leaves[i];
    for (size_t n = capacity_ - 1; n >= 1; --n) tree_[n] = tree_[2 * n] + tree_[2 * n + 1];
  }
  void Set(size_t s, double value) {
    size_t n = capacity_ + s;
    tree_[n] = value;
    for (n /= 2; n >= 1; n /= 2) tree_[n] = tree_[2 * n] + tree_[2 * n + 1];
  }
  const double exponent_;
  size_t capacity_ = 1;
  std::vector<double> tree_ = std::vector<double>(2, 0.0);  // 1-based; leaves at [capacity_, 2c)
  std::vector<uint64_t> keys_;                              // by slot
  std::unordered_map<uint64_t, size_t> slot_;
  std::vector<size_t> free_;
};

// Max- or min-heap on priority; ties broken by insertion order (older first).
class HeapSelector : public ItemSelector {
 public:
  explicit HeapSelector(bool max) : max_(max) {}
  absl::Status Insert(uint64_t key, double priority) override {
    if (entries_.count(key)) return Present(key);
    uint64_t order = next_order_++;
    entries_[key] = {priority, order};
    heap_.insert({Ordered(priority), order, key});
    return absl::OkStatus();
  }
  absl::Status Update(uint64_t key, double priority) override {
    auto it = entries_.find(key);
    if (it == entries_.end()) return Missing(key);
    heap_.erase({Ordered(it->second.first), it->second.second, key});
    it->second.first = priority;
    heap_.insert({Ordered(priority), it->second.second, key});
    return absl::OkStatus();
  }
  absl::Status Delete(uint64_t key) override {
    auto it = entries_.find(key);
    if (it == entries_.end()) return Missing(key);
    heap_.erase({Ordered(it->second.first), it->second.second, key});
    entries_.erase(it);
    return absl::OkStatus();
  }
  absl::StatusOr<SelectedKey> Select(std::mt19937_64&) override {
    if (heap_.empty()) return Empty();
    return SelectedKey{std::get<2>(*heap_.begin()), 1.0};
  }
  void Clear() override {
    heap_.clear();
    entries_.clear();
  }
  int64_t size() const override { return static_cast<int64_t>(entries_.size()); }
  std::string DebugString() const override { return max_ ? "max_heap" : "min_heap"; }

 private:
  // The set is ordered ascending: negate for a max-heap so the top is first.
  double Ordered(double p) const { return max_ ? -p : p; }
  const bool max_;
  uint64_t next_order_ = 0;
  std::set<std::tuple<double, uint64_t, uint64_t>> heap_;
  std::unordered_map<uint64_t, std::pair<double, uint64_t>> entries_;
};

}  // namespace

std::vector<std::string> SelectorKinds() {
  return {"fifo", "lifo", "uniform", "prioritized", "max_heap", "min_heap"};
}

absl::StatusOr<std::unique_ptr<ItemSelector>> MakeSelector(const std::string& kind,
                                                           double priority_exponent) {
  if (kind == "fifo") return std::make_unique<OrderSelector>(false);
  if (kind == "lifo") return std::make_unique<OrderSelector>(true);
  if (kind == "uniform") return std::make_unique<UniformSelector>();
  if (kind == "prioritized") {
    if (!(priority_exponent >= 0) || !std::isfinite(priority_exponent)) {
      return absl::InvalidArgumentError("priority_exponent must be finite and >= 0");
    }
    return std::make_unique<PrioritizedSelector>(priority_exponent);
  }
  if (kind == "max_heap") return std::make_unique<HeapSelector>(true);
  if (kind == "min_heap") return std::make_unique<HeapSelector>(false);
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown selector '", kind, "' (known: ", absl::StrJoin(SelectorKinds(), ", "), ")"));
}

}  // namespace rally
