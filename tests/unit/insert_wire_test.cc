// The insert stream's wire format (common/net/insert_wire.h): what the writer's encoder makes,
// the replay's decoder and protobuf's own parser read alike, bit for bit; and the decoder on
// bytes from other encoders, and on bytes that are not an InsertRequest.
#include "common/net/insert_wire.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "absl/base/casts.h"
#include "absl/strings/match.h"
#include "common/net/proto_wire.h"
#include "common/util/zstd.h"
#include "tests/unit/insert_test_util.h"

namespace rally {
namespace {

using insert_test::Buffer;
using insert_test::Tokens;

std::unique_ptr<v1::Trajectory> Fresh() { return std::make_unique<v1::Trajectory>(); }

// The bytes of `buffer` in one string.
std::string Bytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  return JoinSlices(slices);
}

// A trajectory whose floats need every bit kept: a NaN with a payload, -0, a denormal; its
// token ids repeat, so that it compresses.
v1::Trajectory Awkward(const std::string& actor_id, uint64_t incarnation, uint64_t sequence) {
  v1::Trajectory t = Tokens(sequence, 0);
  t.set_actor_id(actor_id);
  t.set_incarnation(incarnation);
  v1::Turn* turn = t.mutable_turns(0);
  for (int i = 0; i < 700; ++i) turn->add_observation_tokens(i % 4);
  turn->add_behaviour_log_probs(absl::bit_cast<float>(0x7fc01234u));
  turn->add_behaviour_log_probs(-0.0f);
  turn->add_behaviour_log_probs(std::numeric_limits<float>::denorm_min());
  turn->set_policy_version(9);
  t.add_returns(-1.0f);
  return t;
}

// `t` serialised, as a body in `pieces` slices (a writer's referenced arrays arrive so).
InsertBody PlainBody(const v1::Trajectory& t, int pieces) {
  const std::string bytes = t.SerializeAsString();
  InsertBody body;
  const size_t step = bytes.size() / pieces + 1;
  for (size_t at = 0; at < bytes.size(); at += step) {
    body.slices.emplace_back(bytes.data() + at, std::min(step, bytes.size() - at));
  }
  body.bytes = bytes.size();
  return body;
}

InsertBody ZstdBody(const v1::Trajectory& t) {
  InsertBody body;
  const std::string frame = ZstdCompress(t.SerializeAsString(), /*level=*/3);
  EXPECT_FALSE(frame.empty()) << "does not compress";
  body.slices.emplace_back(frame);
  body.bytes = frame.size();
  body.compressed = true;
  return body;
}

// What the decoder read for one item equals what protobuf read, and the trajectory sent.
void ExpectSameItem(const InsertItem& item, const v1::InsertRequest& by_protobuf,
                    const std::vector<std::string>& tables, double priority,
                    const v1::Trajectory& sent, bool compressed) {
  EXPECT_EQ(item.tables, tables);
  EXPECT_EQ(std::vector<std::string>(by_protobuf.tables().begin(), by_protobuf.tables().end()),
            tables);
  EXPECT_EQ(absl::bit_cast<uint64_t>(item.priority), absl::bit_cast<uint64_t>(priority));
  EXPECT_EQ(absl::bit_cast<uint64_t>(by_protobuf.priority()), absl::bit_cast<uint64_t>(priority));
  EXPECT_FALSE(item.nested_more);
  EXPECT_EQ(item.trajectory_zstd, by_protobuf.trajectory_zstd());
  if (compressed) {
    EXPECT_EQ(item.trajectory, nullptr);
    EXPECT_FALSE(by_protobuf.has_trajectory());
    absl::StatusOr<std::string> raw = ZstdDecompress(item.trajectory_zstd, 1 << 20);
    ASSERT_TRUE(raw.ok()) << raw.status();
    EXPECT_EQ(*raw, sent.SerializeAsString());
    return;
  }
  ASSERT_NE(item.trajectory, nullptr);
  EXPECT_EQ(item.trajectory->SerializeAsString(), sent.SerializeAsString());
  EXPECT_EQ(by_protobuf.trajectory().SerializeAsString(), sent.SerializeAsString());
  EXPECT_TRUE(by_protobuf.trajectory_zstd().empty());
}

TEST(InsertWire, KeyedAndKeylessItemsRoundTripBitForBit) {
  const v1::Trajectory keyed = Awkward("actor-7", 0x8000000000000001ull, 42);
  v1::Trajectory keyless = Awkward("", 0, 0);
  keyless.clear_actor_id();
  keyless.clear_sequence();
  ASSERT_EQ(keyless.sequence(), 0u);
  const InsertBody first = PlainBody(keyed, 1);
  const InsertBody second = PlainBody(keyless, 3);
  const std::vector<std::string> tables = {"queue", "buffer"};
  const double priority = 2.5;
  const std::string prefix = EncodeInsertPrefix(tables, priority);
  grpc::ByteBuffer request = EncodeInsertRequest(prefix, {&first, &second});
  const std::string bytes = Bytes(request);

  v1::InsertRequest by_protobuf;
  ASSERT_TRUE(by_protobuf.ParseFromString(bytes));
  ASSERT_EQ(by_protobuf.more_size(), 1);
  for (bool keep_wire : {true, false}) {
    grpc::ByteBuffer copy = Buffer(bytes, 4);
    std::vector<InsertItem> items;
    ASSERT_TRUE(ParseInsertRequest(copy, Fresh, keep_wire, &items).ok());
    ASSERT_EQ(items.size(), 2u);
    ExpectSameItem(items[0], by_protobuf, tables, priority, keyed, false);
    ExpectSameItem(items[1], by_protobuf.more(0), tables, priority, keyless, false);
    EXPECT_EQ(items[0].trajectory->actor_id(), "actor-7");
    EXPECT_EQ(items[0].trajectory->incarnation(), 0x8000000000000001ull);
    EXPECT_EQ(items[0].trajectory->sequence(), 42u);
    EXPECT_TRUE(items[1].trajectory->actor_id().empty());
    EXPECT_EQ(items[1].trajectory->sequence(), 0u);
    EXPECT_EQ(absl::bit_cast<uint32_t>(items[0].trajectory->turns(0).behaviour_log_probs(0)),
              0x7fc01234u);
    // The log's copy is the bytes sent, exactly.
    EXPECT_EQ(std::string(items[0].trajectory_wire), keep_wire ? keyed.SerializeAsString() : "");
    EXPECT_EQ(std::string(items[1].trajectory_wire), keep_wire ? keyless.SerializeAsString() : "");
  }
}

TEST(InsertWire, ACompressedItemTravelsAsItsFrameAndDecodesToTheTrajectory) {
  const v1::Trajectory t = Awkward("actor-1", 5, 3);
  const InsertBody plain = PlainBody(Tokens(4, 10), 1);
  const InsertBody compressed = ZstdBody(t);
  const std::vector<std::string> tables = {"queue"};
  grpc::ByteBuffer request =
      EncodeInsertRequest(EncodeInsertPrefix(tables, 0.0), {&compressed, &plain});
  const std::string bytes = Bytes(request);
  v1::InsertRequest by_protobuf;
  ASSERT_TRUE(by_protobuf.ParseFromString(bytes));
  std::vector<InsertItem> items;
  ASSERT_TRUE(ParseInsertRequest(request, Fresh, /*keep_wire=*/true, &items).ok());
  ASSERT_EQ(items.size(), 2u);
  ExpectSameItem(items[0], by_protobuf, tables, 0.0, t, true);
  ExpectSameItem(items[1], by_protobuf.more(0), tables, 0.0, Tokens(4, 10), false);
  EXPECT_TRUE(items[0].trajectory_wire.empty());  // the log keeps the frame instead

  const std::string frame = items[0].trajectory_zstd;
  std::string kept;
  ASSERT_TRUE(DecodeInsertItem(items[0], Fresh, &kept).ok());
  ASSERT_NE(items[0].trajectory, nullptr);
  EXPECT_EQ(items[0].trajectory->SerializeAsString(), t.SerializeAsString());
  EXPECT_EQ(kept, frame);
  EXPECT_TRUE(items[0].trajectory_zstd.empty());
  // A plain item is left as it is, and no frame is handed out.
  std::string none;
  ASSERT_TRUE(DecodeInsertItem(items[1], Fresh, &none).ok());
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(items[1].trajectory->SerializeAsString(), Tokens(4, 10).SerializeAsString());
}

TEST(InsertWire, ManyItemsInOneRequestKeepTheirOrder) {
  // 40 items, plain (in 1 to 3 slices) and compressed in turn, of growing size.
  std::vector<v1::Trajectory> sent;
  std::vector<InsertBody> bodies;
  for (int i = 0; i < 40; ++i) {
    sent.push_back(Awkward(i % 2 ? "odd" : "even", 7, 100 + i));
    sent.back().mutable_turns(0)->mutable_observation_tokens()->Truncate(100 + 10 * i);
    bodies.push_back(i % 4 == 3 ? ZstdBody(sent.back()) : PlainBody(sent.back(), 1 + i % 3));
  }
  std::vector<const InsertBody*> pointers;
  for (const InsertBody& b : bodies) pointers.push_back(&b);
  const std::vector<std::string> tables = {"t"};
  grpc::ByteBuffer request = EncodeInsertRequest(EncodeInsertPrefix(tables, 0.25), pointers);
  v1::InsertRequest by_protobuf;
  ASSERT_TRUE(by_protobuf.ParseFromString(Bytes(request)));
  ASSERT_EQ(by_protobuf.more_size(), 39);
  std::vector<InsertItem> items;
  ASSERT_TRUE(ParseInsertRequest(request, Fresh, /*keep_wire=*/true, &items).ok());
  ASSERT_EQ(items.size(), 40u);
  for (int i = 0; i < 40; ++i) {
    SCOPED_TRACE(i);
    const v1::InsertRequest& same = i == 0 ? by_protobuf : by_protobuf.more(i - 1);
    ExpectSameItem(items[i], same, tables, 0.25, sent[i], i % 4 == 3);
    std::string frame;
    ASSERT_TRUE(DecodeInsertItem(items[i], Fresh, &frame).ok());
    EXPECT_EQ(items[i].trajectory->sequence(), 100u + i);
  }
}

TEST(InsertWire, AnItemThatCannotBeDecodedIsRefusedNamingTheField) {
  const v1::Trajectory t = Tokens(1, 20);
  std::string frame;
  InsertItem both;
  both.trajectory = std::make_unique<v1::Trajectory>(t);
  both.trajectory_zstd = ZstdCompress(std::string(1000, 'x'));
  absl::Status s = DecodeInsertItem(both, Fresh, &frame);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "set trajectory or trajectory_zstd, not both");

