// The replay's insert path below gRPC: ParseInsertRequest over raw request bytes, the
// TrajectoryPool that lends it recycled trajectories, and the writer's EncodeTrajectory that
// makes those bytes.
#include <gtest/gtest.h>

#include <cstring>
#include <set>

#include "common/net/proto_wire.h"
#include "services/actor/replay_writer.h"
#include "services/replay/replay_service.h"
#include "services/replay/trajectory_pool.h"

namespace rally {
namespace {

v1::Trajectory Tokens(uint64_t sequence, int tokens) {
  v1::Trajectory t;
  t.set_game("tictactoe");
  t.set_actor_id("a");
  t.set_sequence(sequence);
  v1::Turn* turn = t.add_turns();
  for (int i = 0; i < tokens; ++i) turn->add_observation_tokens(i);
  return t;
}

// `bytes` as a ByteBuffer of `pieces` slices, as gRPC hands over a message read in parts.
grpc::ByteBuffer Buffer(const std::string& bytes, int pieces) {
  std::vector<grpc::Slice> slices;
  const size_t step = bytes.size() / pieces + 1;
  for (size_t at = 0; at < bytes.size(); at += step) {
    slices.emplace_back(bytes.data() + at, std::min(step, bytes.size() - at));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

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

TEST(ParseInsertRequest, ReadsTheRequestsItemThenItsMoreInOrderAcrossSlices) {
  v1::InsertRequest req;
  req.add_tables("queue");
  req.add_tables("buffer");
  req.set_priority(2.5);
  *req.mutable_trajectory() = Tokens(1, 5000);
  v1::InsertRequest* second = req.add_more();
  second->add_tables("queue");
  second->set_trajectory_zstd("not really zstd");
  v1::InsertRequest* third = req.add_more();
  third->add_tables("queue");
  *third->mutable_trajectory() = Tokens(3, 10);
  *third->add_more()->mutable_trajectory() = Tokens(4, 1);

  auto pool = TrajectoryPool::Create(4);
  grpc::ByteBuffer buffer = Buffer(req.SerializeAsString(), 7);
  std::vector<InsertItem> items;
  ASSERT_TRUE(ParseInsertRequest(buffer, *pool, /*keep_wire=*/true, &items).ok());
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].tables, (std::vector<std::string>{"queue", "buffer"}));
  EXPECT_EQ(items[0].priority, 2.5);
  ASSERT_NE(items[0].trajectory, nullptr);
  EXPECT_EQ(items[0].trajectory->SerializeAsString(), Tokens(1, 5000).SerializeAsString());
  EXPECT_FALSE(items[0].nested_more);
  // The trajectory's bytes as sent, taken from the slices (the first item's span several).
  EXPECT_EQ(std::string(items[0].trajectory_wire), Tokens(1, 5000).SerializeAsString());
  EXPECT_EQ(std::string(items[2].trajectory_wire), Tokens(3, 10).SerializeAsString());
  EXPECT_TRUE(items[1].trajectory_wire.empty());
  EXPECT_EQ(items[1].trajectory, nullptr);
  EXPECT_EQ(items[1].trajectory_zstd, "not really zstd");
  EXPECT_EQ(items[1].priority, 0);
  ASSERT_NE(items[2].trajectory, nullptr);
  EXPECT_EQ(items[2].trajectory->sequence(), 3u);
  EXPECT_TRUE(items[2].nested_more);  // refused later, by the stream, naming `more`

  // Without a write-ahead log the bytes are not kept; the items are the same.
  grpc::ByteBuffer again = Buffer(req.SerializeAsString(), 7);
  ASSERT_TRUE(ParseInsertRequest(again, *pool, /*keep_wire=*/false, &items).ok());
  ASSERT_EQ(items.size(), 3u);
  EXPECT_TRUE(items[0].trajectory_wire.empty());
  EXPECT_EQ(items[0].trajectory->SerializeAsString(), Tokens(1, 5000).SerializeAsString());
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
  ASSERT_TRUE(ParseInsertRequest(buffer, *pool, /*keep_wire=*/true, &items).ok());
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(pool->kept(), 0u);
  EXPECT_EQ(items[0].trajectory->SerializeAsString(), Tokens(1, 300).SerializeAsString());
}

TEST(ParseInsertRequest, ATrajectorySentInTwoPartsIsMergedAndItsBytesJoined) {
  // Protobuf merges two occurrences of a message field; a sender may append fields (the writer
  // appends its actor id and sequence) as a second one. The bytes kept for the log are both
  // parts, which parse to the same merged trajectory.
  v1::Trajectory body = Tokens(0, 2000);
  body.clear_actor_id();
  v1::Trajectory key;
  key.set_actor_id("w");
  key.set_sequence(7);
  v1::InsertRequest first, second;
  first.add_tables("queue");
  *first.mutable_trajectory() = body;
  *second.mutable_trajectory() = key;
  auto pool = TrajectoryPool::Create(4);
  grpc::ByteBuffer buffer = Buffer(first.SerializeAsString() + second.SerializeAsString(), 5);
  std::vector<InsertItem> items;
  ASSERT_TRUE(ParseInsertRequest(buffer, *pool, /*keep_wire=*/true, &items).ok());
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].trajectory->actor_id(), "w");
  EXPECT_EQ(items[0].trajectory->sequence(), 7u);
  EXPECT_EQ(items[0].trajectory->turns(0).observation_tokens_size(), 2000);
  EXPECT_EQ(std::string(items[0].trajectory_wire),
            body.SerializeAsString() + key.SerializeAsString());
  v1::Trajectory logged;
  ASSERT_TRUE(logged.ParseFromString(std::string(items[0].trajectory_wire)));
  EXPECT_EQ(logged.SerializeAsString(), items[0].trajectory->SerializeAsString());
}

