#include "common/models/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/util/crc32c.h"
#include "nlohmann/json.hpp"

namespace rally {
namespace {

int64_t DtypeBytes(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

}  // namespace

std::string EncodeSafetensors(const TensorSet& set) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!set.metadata.empty()) header["__metadata__"] = set.metadata;
  uint64_t offset = 0;
  for (const NamedTensor& t : set.tensors) {
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.data.size()}}};
    offset += t.data.size();
  }
  std::string json = header.dump();
  // Pad the header with spaces to an 8-byte boundary, as the reference writer does.
  while ((json.size() % 8) != 0) json.push_back(' ');
  std::string out;
  out.reserve(8 + json.size() + offset);
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += json;
  for (const NamedTensor& t : set.tensors) out += t.data;
  return out;
}

absl::StatusOr<TensorSet> DecodeSafetensors(std::string_view blob) {
  if (blob.size() < 8) return absl::InvalidArgumentError("safetensors: shorter than its header");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<uint8_t>(blob[i])) << (8 * i);
  if (n > blob.size() - 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors: header length ", n, " exceeds the blob (", blob.size(), ")"));
  }
  nlohmann::json header = nlohmann::json::parse(blob.substr(8, n), nullptr, false);
  if (header.is_discarded() || !header.is_object()) {
    return absl::InvalidArgumentError("safetensors: header is not a JSON object");
  }
  std::string_view data = blob.substr(8 + n);
  TensorSet set;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return absl::InvalidArgumentError("safetensors: bad __metadata__");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) return absl::InvalidArgumentError("safetensors: metadata not text");
        set.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const auto& e = *it;
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") ||
        !e.contains("data_offsets") || !e["dtype"].is_string() || !e["shape"].is_array() ||
        !e["data_offsets"].is_array() || e["data_offsets"].size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors: malformed entry for tensor '", it.key(), "'"));
    }
    NamedTensor t;
    t.name = it.key();
    t.dtype = e["dtype"].get<std::string>();
    int64_t elements = 1;
    for (const auto& d : e["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("safetensors: bad shape for tensor '", t.name, "'"));
      }
      t.shape.push_back(d.get<int64_t>());
      // The product saturates instead of overflowing: a later zero dimension still makes it 0
      // (a tensor with no elements fits whatever the others are).
      if (__builtin_mul_overflow(elements, t.shape.back(), &elements)) {
        elements = std::numeric_limits<int64_t>::max();
      }
    }
    if (!e["data_offsets"][0].is_number_unsigned() || !e["data_offsets"][1].is_number_unsigned()) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors: data_offsets of tensor '", t.name, "' are not byte offsets"));
    }
    uint64_t begin = e["data_offsets"][0].get<uint64_t>();
    uint64_t end = e["data_offsets"][1].get<uint64_t>();
    int64_t width = DtypeBytes(t.dtype);
    if (width == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors: unknown dtype '", t.dtype, "' for tensor '", t.name, "'"));
    }
    // More elements than bytes cannot fit (and the byte count must not overflow).
    if (elements > static_cast<int64_t>(data.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors: tensor '", t.name, "' is larger than the data"));
    }
    if (begin > end || end > data.size() ||
        end - begin != static_cast<uint64_t>(elements * width)) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors: byte range of tensor '", t.name, "' does not fit"));
    }
    t.data = std::string(data.substr(begin, end - begin));
    set.tensors.push_back(std::move(t));
  }
  // JSON objects are unordered: return the tensors sorted by name.
  std::sort(set.tensors.begin(), set.tensors.end(),
            [](const NamedTensor& a, const NamedTensor& b) { return a.name < b.name; });
  return set;
}

std::string FileChecksum(std::string_view bytes) {
  char hex[9];
  std::snprintf(hex, sizeof(hex), "%08x", Crc32c(0, bytes));
  return absl::StrCat("crc32c:", hex);
}

absl::Status VerifyFileChecksum(const nlohmann::json& manifest, const std::string& file,
                                std::string_view bytes, const std::string& path) {
  const auto checksums = manifest.find("checksums");
  if (checksums == manifest.end()) return absl::OkStatus();
  const auto recorded = checksums->is_object() ? checksums->find(file) : checksums->end();
  if (!checksums->is_object() || (recorded != checksums->end() && !recorded->is_string())) {
    return absl::DataLossError(
        absl::StrCat(path, ": the manifest's checksums are not {\"<file>\": \"crc32c:...\"}"));
  }
  if (recorded == checksums->end()) return absl::OkStatus();
  const std::string actual = FileChecksum(bytes);
  if (actual == recorded->get<std::string>()) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(path, ": its checksum is ", actual,
                                          ", the manifest records ", recorded->get<std::string>(),
                                          " (the file changed after it was written)"));
}

}  // namespace rally
