#include "common/models/safetensors.h"

#include <algorithm>
#include <bit>
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

namespace {

// One header entry (`name: {dtype, shape, data_offsets}`) whose bytes lie in `data`.
absl::StatusOr<TensorView> DecodeEntry(const std::string& name, const nlohmann::json& e,
                                       std::string_view data) {
  if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") ||
      !e.contains("data_offsets") || !e["dtype"].is_string() || !e["shape"].is_array() ||
      !e["data_offsets"].is_array() || e["data_offsets"].size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors: malformed entry for tensor '", name, "'"));
  }
  TensorView t;
  t.name = name;
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
  if (begin > end || end > data.size() || end - begin != static_cast<uint64_t>(elements * width)) {
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors: byte range of tensor '", t.name, "' does not fit"));
  }
  t.data = data.substr(begin, end - begin);
  return t;
}

}  // namespace

absl::StatusOr<TensorSetView> DecodeSafetensorsView(std::string_view blob) {
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
  TensorSetView set;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return absl::InvalidArgumentError("safetensors: bad __metadata__");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) return absl::InvalidArgumentError("safetensors: metadata not text");
        set.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    absl::StatusOr<TensorView> t = DecodeEntry(it.key(), *it, data);
    if (!t.ok()) return t.status();
    set.tensors.push_back(*std::move(t));
  }
  // JSON objects are unordered: return the tensors sorted by name.
  std::sort(set.tensors.begin(), set.tensors.end(),
            [](const TensorView& a, const TensorView& b) { return a.name < b.name; });
  return set;
}

absl::StatusOr<TensorSet> DecodeSafetensors(std::string_view blob) {
  absl::StatusOr<TensorSetView> view = DecodeSafetensorsView(blob);
  if (!view.ok()) return view.status();
  TensorSet set;
  set.metadata = std::move(view->metadata);
  set.tensors.reserve(view->tensors.size());
  for (TensorView& t : view->tensors) {
    set.tensors.push_back(
        {std::move(t.name), std::move(t.dtype), std::move(t.shape), std::string(t.data)});
  }
  return set;
}

float Bf16ToFloat(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

uint16_t FloatToBf16(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  // Adding just under half a unit of the kept part, plus its lowest bit, rounds ties to even; a
  // carry out of the mantissa moves to the next exponent (infinity after the largest finite).
  const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float HalfToFloat(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const int exponent = (bits >> 10) & 0x1f;
  uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0) {
    return std::bit_cast<float>(sign | static_cast<uint32_t>(exponent - 15 + 127) << 23 |
                                mantissa << 13);
  }
  if (mantissa == 0) return std::bit_cast<float>(sign);
  // A subnormal, mantissa * 2^-24: shift its leading one into the implicit bit.
  int e = -14;
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    --e;
  }
  return std::bit_cast<float>(sign | static_cast<uint32_t>(e + 127) << 23 |
                              (mantissa & 0x3ffu) << 13);
}

namespace {

// `value` >> `shift`, rounded to nearest, ties to even (1 <= shift <= 31).
uint32_t ShiftRoundingToEven(uint32_t value, int shift) {
  const uint32_t kept = value >> shift;
  const uint32_t rest = value & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  return kept + ((rest > half || (rest == half && (kept & 1u) != 0)) ? 1u : 0u);
}

}  // namespace

uint16_t FloatToHalf(float value) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu);  // NaN
  const int exponent = static_cast<int>(magnitude >> 23) - 127;
  const uint32_t mantissa = magnitude & 0x7fffffu;
  if (exponent > 15) return sign | 0x7c00u;  // too large, or infinity
  if (exponent >= -14) {
    // Normal: a carry out of the mantissa moves to the next exponent (infinity after 65504).
    const uint32_t kept = static_cast<uint32_t>(exponent + 15) << 23 | mantissa;
    return sign | static_cast<uint16_t>(ShiftRoundingToEven(kept, 13));
  }
  if (exponent < -25) return sign;  // under half the smallest subnormal, 2^-24
  // Subnormal: the value in units of 2^-24 is (1.mantissa) * 2^(exponent + 24), that is the
  // 24-bit significand shifted right by -(exponent + 1) places (14 to 24).
  const uint32_t significand = mantissa | 0x800000u;
  return sign | static_cast<uint16_t>(ShiftRoundingToEven(significand, -(exponent + 1)));
}

namespace {

uint16_t LoadU16(const char* p) {
  return static_cast<uint16_t>(static_cast<uint8_t>(p[0]) | static_cast<uint8_t>(p[1]) << 8);
}

uint32_t LoadU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

void StoreU16(uint16_t v, char* p) {
  p[0] = static_cast<char>(v & 0xff);
  p[1] = static_cast<char>(v >> 8);
}

void StoreU32(uint32_t v, char* p) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

absl::Status CheckWhole(std::string_view data, size_t width, const std::string& dtype) {
  if (data.size() % width == 0) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(data.size(), " bytes are not a whole number of ", dtype, " elements"));
}

}  // namespace

absl::StatusOr<std::string> ToF32Bytes(std::string_view data, const std::string& dtype) {
  if (dtype == "F32") {
    if (absl::Status s = CheckWhole(data, 4, dtype); !s.ok()) return s;
    return std::string(data);
  }
  if (dtype != "BF16" && dtype != "F16") {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype ", dtype, " is not one of F32, BF16, F16"));
  }
  if (absl::Status s = CheckWhole(data, 2, dtype); !s.ok()) return s;
  const bool bf16 = dtype == "BF16";
  std::string out(data.size() * 2, '\0');
  for (size_t i = 0; i < data.size() / 2; ++i) {
    const uint16_t h = LoadU16(data.data() + 2 * i);
    StoreU32(std::bit_cast<uint32_t>(bf16 ? Bf16ToFloat(h) : HalfToFloat(h)), out.data() + 4 * i);
  }
  return out;
}

absl::StatusOr<std::string> FromF32Bytes(std::string_view f32, const std::string& dtype) {
  if (absl::Status s = CheckWhole(f32, 4, "F32"); !s.ok()) return s;
  if (dtype == "F32") return std::string(f32);
  if (dtype != "BF16" && dtype != "F16") {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype ", dtype, " is not one of F32, BF16, F16"));
  }
  const bool bf16 = dtype == "BF16";
  std::string out(f32.size() / 2, '\0');
  for (size_t i = 0; i < f32.size() / 4; ++i) {
    const float v = std::bit_cast<float>(LoadU32(f32.data() + 4 * i));
    StoreU16(bf16 ? FloatToBf16(v) : FloatToHalf(v), out.data() + 2 * i);
  }
  return out;
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
