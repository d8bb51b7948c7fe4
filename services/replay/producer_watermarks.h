// The idempotency keys of inserts: which (producer, sequence) pairs a job already stores.
//
// A producer is (actor_id, incarnation). The actor id is a stable name (a restarted Kubernetes
// container keeps its pod's); the incarnation is a non-zero number the producer draws at random
// each time it starts. A restarted actor numbers its trajectories from 1 again, under a new
// incarnation, so it is a new producer and none of its items is taken for a resend of its
// earlier life's. Keys of one producer never affect another's.
//
// Within a producer, items are sent in order on one stream at a time, and after a reconnect the
// producer resends, in order, the items it saw no ack for. So the highest stored sequence per
// producer (its watermark) tells a resend from a new item: a sequence at or below it is a
// duplicate, unless it is a hole: an item given up (refused, or withdrawn because the log could
// not make it durable) while later ones of the same producer were stored. A claim is held
// from the item's arrival until it is known stored and durable (its ack) or given up; a resend
// that arrives meanwhile (a reconnect while the old stream's copy waits on a rate limiter or a
// commit) waits in Claim() until the first copy's fate is known, so exactly one is stored.
//
// Keyless items (actor_id empty, incarnation 0, sequence 0) are not deduplicated: stored at least
// once, twice if resent. rally's actors never send them; docs/replay.md says so. A partial key is
// refused with INVALID_ARGUMENT naming the missing field.
//
// Memory: one entry per producer, at most `max_producers`; past that, the producers that stored
// least recently (and have nothing in flight) are forgotten, an eighth at a time. A forgotten
// producer's resends would be stored again, so the bound is far above the number of producers a
// job has (actors × restarts).
//
// Thread safety: all methods may be called from any thread. Claim() may block (see above) until
// the claim it waits for is released; a claim is released by MarkStored() or by its destruction.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "rally/v1/replay_storage.pb.h"
#include "rally/v1/trajectory.pb.h"

namespace rally {

class ProducerWatermarks;

// The right to store one keyed item: held from Claim() until the item is stored (MarkStored) or
// given up (destruction). Movable, not copyable.
class ProducerClaim {
 public:
  ProducerClaim() = default;
  ProducerClaim(ProducerClaim&& other) noexcept { *this = std::move(other); }
  ProducerClaim& operator=(ProducerClaim&& other) noexcept;
  ~ProducerClaim();

  // The item is stored already (a resend): acknowledge it without storing it again.
  bool duplicate() const { return duplicate_; }
  // The item was stored: raises the producer's watermark and releases the claim.
  void MarkStored();

 private:
  friend class ProducerWatermarks;
  void Release(bool stored);

  ProducerWatermarks* owner_ = nullptr;  // null: nothing to release (keyless or duplicate)
  std::string actor_id_;
  uint64_t incarnation_ = 0;
  uint64_t sequence_ = 0;
  bool duplicate_ = false;
};

class ProducerWatermarks {
 public:
  static constexpr size_t kDefaultMaxProducers = 1 << 16;
  explicit ProducerWatermarks(size_t max_producers = kDefaultMaxProducers)
      : max_producers_(max_producers) {}

  // INVALID_ARGUMENT naming the field when the key of `t` is partial; OK for a full key or none.
  static absl::Status ValidateKey(const v1::Trajectory& t);
  static bool Keyless(const v1::Trajectory& t) {
    return t.actor_id().empty() && t.incarnation() == 0 && t.sequence() == 0;
  }

  // Claims the item's key: a duplicate claim for a resend of a stored item; otherwise a claim
  // to store it, after waiting for any copy of the same key still in flight. Keyless items get
  // an empty claim. Fails only for a partial key.
  absl::StatusOr<ProducerClaim> Claim(const v1::Trajectory& t) ABSL_LOCKS_EXCLUDED(mu_);
  // Whether `t`'s key is stored already (no claim; keyless: false).
  bool IsStored(const v1::Trajectory& t) const ABSL_LOCKS_EXCLUDED(mu_);
  // Raises the watermark of `t`'s producer to its sequence, without a claim: recovery.
  void Restore(const v1::Trajectory& t) ABSL_LOCKS_EXCLUDED(mu_);

  // The watermarks as a snapshot stores them, and back (with a snapshot's legacy per-actor
  // watermarks read as incarnation 0).
  // `also_stored`: items the snapshot holds whose claims are still in flight; they count as
  // stored in it.
  void SaveTo(v1::ReplaySnapshot* snapshot,
              const std::vector<std::shared_ptr<const v1::Trajectory>>& also_stored = {}) const
      ABSL_LOCKS_EXCLUDED(mu_);
  void RestoreFrom(const v1::ReplaySnapshot& snapshot) ABSL_LOCKS_EXCLUDED(mu_);

  size_t producers() const ABSL_LOCKS_EXCLUDED(mu_);
  // Producers forgotten to keep within max_producers.
  int64_t forgotten() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class ProducerClaim;
  using Producer = std::pair<std::string, uint64_t>;  // (actor_id, incarnation)
  struct State {
    uint64_t watermark = 0;
    std::set<uint64_t> in_flight;  // sequences claimed and not yet stored or given up
    std::set<uint64_t> holes;      // sequences given up (not stored), at most kMaxHoles
    uint64_t last_used = 0;        // tick_ of the last claim or store
  };
  struct Awaited {
    const State* state;
    uint64_t sequence;
  };
  void Release(const Producer& producer, uint64_t sequence, bool stored) ABSL_LOCKS_EXCLUDED(mu_);
  void Raise(const Producer& producer, uint64_t sequence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetOldestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Holes kept per producer: a producer resends its unacknowledged items soon, so the oldest
  // ones are long resolved.
  static constexpr size_t kMaxHoles = 4096;
  const size_t max_producers_;
  mutable absl::Mutex mu_;
  std::map<Producer, State> producers_ ABSL_GUARDED_BY(mu_);
  uint64_t tick_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t forgotten_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rally