TEST(ParseInsertRequest, TheLogsBytesOutliveTheRequestWhenItsSlicesAreSmall) {
  // gRPC keeps a slice of up to 23 bytes inside the grpc_slice itself, not in a shared buffer;
  // the bytes kept for the log must not point into it. Here the trajectory begins in such
  // slices; the request is gone, and its memory reused, before the bytes are read.
  v1::InsertRequest req;
  req.add_tables("q");
  *req.mutable_trajectory() = Tokens(5, 40);
  const std::string bytes = req.SerializeAsString();
  std::vector<grpc::Slice> slices = {grpc::Slice(bytes.data(), 10),
                                     grpc::Slice(bytes.data() + 10, 12),
                                     grpc::Slice(bytes.data() + 22, bytes.size() - 22)};
  // Inlined, as the test intends: the bytes are inside the slice object.
  const auto* first = reinterpret_cast<const uint8_t*>(&slices[0]);
  ASSERT_TRUE(slices[0].begin() >= first && slices[0].begin() < first + sizeof(grpc::Slice));
  auto pool = TrajectoryPool::Create(4);
  std::vector<InsertItem> items;
  {
    grpc::ByteBuffer buffer(slices.data(), slices.size());
    slices.clear();
    ASSERT_TRUE(ParseInsertRequest(buffer, *pool, /*keep_wire=*/true, &items).ok());
  }
  std::vector<std::vector<grpc_slice>> clobber;
  for (int i = 0; i < 16; ++i) {
    clobber.emplace_back(3);
    std::memset(static_cast<void*>(clobber.back().data()), 0x5a, 3 * sizeof(grpc_slice));
  }
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(std::string(items[0].trajectory_wire), Tokens(5, 40).SerializeAsString());
}

int released_buffers = 0;

TEST(ParseInsertRequest, TheRequestsBuffersAreReleasedWhenItsItemsAre) {
  // The bytes kept for the log reference the request's buffers; once the items and the request
  // are gone, every buffer must be freed (a leaked reference keeps a read buffer per request).
  v1::InsertRequest req;
  req.add_tables("queue");
  *req.mutable_trajectory() = Tokens(1, 3000);
  const std::string bytes = req.SerializeAsString();
  released_buffers = 0;
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size(); at += 4000) {
    const size_t n = std::min<size_t>(4000, bytes.size() - at);
    char* copy = new char[n];
    std::memcpy(copy, bytes.data() + at, n);
    slices.emplace_back(copy, n, [](void* p) {
      delete[] static_cast<char*>(p);
      ++released_buffers;
    });
  }
  const int made = static_cast<int>(slices.size());
  ASSERT_GT(made, 2);
  auto pool = TrajectoryPool::Create(4);
  std::vector<InsertItem> items;
  {
    grpc::ByteBuffer buffer(slices.data(), slices.size());
    slices.clear();
    ASSERT_TRUE(ParseInsertRequest(buffer, *pool, /*keep_wire=*/true, &items).ok());
    ASSERT_EQ(items.size(), 1u);
    EXPECT_EQ(std::string(items[0].trajectory_wire), Tokens(1, 3000).SerializeAsString());
  }
  // The kept bytes still hold the buffers they reference (a short tail may have been copied
  // into the cord instead, its buffer released at once).
  EXPECT_LE(released_buffers, 1);
  items.clear();
  EXPECT_EQ(released_buffers, made);
}

