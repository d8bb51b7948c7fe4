// The Insert stream's wire format, in one place: the encoder the actors' ReplayWriter frames its
// requests with and the decoder rally-replay reads them with, so that no change touches one side
// alone (tests/unit/insert_wire_test.cc runs one into the other and into protobuf's parser).
//
// The format. An Insert stream carries InsertRequest messages (proto/rally/v1/replay.proto),
// sent and read as raw bytes. A request holds one or more items: its own fields are the first
// item (tables = 1, trajectory = 2, priority = 3, trajectory_zstd = 4), and each occurrence of
// `more` (5) is one further item with the same fields and no `more` of its own. An item's
// trajectory is either a serialised Trajectory (field 2; its key, actor_id/incarnation/sequence,
// is part of it, or absent for a keyless item) or that serialisation as one zstd frame (field 4).
// The encoder writes each item as its prefix (tables, then priority) followed by its trajectory
// field; `more` items are length-delimited. It references the trajectory's bytes rather than
// copying them.
//
// The contract. Whatever the encoder writes parses with protobuf's generated parser to the
// InsertRequest of those items. The decoder reads any valid encoding (fields in any order, a
// message field's occurrences merged, unknown fields skipped) to exactly what protobuf reads,
// bit for bit (tests/fuzz/insert_parse_fuzz.cc checks it on arbitrary bytes); bytes that do not
// parse are INVALID_ARGUMENT naming the field where the parse stopped (docs/reliability.md
// quotes these messages). Torch-free: the fuzz and sanitizer builds link it.
// Thread safety: free functions on the caller's data.
#pragma once

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "rally/v1/replay.pb.h"

namespace rally {

// ---- Encoding (the writer) ----

// One item's trajectory as it travels, in pieces that are referenced, not copied.
struct InsertBody {
  std::vector<grpc::Slice> slices;  // a serialised Trajectory, or its zstd frame
  size_t bytes = 0;                 // in all of `slices`
  bool compressed = false;          // a zstd frame: sent as trajectory_zstd
};

// The fields that precede an item's trajectory: its tables and priority. Made once per stream.
std::string EncodeInsertPrefix(const std::vector<std::string>& tables, double priority);

// One InsertRequest carrying `bodies` in order, each after `prefix`: the first as the request's
// own item, the rest in `more`. The bodies' slices are referenced, not copied.
grpc::ByteBuffer EncodeInsertRequest(std::string_view prefix,
                                     const std::vector<const InsertBody*>& bodies);

// ---- Decoding (the replay) ----

// One item of an InsertRequest (its own, or one of `more`), as the replay parses it.
struct InsertItem {
  std::vector<std::string> tables;
  double priority = 0;
  std::unique_ptr<v1::Trajectory> trajectory;  // null when the field was not sent
  // The trajectory's bytes as they arrived (the field's content; the request's own slices, not
  // a copy): what the write-ahead log stores. Empty unless parsed with keep_wire.
  absl::Cord trajectory_wire;
  std::string trajectory_zstd;
  bool nested_more = false;  // an item of `more` that carried `more` itself
};

// An empty trajectory for the decoder to parse into (the replay lends recycled ones).
using NewTrajectory = absl::FunctionRef<std::unique_ptr<v1::Trajectory>()>;

// Parses the bytes of one InsertRequest into its items, in order: the request's own, then those
// of `more`. Trajectories are parsed into messages from `new_trajectory`; with `keep_wire` their
// bytes are kept as well (trajectory_wire). INVALID_ARGUMENT when the bytes are not an
// InsertRequest ("the request is not an InsertRequest: InsertRequest.more[1].trajectory...:
// what is wrong there"); `items` is then empty.
absl::Status ParseInsertRequest(grpc::ByteBuffer& buffer, NewTrajectory new_trajectory,
                                bool keep_wire, std::vector<InsertItem>* items);

// Completes one parsed item: a compressed one becomes a plain one (its frame moves to
// `zstd_frame`: the write-ahead log stores it as it came), and an item of `more` that carried
// `more` is refused. INVALID_ARGUMENT naming the field: both trajectory and trajectory_zstd
// set, a frame that does not decompress or does not hold a Trajectory, a nested `more`.
absl::Status DecodeInsertItem(InsertItem& item, NewTrajectory new_trajectory,
                              std::string* zstd_frame);

}  // namespace rally
