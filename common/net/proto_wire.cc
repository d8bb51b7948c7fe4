#include "common/net/proto_wire.h"

#include <map>

#include "absl/strings/str_cat.h"

namespace rally {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::internal::WireFormatLite;

bool ValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80           ? 1
                     : (c >> 5) == 0x6  ? 2
                     : (c >> 4) == 0xe  ? 3
                     : (c >> 3) == 0x1e ? 4
                                        : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += n;
  }
  return true;
}

// The content of a packed field: whole values of its type, or what is wrong.
std::string PackedProblem(const FieldDescriptor* f, std::string_view content) {
  switch (WireFormatLite::WireTypeForFieldType(static_cast<WireFormatLite::FieldType>(f->type()))) {
    case WireFormatLite::WIRETYPE_FIXED32:
      if (content.size() % 4 != 0) {
        return absl::StrCat(": ", content.size(), " bytes are not whole 4-byte values");
      }
      return "";
    case WireFormatLite::WIRETYPE_FIXED64:
      if (content.size() % 8 != 0) {
        return absl::StrCat(": ", content.size(), " bytes are not whole 8-byte values");
      }
      return "";
    case WireFormatLite::WIRETYPE_VARINT: {
      google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(content.data()),
                                                static_cast<int>(content.size()));
      for (int k = 0; !in.ExpectAtEnd(); ++k) {
        uint64_t v = 0;
        if (!in.ReadVarint64(&v)) return absl::StrCat("[", k, "]: a malformed varint");
      }
      return "";
    }
    default:
      return "";
  }
}

std::string Walk(const Descriptor* type, std::string_view bytes, int depth) {
  if (depth > 64) return ": nested too deeply";
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  std::map<int, int> occurrences;
  while (!in.ExpectAtEnd()) {
    const int at = in.CurrentPosition();
    const uint32_t tag = in.ReadTag();
    if (tag == 0 || WireFormatLite::GetTagFieldNumber(tag) == 0) {
      return absl::StrCat(": byte ", at, " does not begin a field (a malformed or zero tag)");
    }
    const int number = WireFormatLite::GetTagFieldNumber(tag);
    const FieldDescriptor* f = type->FindFieldByNumber(number);
    const int index = occurrences[number]++;
    const bool message = f != nullptr && f->type() == FieldDescriptor::TYPE_MESSAGE;
    const std::string path =
        f == nullptr ? absl::StrCat(".(field ", number, ")")
        : f->is_repeated() && (message || f->type() == FieldDescriptor::TYPE_STRING ||
                               f->type() == FieldDescriptor::TYPE_BYTES)
            ? absl::StrCat(".", f->name(), "[", index, "]")
            : absl::StrCat(".", f->name());
    if (WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      if (!WireFormatLite::SkipField(&in, tag)) return path + ": cut short";
      continue;
    }
    uint32_t length = 0;
    if (!in.ReadVarint32(&length)) return path + ": a malformed length";
    const size_t left = bytes.size() - static_cast<size_t>(in.CurrentPosition());
    if (length > left) {
      return absl::StrCat(path, ": length ", length, " runs past the end: ", left, " bytes left");
    }
    const std::string_view content =
        bytes.substr(static_cast<size_t>(in.CurrentPosition()), length);
    std::string problem;
    if (message) {
      problem = Walk(f->message_type(), content, depth + 1);
    } else if (f != nullptr && f->type() == FieldDescriptor::TYPE_STRING && !ValidUtf8(content)) {
      problem = ": not valid UTF-8";
    } else if (f != nullptr && f->is_packable()) {
      problem = PackedProblem(f, content);
    }
    if (!problem.empty()) return path + problem;
    in.Skip(static_cast<int>(length));
  }
  return "";
}

}  // namespace

std::string DescribeMalformed(const Descriptor* type, std::string_view bytes) {
  return Walk(type, bytes, 0);
}

}  // namespace rally