TEST(ParseInsertRequest, BytesThatAreNotAnInsertRequestAreInvalidArgument) {
  auto pool = TrajectoryPool::Create(4);
  v1::InsertRequest req;
  req.add_tables("queue");
  *req.mutable_trajectory() = Tokens(1, 100);
  std::string bytes = req.SerializeAsString();
  std::vector<InsertItem> items;
  // Cut inside the trajectory.
  grpc::ByteBuffer cut = Buffer(bytes.substr(0, bytes.size() / 2), 2);
  absl::Status s = ParseInsertRequest(cut, *pool, /*keep_wire=*/true, &items);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not an InsertRequest"), std::string::npos) << s;
  // The error names the field where the bytes stop making sense.
  EXPECT_NE(s.message().find("InsertRequest.trajectory: length"), std::string::npos) << s;
  EXPECT_TRUE(items.empty());
  grpc::ByteBuffer junk = Buffer(std::string("\xff\xff\xff\xff\xff\xff", 6), 1);
  s = ParseInsertRequest(junk, *pool, /*keep_wire=*/true, &items);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("byte 0 does not begin a field"), std::string::npos) << s;
}

TEST(ParseInsertRequest, AMalformedFieldDeepInsideIsNamedByItsPath) {
  auto pool = TrajectoryPool::Create(4);
  std::vector<InsertItem> items;
  // The second item of `more`, its trajectory's first turn: fixed32 token ids whose byte count
  // is not a multiple of 4.
  std::string turn_bytes;
  turn_bytes += std::string("\x08\x01", 2);  // seat = 1
  AppendFieldHeader(turn_bytes, v1::Turn::kObservationTokensFieldNumber, 6);
  turn_bytes += std::string(6, '\x07');
  std::string trajectory;
  AppendFieldHeader(trajectory, v1::Trajectory::kTurnsFieldNumber, turn_bytes.size());
  trajectory += turn_bytes;
  std::string bad_item;
  AppendFieldHeader(bad_item, v1::InsertRequest::kTrajectoryFieldNumber, trajectory.size());
  bad_item += trajectory;
  v1::InsertRequest good;
  good.add_tables("queue");
  *good.mutable_trajectory() = Tokens(1, 10);
  std::string request = good.SerializeAsString();
  for (const std::string& item : {good.SerializeAsString(), bad_item}) {
    AppendFieldHeader(request, v1::InsertRequest::kMoreFieldNumber, item.size());
    request += item;
  }
  grpc::ByteBuffer buffer = Buffer(request, 3);
  absl::Status s = ParseInsertRequest(buffer, *pool, /*keep_wire=*/false, &items);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("InsertRequest.more[1].trajectory.turns[0].observation_tokens: 6 "
                             "bytes are not whole 4-byte values"),
            std::string::npos)
      << s;
  // A trajectory's string that is not UTF-8 (the generated parser refuses it).
  v1::InsertRequest named;
  named.add_tables("queue");
  named.mutable_trajectory()->set_actor_id("actor");
  std::string bytes = named.SerializeAsString();
  bytes.back() = '\xff';
  grpc::ByteBuffer not_utf8 = Buffer(bytes, 1);
  s = ParseInsertRequest(not_utf8, *pool, /*keep_wire=*/false, &items);
  EXPECT_NE(s.message().find("InsertRequest.trajectory.actor_id: not valid UTF-8"),
            std::string::npos)
      << s;
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
  ASSERT_TRUE(ParseInsertRequest(buffer, *pool, /*keep_wire=*/true, &items).ok());
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
