#include "common/net/insert_wire.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <algorithm>
#include <optional>

#include "absl/base/casts.h"
#include "absl/strings/str_cat.h"
#include "common/net/proto_wire.h"
#include "common/net/server.h"
#include "common/util/zstd.h"

namespace rally {

std::string EncodeInsertPrefix(const std::vector<std::string>& tables, double priority) {
  v1::InsertRequest req;
  for (const std::string& t : tables) req.add_tables(t);
  req.set_priority(priority);
  return req.SerializeAsString();
}

grpc::ByteBuffer EncodeInsertRequest(std::string_view prefix,
                                     const std::vector<const InsertBody*>& bodies) {
  std::vector<grpc::Slice> slices;
  slices.reserve(2 * bodies.size());
  for (size_t i = 0; i < bodies.size(); ++i) {
    const InsertBody& body = *bodies[i];
    std::string item_head(prefix);
    AppendFieldHeader(item_head,
                      body.compressed ? v1::InsertRequest::kTrajectoryZstdFieldNumber
                                      : v1::InsertRequest::kTrajectoryFieldNumber,
                      body.bytes);
    std::string head;
    if (i > 0) {
      AppendFieldHeader(head, v1::InsertRequest::kMoreFieldNumber, item_head.size() + body.bytes);
    }
    head += item_head;
    slices.emplace_back(head);
    slices.insert(slices.end(), body.slices.begin(), body.slices.end());
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

namespace {

using google::protobuf::internal::WireFormatLite;

// A request's bytes as gRPC holds them, in slices, from which ranges are taken without copying.
class SlicedBytes {
 public:
  explicit SlicedBytes(grpc::ByteBuffer& buffer) {
    buffer.Dump(&slices_).IgnoreError();  // fails only for an empty buffer
    size_t start = 0;
    for (const grpc::Slice& s : slices_) {
      starts_.push_back(start);
      start += s.size();
    }
  }

  // Bytes [offset, offset + length), as a cord that holds references to the slices (or copies
  // of the bytes of inlined ones).
  absl::Cord Range(size_t offset, size_t length) const {
    absl::Cord out;
    size_t i = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), offset) -
                                   starts_.begin());
    for (i = i == 0 ? 0 : i - 1; length > 0 && i < slices_.size(); ++i) {
      const grpc::Slice& s = slices_[i];
      const size_t begin = offset - starts_[i];
      const size_t n = std::min(length, s.size() - begin);
      const absl::string_view piece(reinterpret_cast<const char*>(s.begin()) + begin, n);
      // An inlined slice (up to 23 bytes) holds its bytes inside the grpc_slice itself, which
      // goes with this object: copy those. (Slice::c_slice() would tell, but it takes a
      // reference that would have to be dropped by hand.)
      const auto* self = reinterpret_cast<const char*>(&s);
      if (piece.data() >= self && piece.data() < self + sizeof(s)) {
        out.Append(piece);
      } else {
        // The bytes live in gRPC's buffer, which the cord's reference to the slice keeps.
        out.Append(absl::MakeCordFromExternal(piece, [keep = s] {}));
      }
      offset += n;
      length -= n;
    }
    return out;
  }

 private:
  std::vector<grpc::Slice> slices_;
  std::vector<size_t> starts_;
};

// Reads the fields of one InsertRequest from `in` (up to its limit) into items[index]; with
// `top`, the items in its `more` are appended after it. With `bytes`, each trajectory's bytes
// are kept too. False when the bytes do not parse.
bool ParseInsertItem(google::protobuf::io::CodedInputStream& in, const SlicedBytes* bytes,
                     NewTrajectory new_trajectory, bool top, std::vector<InsertItem>& items) {
  const size_t index = items.size();
  items.emplace_back();
  while (uint32_t tag = in.ReadTag()) {
    const int field = WireFormatLite::GetTagFieldNumber(tag);
    const bool delimited =
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
    // The length of a delimited field read here (tables, trajectory, trajectory_zstd, more);
    // others are skipped whole.
    const bool ours = field == v1::InsertRequest::kTablesFieldNumber ||
                      field == v1::InsertRequest::kTrajectoryFieldNumber ||
                      field == v1::InsertRequest::kTrajectoryZstdFieldNumber ||
                      field == v1::InsertRequest::kMoreFieldNumber;
    uint32_t length = 0;
    if (delimited && ours &&
        (!in.ReadVarint32(&length) || length > static_cast<uint32_t>(kMaxMessageBytes))) {
      return false;
    }
    if (field == v1::InsertRequest::kTablesFieldNumber && delimited) {
      if (!in.ReadString(&items[index].tables.emplace_back(), static_cast<int>(length))) {
        return false;
      }
    } else if (field == v1::InsertRequest::kTrajectoryFieldNumber && delimited) {
      if (bytes != nullptr) {
        items[index].trajectory_wire.Append(
            bytes->Range(static_cast<size_t>(in.CurrentPosition()), length));
      }
      auto limit = in.PushLimit(static_cast<int>(length));
      if (!items[index].trajectory) items[index].trajectory = new_trajectory();
      if (!items[index].trajectory->MergePartialFromCodedStream(&in) ||
          !in.ConsumedEntireMessage()) {
        return false;
      }
      in.PopLimit(limit);
    } else if (field == v1::InsertRequest::kPriorityFieldNumber &&
               WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_FIXED64) {
      uint64_t bits = 0;
      if (!in.ReadLittleEndian64(&bits)) return false;
      items[index].priority = absl::bit_cast<double>(bits);
    } else if (field == v1::InsertRequest::kTrajectoryZstdFieldNumber && delimited) {
      if (!in.ReadString(&items[index].trajectory_zstd, static_cast<int>(length))) return false;
    } else if (field == v1::InsertRequest::kMoreFieldNumber && delimited) {
      if (!top) {
        items[index].nested_more = true;
        if (!in.Skip(static_cast<int>(length))) return false;
        continue;
      }
      auto limit = in.PushLimit(static_cast<int>(length));
      if (!ParseInsertItem(in, bytes, new_trajectory, /*top=*/false, items) ||
          !in.ConsumedEntireMessage()) {
        return false;
      }
      in.PopLimit(limit);
    } else if (!WireFormatLite::SkipField(&in, tag)) {
      return false;
    }
  }
  return true;
}

// A compressed item becomes a plain one; errors name the field. The frame moves to `frame`.
absl::Status Decompress(InsertItem& item, NewTrajectory new_trajectory, std::string* frame) {
  if (item.trajectory_zstd.empty()) return absl::OkStatus();
  if (item.trajectory) {
    return absl::InvalidArgumentError("set trajectory or trajectory_zstd, not both");
  }
  auto raw = ZstdDecompress(item.trajectory_zstd, kMaxMessageBytes);
  if (!raw.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("trajectory_zstd: ", raw.status().message()));
  }
  item.trajectory = new_trajectory();
  if (!item.trajectory->ParseFromString(*raw)) {
    item.trajectory->Clear();
    return absl::InvalidArgumentError("trajectory_zstd: the content is not a Trajectory");
  }
  *frame = std::move(item.trajectory_zstd);
  item.trajectory_zstd.clear();
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseInsertRequest(grpc::ByteBuffer& buffer, NewTrajectory new_trajectory,
                                bool keep_wire, std::vector<InsertItem>* items) {
  items->clear();
  grpc::ProtoBufferReader reader(&buffer);
  if (!reader.status().ok()) {
    return absl::InvalidArgumentError("the request's bytes cannot be read");
  }
  std::optional<SlicedBytes> bytes;
  if (keep_wire) bytes.emplace(buffer);
  google::protobuf::io::CodedInputStream in(&reader);
  in.SetTotalBytesLimit(kMaxMessageBytes);
  if (!ParseInsertItem(in, bytes ? &*bytes : nullptr, new_trajectory, /*top=*/true, *items) ||
      !in.ConsumedEntireMessage()) {
    items->clear();
    // Where it went wrong, found by walking the bytes again (this path only).
    std::vector<grpc::Slice> slices;
    buffer.Dump(&slices).IgnoreError();
    const std::string where =
        DescribeMalformed(v1::InsertRequest::descriptor(), JoinSlices(slices));
    return absl::InvalidArgumentError(
        absl::StrCat("the request is not an InsertRequest: ",
                     where.empty() ? "its fields hold together but do not parse (a size limit?)"
                                   : absl::StrCat("InsertRequest", where)));
  }
  return absl::OkStatus();
}

absl::Status DecodeInsertItem(InsertItem& item, NewTrajectory new_trajectory,
                              std::string* zstd_frame) {
  if (absl::Status s = Decompress(item, new_trajectory, zstd_frame); !s.ok()) return s;
  if (item.nested_more) {
    return absl::InvalidArgumentError("more: an item in `more` cannot carry more items");
  }
  return absl::OkStatus();
}

}  // namespace rally
