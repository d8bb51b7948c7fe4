#include "services/replay/producer_watermarks.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"

namespace rally {

ProducerClaim& ProducerClaim::operator=(ProducerClaim&& other) noexcept {
  if (this != &other) {
    Release(/*stored=*/false);
    owner_ = std::exchange(other.owner_, nullptr);
    actor_id_ = std::move(other.actor_id_);
    incarnation_ = other.incarnation_;
    sequence_ = other.sequence_;
    duplicate_ = other.duplicate_;
  }
  return *this;
}

ProducerClaim::~ProducerClaim() { Release(/*stored=*/false); }

void ProducerClaim::MarkStored() { Release(/*stored=*/true); }

void ProducerClaim::Release(bool stored) {
  if (owner_ == nullptr) return;
  std::exchange(owner_, nullptr)->Release({actor_id_, incarnation_}, sequence_, stored);
}

absl::Status ProducerWatermarks::ValidateKey(const v1::Trajectory& t) {
  if (Keyless(t)) return absl::OkStatus();
  auto missing = [&](const char* field) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": missing from the key (actor_id '", t.actor_id(), "', incarnation ",
        t.incarnation(), ", sequence ", t.sequence(),
        "); set actor_id, a non-zero incarnation and a sequence from 1, or none of them"));
  };
  if (t.actor_id().empty()) return missing("actor_id");
  if (t.incarnation() == 0) return missing("incarnation");
  if (t.sequence() == 0) return missing("sequence");
  return absl::OkStatus();
}

absl::StatusOr<ProducerClaim> ProducerWatermarks::Claim(const v1::Trajectory& t) {
  if (absl::Status s = ValidateKey(t); !s.ok()) return s;
  ProducerClaim claim;
  if (Keyless(t)) return claim;
  const Producer producer{t.actor_id(), t.incarnation()};
  absl::MutexLock lock(&mu_);
  State& state = producers_[producer];
  // The same key in flight (a resend racing its first copy): wait for the first's fate.
  // `state` stays valid: an entry with a claim in flight is never forgotten.
  Awaited awaited{&state, t.sequence()};
  mu_.Await(absl::Condition(
      +[](Awaited* a) { return a->state->in_flight.count(a->sequence) == 0; }, &awaited));
  state.last_used = ++tick_;
  if (t.sequence() <= state.watermark && state.holes.count(t.sequence()) == 0) {
    claim.duplicate_ = true;
    return claim;
  }
  state.in_flight.insert(t.sequence());
  claim.owner_ = this;
  claim.actor_id_ = t.actor_id();
  claim.incarnation_ = t.incarnation();
  claim.sequence_ = t.sequence();
  if (producers_.size() > max_producers_) ForgetOldestLocked();
  return claim;
}

bool ProducerWatermarks::IsStored(const v1::Trajectory& t) const {
  if (Keyless(t)) return false;
  absl::MutexLock lock(&mu_);
  auto it = producers_.find({t.actor_id(), t.incarnation()});
  return it != producers_.end() && t.sequence() <= it->second.watermark &&
         it->second.holes.count(t.sequence()) == 0;
}

void ProducerWatermarks::Restore(const v1::Trajectory& t) {
  if (Keyless(t) || !ValidateKey(t).ok()) return;
  absl::MutexLock lock(&mu_);
  Raise({t.actor_id(), t.incarnation()}, t.sequence());
}

void ProducerWatermarks::Release(const Producer& producer, uint64_t sequence, bool stored) {
  absl::MutexLock lock(&mu_);
  auto it = producers_.find(producer);
  if (it == producers_.end()) return;
  State& state = it->second;
  state.in_flight.erase(sequence);
  if (stored) {
    Raise(producer, sequence);
    return;
  }
  // Not stored: once a later item is (now or in a moment, from another item in flight), this
  // one must not pass for a duplicate.
  state.holes.insert(sequence);
  if (state.holes.size() > kMaxHoles) state.holes.erase(state.holes.begin());
}

void ProducerWatermarks::Raise(const Producer& producer, uint64_t sequence) {
  State& state = producers_[producer];
  state.holes.erase(sequence);
  state.watermark = std::max(state.watermark, sequence);
  state.last_used = ++tick_;
}

void ProducerWatermarks::ForgetOldestLocked() {
  std::vector<std::pair<uint64_t, Producer>> idle;
  for (const auto& [producer, state] : producers_) {
    if (state.in_flight.empty()) idle.emplace_back(state.last_used, producer);
  }
  const size_t forget = std::min(idle.size(), std::max<size_t>(1, max_producers_ / 8));
  std::nth_element(idle.begin(), idle.begin() + static_cast<ptrdiff_t>(forget), idle.end());
  for (size_t i = 0; i < forget; ++i) producers_.erase(idle[i].second);
  forgotten_ += static_cast<int64_t>(forget);
}

void ProducerWatermarks::SaveTo(
    v1::ReplaySnapshot* snapshot,
    const std::vector<std::shared_ptr<const v1::Trajectory>>& also_stored) const {
  std::map<Producer, std::pair<uint64_t, std::set<uint64_t>>> saved;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [producer, state] : producers_) {
      if (state.watermark > 0) saved[producer] = {state.watermark, state.holes};
    }
  }
  // Items in flight that the snapshot holds count as stored in it.
  for (const auto& t : also_stored) {
    if (Keyless(*t) || !ValidateKey(*t).ok()) continue;
    auto& [watermark, holes] = saved[{t->actor_id(), t->incarnation()}];
    holes.erase(t->sequence());
    watermark = std::max(watermark, t->sequence());
  }
  for (const auto& [producer, state] : saved) {
    v1::ProducerWatermark* w = snapshot->add_producers();
    w->set_actor_id(producer.first);
    w->set_incarnation(producer.second);
    w->set_sequence(state.first);
    for (uint64_t hole : state.second) w->add_holes(hole);
  }
}

void ProducerWatermarks::RestoreFrom(const v1::ReplaySnapshot& snapshot) {
  absl::MutexLock lock(&mu_);
  for (const auto& [actor, sequence] : snapshot.watermarks()) Raise({actor, 0}, sequence);
  for (const v1::ProducerWatermark& w : snapshot.producers()) {
    const Producer producer{w.actor_id(), w.incarnation()};
    Raise(producer, w.sequence());
    producers_[producer].holes.insert(w.holes().begin(), w.holes().end());
  }
}

size_t ProducerWatermarks::producers() const {
  absl::MutexLock lock(&mu_);
  return producers_.size();
}

int64_t ProducerWatermarks::forgotten() const {
  absl::MutexLock lock(&mu_);
  return forgotten_;
}

}  // namespace rally
