// The replay's insert path below gRPC: the TrajectoryPool that lends ParseInsertRequest recycled
// trajectories, and the writer's EncodeTrajectory that makes the bytes it parses. The parser's
// own tests are in insert_wire_test.cc.
#include <gtest/gtest.h>

#include <set>

#include "common/net/proto_wire.h"
#include "services/actor/replay_writer.h"
#include "services/replay/replay_service.h"
#include "services/replay/trajectory_pool.h"
#include "tests/unit/insert_test_util.h"

namespace rally {
namespace {

using insert_test::Buffer;
using insert_test::Tokens;

TEST(TrajectoryPool, KeepsReleasedTrajectoriesClearedUpToItsBound) {
  auto pool = TrajectoryPool::Create(2);
  std::vector<v1::Trajectory*> made;
  {
    std::vector<std::shared_ptr<v1::Trajectory>> held;
    for (int i = 0; i < 3; ++i) {
      auto t = pool->Take();
      *t = Tokens(i + 1, 100);
      made.push_back(t.get());
      held.push_back(pool->Share(std::move(t)));
    }
    auto copy = held[0];
    held.clear();  // the second and third go back; the first is still held by `copy`
    EXPECT_EQ(pool->kept(), 2u);
  }
  EXPECT_EQ(pool->kept(), 2u);  // full: the first, released last, was deleted
  auto a = pool->Take();
  auto b = pool->Take();
  EXPECT_EQ(a->ByteSizeLong(), 0u);
  EXPECT_EQ(b->ByteSizeLong(), 0u);
  std::set<v1::Trajectory*> taken = {a.get(), b.get()};
  EXPECT_EQ(taken, (std::set<v1::Trajectory*>{made[1], made[2]}));
  EXPECT_EQ(pool->kept(), 0u);
  EXPECT_NE(pool->Take(), nullptr);  // an empty pool makes a new one
}

TEST(ParseInsertRequest, ParsesIntoARecycledTrajectoryAsIntoAFreshOne) {
  auto pool = TrajectoryPool::Create(4);
  {
    auto old = pool->Take();
    *old = Tokens(9, 20000);
    old->set_opponent_id("snapshot-3");
    pool->Share(std::move(old));  // released at once: kept, cleared
  }
  ASSERT_EQ(pool->kept(), 1u);
  v1::InsertRequest req;
  req.add_tables("queue");
  *req.mutable_trajectory() = Tokens(1, 300);
  grpc::ByteBuffer buffer = Buffer(req.SerializeAsString(), 3);
  std::vector<InsertItem> items;
  ASSERT_TRUE(ParseInsertRequest(
                  buffer, [&] { return pool->Take(); }, /*keep_wire=*/true, &items)
                  .ok());
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(pool->kept(), 0u);
  EXPECT_EQ(items[0].trajectory->SerializeAsString(), Tokens(1, 300).SerializeAsString());
}

}  // namespace
// A trajectory with a board-game turn and a language-model turn whose arrays are large.
v1::Trajectory Mixed() {
  v1::Trajectory t;
  t.set_game("tictactoe");
  t.set_task_id("variant-2");
  t.set_opponent_id("snapshot-4");
  v1::Turn* board = t.add_turns();
  board->set_seat(1);
  for (int i = 0; i < 27; ++i) board->add_observation(i * 0.5f);
  board->add_legal_actions(3);
  board->add_legal_actions(8);
  board->set_action(8);
  board->add_behaviour_log_probs(-0.25f);
  board->set_policy_version(12);
  v1::Turn* lm = t.add_turns();
  lm->set_seat(0);
  lm->set_role("solver");
  for (uint32_t i = 0; i < 5000; ++i) lm->add_observation_tokens(i * 7919u);
  for (uint32_t i = 0; i < 2000; ++i) lm->add_action_tokens(150000u - i);
  for (int i = 0; i < 2000; ++i) lm->add_behaviour_log_probs(-0.001f * static_cast<float>(i));
  lm->add_observation(2.0f);  // small: encoded, not referenced
  lm->set_reward(1.0f);
  lm->set_policy_version(13);
  t.add_turns()->set_seat(1);  // after the large one: the turns' order is kept
  t.add_returns(1.0f);
  t.add_returns(-1.0f);
  t.add_learning_seats(0);
  t.set_truncated(true);
  t.set_actor_id("not the writer's");
  return t;
}

TEST(EncodeTrajectory, ReferencesALanguageModelTurnsArraysAndParsesToTheKeyedTrajectory) {
  auto t = std::make_shared<const v1::Trajectory>(Mixed());
  std::vector<grpc::Slice> slices = EncodeTrajectory(t, {"actor-3", 77, 42});
  v1::Trajectory expected = *t;
  expected.set_actor_id("actor-3");
  expected.set_incarnation(77);
  expected.set_sequence(42);

  v1::Trajectory parsed;
  const std::string bytes = JoinSlices(slices);
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.SerializeAsString(), expected.SerializeAsString());
  EXPECT_EQ(bytes.size(), expected.ByteSizeLong());
  // The three large arrays are slices of their own over the trajectory's memory.
  const v1::Turn& lm = t->turns(1);
  auto referenced = [&](const void* data, size_t bytes) {
    return std::count_if(slices.begin(), slices.end(), [&](const grpc::Slice& s) {
      return s.begin() == data && s.size() == bytes;
    });
  };
  EXPECT_EQ(referenced(lm.observation_tokens().data(), 5000 * 4), 1);
  EXPECT_EQ(referenced(lm.action_tokens().data(), 2000 * 4), 1);
  EXPECT_EQ(referenced(lm.behaviour_log_probs().data(), 2000 * 4), 1);
  EXPECT_EQ(slices.size(), 7u);  // encoded, array, encoded, array, encoded, array, encoded

