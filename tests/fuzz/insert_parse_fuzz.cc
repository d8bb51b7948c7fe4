// The insert stream's hand-written parser, ParseInsertRequest (common/net/insert_wire.h), on
// arbitrary request bytes handed over in 1 to 4 slices, as gRPC does, parsing into recycled
// trajectories as the replay does.
// Differential: where protobuf's own parser also reads the bytes, both find the same items; the
// bytes kept for the log (keep_wire) parse to the item's trajectory.
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/base/casts.h"
#include "common/net/insert_wire.h"
#include "google/protobuf/util/message_differencer.h"
#include "rally/v1/replay.pb.h"
#include "services/replay/trajectory_pool.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using google::protobuf::util::MessageDifferencer;

// Equal messages (bit for bit: a NaN equals itself); the differences are printed when not.
bool SameBytes(const rally::v1::Trajectory& parsed, const rally::v1::Trajectory& expected) {
  if (parsed.SerializePartialAsString() == expected.SerializePartialAsString()) return true;
  MessageDifferencer differencer;
  std::string differences;
  differencer.ReportDifferencesToString(&differences);
  differencer.Compare(expected, parsed);
  std::fprintf(stderr, "protobuf's trajectory -> the parser's:\n%s", differences.c_str());
  return false;
}

// `item`, as the parser made it, is what protobuf read into `request`.
void CheckSame(const rally::InsertItem& item, const rally::v1::InsertRequest& request,
               bool keep_wire) {
  FUZZ_CHECK(std::vector<std::string>(request.tables().begin(), request.tables().end()) ==
             item.tables);
  FUZZ_CHECK(absl::bit_cast<uint64_t>(item.priority) ==
             absl::bit_cast<uint64_t>(request.priority()));
  FUZZ_CHECK(item.trajectory_zstd == request.trajectory_zstd());
  FUZZ_CHECK((item.trajectory != nullptr) == request.has_trajectory());
  if (item.trajectory != nullptr) {
    FUZZ_CHECK(SameBytes(*item.trajectory, request.trajectory()));
    if (keep_wire) {
      rally::v1::Trajectory from_wire;
      FUZZ_CHECK(from_wire.ParsePartialFromString(std::string(item.trajectory_wire)));
      FUZZ_CHECK(SameBytes(from_wire, request.trajectory()));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::shared_ptr<rally::TrajectoryPool> pool = rally::TrajectoryPool::Create(16);
  if (size == 0) return 0;
  const int pieces = 1 + data[0] % 4;
  const bool keep_wire = (data[0] & 4) != 0;
  const std::string_view bytes = rally::fuzz::Bytes(data + 1, size - 1);
  std::vector<grpc::Slice> slices;
  const size_t step = bytes.size() / pieces + 1;
  for (size_t at = 0; at < bytes.size(); at += step) {
    slices.emplace_back(bytes.data() + at, std::min(step, bytes.size() - at));
  }
  grpc::ByteBuffer buffer(slices.data(), slices.size());
  std::vector<rally::InsertItem> items;
  const absl::Status parsed = rally::ParseInsertRequest(
      buffer, [] { return pool->Take(); }, keep_wire, &items);
  if (!parsed.ok()) {
    FUZZ_CHECK(items.empty());
    return 0;
  }
  rally::v1::InsertRequest request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return 0;
  FUZZ_CHECK(items.size() == 1 + static_cast<size_t>(request.more_size()));
  CheckSame(items[0], request, keep_wire);
  for (int i = 0; i < request.more_size(); ++i) {
    CheckSame(items[1 + i], request.more(i), keep_wire);
    FUZZ_CHECK(items[1 + i].nested_more == (request.more(i).more_size() > 0));
  }
  return 0;
}