  InsertItem not_zstd;
  not_zstd.trajectory_zstd = "not a zstd frame";
  s = DecodeInsertItem(not_zstd, Fresh, &frame);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(s.message(), "trajectory_zstd: ")) << s;
  EXPECT_TRUE(frame.empty());

  InsertItem not_trajectory;
  not_trajectory.trajectory_zstd = ZstdCompress(std::string(1000, '\xff'));
  ASSERT_FALSE(not_trajectory.trajectory_zstd.empty());
  s = DecodeInsertItem(not_trajectory, Fresh, &frame);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "trajectory_zstd: the content is not a Trajectory");

  InsertItem nested;
  nested.trajectory = std::make_unique<v1::Trajectory>(t);
  nested.nested_more = true;
  s = DecodeInsertItem(nested, Fresh, &frame);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "more: an item in `more` cannot carry more items");
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

  grpc::ByteBuffer buffer = Buffer(req.SerializeAsString(), 7);
  std::vector<InsertItem> items;
  ASSERT_TRUE(ParseInsertRequest(buffer, Fresh, /*keep_wire=*/true, &items).ok());
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
  EXPECT_TRUE(items[2].nested_more);  // refused by DecodeInsertItem, naming `more`

  // Without a write-ahead log the bytes are not kept; the items are the same.
  grpc::ByteBuffer again = Buffer(req.SerializeAsString(), 7);
  ASSERT_TRUE(ParseInsertRequest(again, Fresh, /*keep_wire=*/false, &items).ok());
  ASSERT_EQ(items.size(), 3u);
  EXPECT_TRUE(items[0].trajectory_wire.empty());
  EXPECT_EQ(items[0].trajectory->SerializeAsString(), Tokens(1, 5000).SerializeAsString());
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
  grpc::ByteBuffer buffer = Buffer(first.SerializeAsString() + second.SerializeAsString(), 5);
  std::vector<InsertItem> items;
  ASSERT_TRUE(ParseInsertRequest(buffer, Fresh, /*keep_wire=*/true, &items).ok());
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
  std::vector<InsertItem> items;
  {
    grpc::ByteBuffer buffer(slices.data(), slices.size());
    slices.clear();
    ASSERT_TRUE(ParseInsertRequest(buffer, Fresh, /*keep_wire=*/true, &items).ok());
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
  std::vector<InsertItem> items;
  {
    grpc::ByteBuffer buffer(slices.data(), slices.size());
    slices.clear();
    ASSERT_TRUE(ParseInsertRequest(buffer, Fresh, /*keep_wire=*/true, &items).ok());
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
  v1::InsertRequest req;
  req.add_tables("queue");
  *req.mutable_trajectory() = Tokens(1, 100);
  std::string bytes = req.SerializeAsString();
  std::vector<InsertItem> items;
  // Cut inside the trajectory.
  grpc::ByteBuffer cut = Buffer(bytes.substr(0, bytes.size() / 2), 2);
  absl::Status s = ParseInsertRequest(cut, Fresh, /*keep_wire=*/true, &items);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not an InsertRequest"), std::string::npos) << s;
  // The error names the field where the bytes stop making sense.
  EXPECT_NE(s.message().find("InsertRequest.trajectory: length"), std::string::npos) << s;
  EXPECT_TRUE(items.empty());
  grpc::ByteBuffer junk = Buffer(std::string("\xff\xff\xff\xff\xff\xff", 6), 1);
  s = ParseInsertRequest(junk, Fresh, /*keep_wire=*/true, &items);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("byte 0 does not begin a field"), std::string::npos) << s;
}

TEST(ParseInsertRequest, AMalformedFieldDeepInsideIsNamedByItsPath) {
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
  absl::Status s = ParseInsertRequest(buffer, Fresh, /*keep_wire=*/false, &items);
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
  s = ParseInsertRequest(not_utf8, Fresh, /*keep_wire=*/false, &items);
  EXPECT_NE(s.message().find("InsertRequest.trajectory.actor_id: not valid UTF-8"),
            std::string::npos)
      << s;
}

}  // namespace
}  // namespace rally