  // Parsed by the replay as the item of an InsertRequest, across the same slices.
  std::string head;
  AppendFieldHeader(head, v1::InsertRequest::kTablesFieldNumber, 5);
  head += "queue";
  AppendFieldHeader(head, v1::InsertRequest::kTrajectoryFieldNumber, bytes.size());
  std::vector<grpc::Slice> request = {grpc::Slice(head)};
  request.insert(request.end(), slices.begin(), slices.end());
  grpc::ByteBuffer buffer(request.data(), request.size());
  auto pool = TrajectoryPool::Create(2);
  std::vector<InsertItem> items;
  ASSERT_TRUE(ParseInsertRequest(
                  buffer, [&] { return pool->Take(); }, /*keep_wire=*/true, &items)
                  .ok());
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].trajectory->SerializeAsString(), expected.SerializeAsString());
  EXPECT_EQ(std::string(items[0].trajectory_wire), bytes);
}

TEST(EncodeTrajectory, TheSlicesHoldTheTrajectory) {
  auto t = std::make_shared<const v1::Trajectory>(Mixed());
  std::weak_ptr<const v1::Trajectory> weak = t;
  std::vector<grpc::Slice> slices = EncodeTrajectory(std::move(t), {"a", 1, 1});
  std::vector<grpc::Slice> copies = {slices[1]};  // a second reference to one array's slice
  slices.clear();
  EXPECT_FALSE(weak.expired());
  copies.clear();
  EXPECT_TRUE(weak.expired());
}

TEST(EncodeTrajectory, SmallArraysAndUnknownFieldsAreEncodedWhole) {
  // Nothing large: one encoded slice, the bytes the copying path makes.
  auto small = std::make_shared<const v1::Trajectory>(Tokens(0, kReferenceArrayBytes / 4 - 1));
  std::vector<grpc::Slice> slices = EncodeTrajectory(small, {"a", 1, 5});
  ASSERT_EQ(slices.size(), 1u);
  v1::Trajectory expected = *small;
  expected.set_actor_id("a");
  expected.set_incarnation(1);
  expected.set_sequence(5);
  v1::Trajectory parsed;
  ASSERT_TRUE(parsed.ParseFromString(JoinSlices(slices)));
  EXPECT_EQ(parsed.SerializeAsString(), expected.SerializeAsString());

  // A field from a newer build (unknown here) in a turn with a large array: kept, by encoding
  // the trajectory whole rather than field by field.
  v1::Trajectory newer = Mixed();
  newer.mutable_turns(1)
      ->GetReflection()
      ->MutableUnknownFields(newer.mutable_turns(1))
      ->AddVarint(99, 7);
  auto shared = std::make_shared<const v1::Trajectory>(newer);
  slices = EncodeTrajectory(shared, {"a", 1, 6});
  ASSERT_EQ(slices.size(), 1u);
  ASSERT_TRUE(parsed.ParseFromString(JoinSlices(slices)));
  EXPECT_EQ(parsed.turns(1).GetReflection()->GetUnknownFields(parsed.turns(1)).field_count(), 1);
  EXPECT_EQ(parsed.turns(1).observation_tokens_size(), 5000);
  EXPECT_EQ(parsed.sequence(), 6u);
}

}  // namespace rally
