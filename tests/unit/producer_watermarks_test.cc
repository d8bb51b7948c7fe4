#include "services/replay/producer_watermarks.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <thread>

namespace rally {
namespace {

v1::Trajectory Keyed(const std::string& actor, uint64_t incarnation, uint64_t sequence) {
  v1::Trajectory t;
  t.set_actor_id(actor);
  t.set_incarnation(incarnation);
  t.set_sequence(sequence);
  return t;
}

// Claims and stores like the insert path: true if the item was stored, false for a duplicate.
bool Store(ProducerWatermarks& w, const v1::Trajectory& t) {
  auto claim = w.Claim(t);
  EXPECT_TRUE(claim.ok()) << claim.status();
  if (!claim.ok() || claim->duplicate()) return false;
  claim->MarkStored();
  return true;
}

TEST(ProducerWatermarks, ResendsOfOneIncarnationAreStoredExactlyOnce) {
  ProducerWatermarks w;
  for (uint64_t s = 1; s <= 5; ++s) EXPECT_TRUE(Store(w, Keyed("actor-0/job", 7, s)));
  // A reconnect resends 3..5, then goes on with 6.
  for (uint64_t s = 3; s <= 5; ++s) EXPECT_FALSE(Store(w, Keyed("actor-0/job", 7, s)));
  EXPECT_TRUE(Store(w, Keyed("actor-0/job", 7, 6)));
  EXPECT_TRUE(w.IsStored(Keyed("actor-0/job", 7, 6)));
  EXPECT_FALSE(w.IsStored(Keyed("actor-0/job", 7, 7)));
}

TEST(ProducerWatermarks, AnActorRestartedUnderItsNameStoresEverythingItSendsAgain) {
  // Before incarnations, the restarted actor's items 1..100 were all "duplicates" of its first
  // life's and dropped.
  ProducerWatermarks w;
  for (uint64_t s = 1; s <= 100; ++s) ASSERT_TRUE(Store(w, Keyed("actor-0/job", 11, s)));
  int stored = 0;
  for (uint64_t s = 1; s <= 100; ++s) stored += Store(w, Keyed("actor-0/job", 12, s));
  EXPECT_EQ(stored, 100);
  EXPECT_EQ(w.producers(), 2u);
}

TEST(ProducerWatermarks, OneProducersKeysCannotSilenceAnother) {
  ProducerWatermarks w;
  ASSERT_TRUE(Store(w, Keyed("victim", 1, 1)));
  // Another client claims the victim's name with the highest sequence there is.
  EXPECT_TRUE(Store(w, Keyed("victim", 999, std::numeric_limits<uint64_t>::max())));
  EXPECT_TRUE(Store(w, Keyed("victim", 1, 2)));
  EXPECT_TRUE(Store(w, Keyed("victim", 1, 3)));
}

TEST(ProducerWatermarks, PartialKeysAreRefusedNamingTheField) {
  ProducerWatermarks w;
  struct Case {
    v1::Trajectory t;
    const char* field;
  };
  for (const Case& c : {Case{Keyed("", 1, 1), "actor_id"}, Case{Keyed("a", 0, 1), "incarnation"},
                        Case{Keyed("a", 1, 0), "sequence"}, Case{Keyed("", 0, 5), "actor_id"}}) {
    auto claim = w.Claim(c.t);
    ASSERT_FALSE(claim.ok()) << c.field;
    EXPECT_EQ(claim.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(claim.status().message().rfind(c.field, 0), 0u) << claim.status();
  }
  EXPECT_EQ(w.producers(), 0u);
}

TEST(ProducerWatermarks, KeylessItemsAreNeverTakenForDuplicates) {
  ProducerWatermarks w;
  EXPECT_TRUE(Store(w, v1::Trajectory()));
  EXPECT_TRUE(Store(w, v1::Trajectory()));  // at least once: a resend is stored again
  EXPECT_FALSE(w.IsStored(v1::Trajectory()));
  EXPECT_EQ(w.producers(), 0u);
}

TEST(ProducerWatermarks, AResendRacingItsFirstCopyWaitsAndIsStoredOnce) {
  ProducerWatermarks w;
  const v1::Trajectory t = Keyed("a", 3, 1);
  auto first = w.Claim(t);
  ASSERT_TRUE(first.ok());
  ASSERT_FALSE(first->duplicate());
  std::atomic<bool> decided{false};
  std::atomic<bool> duplicate{false};
  std::thread resend([&] {
    auto second = w.Claim(t);
    ASSERT_TRUE(second.ok());
    duplicate = second->duplicate();
    decided = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(decided);  // waits while the first copy is being stored
  first->MarkStored();
  resend.join();
  EXPECT_TRUE(duplicate);
}

TEST(ProducerWatermarks, AClaimGivenUpLetsTheResendStore) {
  ProducerWatermarks w;
  const v1::Trajectory t = Keyed("a", 3, 1);
  {
    auto first = w.Claim(t);
    ASSERT_TRUE(first.ok());
  }  // dropped without storing: the insert was cancelled or refused
  EXPECT_TRUE(Store(w, t));
}

TEST(ProducerWatermarks, SnapshotsCarryEveryProducerAndReadTheOlderPerActorForm) {
  ProducerWatermarks w;
  ASSERT_TRUE(Store(w, Keyed("a", 1, 4)));
  ASSERT_TRUE(Store(w, Keyed("a", 2, 9)));
  v1::ReplaySnapshot snapshot;
  w.SaveTo(&snapshot);
  EXPECT_EQ(snapshot.producers_size(), 2);
  (*snapshot.mutable_watermarks())["legacy"] = 6;
  ProducerWatermarks restored;
  restored.RestoreFrom(snapshot);
  EXPECT_TRUE(restored.IsStored(Keyed("a", 1, 4)));
  EXPECT_FALSE(restored.IsStored(Keyed("a", 1, 5)));
  EXPECT_TRUE(restored.IsStored(Keyed("a", 2, 9)));
  EXPECT_EQ(restored.producers(), 3u);
}

TEST(ProducerWatermarks, ForgetsTheLeastRecentProducersBeyondItsBound) {
  ProducerWatermarks w(/*max_producers=*/16);
  for (uint64_t i = 1; i <= 17; ++i) ASSERT_TRUE(Store(w, Keyed("p", i, 1)));
  // Past 16, an eighth (2) of the least recently used are forgotten: incarnations 1 and 2.
  EXPECT_EQ(w.producers(), 15u);
  EXPECT_EQ(w.forgotten(), 2);
  EXPECT_FALSE(w.IsStored(Keyed("p", 1, 1)));
  EXPECT_FALSE(w.IsStored(Keyed("p", 2, 1)));
  EXPECT_TRUE(w.IsStored(Keyed("p", 3, 1)));
  EXPECT_TRUE(w.IsStored(Keyed("p", 17, 1)));
}

TEST(ProducerWatermarks, AnItemGivenUpWhileALaterOneIsStoredIsStoredWhenResent) {
  // Items 1 and 2 in flight; 2 becomes durable, 1 is withdrawn (its commit failed). The
  // writer sends 1 (and 2) again: 1 is stored, 2 is a duplicate. Before holes, the watermark 2
  // made 1 pass for a duplicate, and it was lost.
  ProducerWatermarks w;
  auto first = w.Claim(Keyed("a", 1, 1));
  auto second = w.Claim(Keyed("a", 1, 2));
  ASSERT_TRUE(first.ok() && second.ok());
  second->MarkStored();
  *first = ProducerClaim();  // given up
  EXPECT_FALSE(w.IsStored(Keyed("a", 1, 1)));
  v1::ReplaySnapshot snapshot;
  w.SaveTo(&snapshot);
  ASSERT_EQ(snapshot.producers_size(), 1);
  EXPECT_EQ(snapshot.producers(0).holes_size(), 1);
  EXPECT_TRUE(Store(w, Keyed("a", 1, 1)));
  EXPECT_FALSE(Store(w, Keyed("a", 1, 2)));
  EXPECT_FALSE(Store(w, Keyed("a", 1, 1)));
  // A restart from the snapshot taken while 1 was a hole stores its resend too.
  ProducerWatermarks restored;
  restored.RestoreFrom(snapshot);
  EXPECT_TRUE(Store(restored, Keyed("a", 1, 1)));
  EXPECT_FALSE(Store(restored, Keyed("a", 1, 2)));
}

TEST(ProducerWatermarks, ASnapshotCountsTheItemsItHoldsThatAreStillInFlight) {
  ProducerWatermarks w;
  ASSERT_TRUE(Store(w, Keyed("a", 1, 1)));
  auto in_flight = w.Claim(Keyed("a", 1, 2));  // in the tables, not yet durable-acknowledged
  ASSERT_TRUE(in_flight.ok());
  v1::ReplaySnapshot snapshot;
  w.SaveTo(&snapshot, {std::make_shared<const v1::Trajectory>(Keyed("a", 1, 2))});
  ProducerWatermarks restored;
  restored.RestoreFrom(snapshot);
  EXPECT_TRUE(restored.IsStored(Keyed("a", 1, 2)));  // its resend after a restart: a duplicate
}

}  // namespace
}  // namespace rally
