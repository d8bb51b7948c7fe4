// Hand-framing of protobuf fields, for messages assembled around bytes that are already encoded
// (a trajectory serialised once and sent or logged without another copy), and the slices that
// hold such bytes. Protobuf merges the
// occurrences of a singular message field, so a message can be written as its small fields
// followed by a second occurrence of a submessage that carries only the large bytes.
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/support/slice.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rally {

// Appends the tag and length of length-delimited field `field` to `out`; `length` bytes of
// content are to follow.
inline void AppendFieldHeader(std::string& out, int field, size_t length) {
  using google::protobuf::internal::WireFormatLite;
  uint8_t buf[16];
  uint8_t* end = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(
      WireFormatLite::MakeTag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED), buf);
  end = google::protobuf::io::CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(length),
                                                                      end);
  out.append(reinterpret_cast<const char*>(buf), end - buf);
}

// The bytes of `s` as a gRPC slice that owns them: no copy, freed with the last reference.
inline grpc::Slice OwningSlice(std::string s) {
  auto* owned = new std::string(std::move(s));
  return grpc::Slice(
      owned->data(), owned->size(), [](void* p) { delete static_cast<std::string*>(p); }, owned);
}

// The bytes of `slices` in one string (a copy).
inline std::string JoinSlices(const std::vector<grpc::Slice>& slices) {
  std::string out;
  size_t bytes = 0;
  for (const grpc::Slice& s : slices) bytes += s.size();
  out.reserve(bytes);
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// Where `bytes` stop reading as a message of type `type`, for an error that names it: the path
// of the field, from `type`'s fields down (".more[1].trajectory.turns[0].observation_tokens"),
// and what is wrong there ("length 4000 runs past the end: 12 bytes left"). Empty when the wire
// format holds together (the message may still be refused for what the fields say, e.g. a
// string that is not UTF-8, also reported). For the error path only: it walks the bytes again.
std::string DescribeMalformed(const google::protobuf::Descriptor* type, std::string_view bytes);

}  // namespace rally
