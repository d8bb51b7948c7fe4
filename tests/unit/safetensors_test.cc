#include "common/models/safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "common/models/policy_net.h"

namespace rally {
namespace {

TEST(Safetensors, RoundTripsTensorsAndMetadata) {
  TensorSet set;
  NamedTensor a;
  a.name = "layer.weight";
  a.shape = {2, 3};
  float values[6] = {1, 2, 3, 4, 5, 6};
  a.data.assign(reinterpret_cast<const char*>(values), sizeof(values));
  set.tensors.push_back(a);
  set.metadata["policy_version"] = "7";
  std::string blob = EncodeSafetensors(set);
  // 8-byte little-endian header length, header padded to a multiple of 8.
  uint64_t n = 0;
  std::memcpy(&n, blob.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(blob.size(), 8 + n + sizeof(values));
  auto back = DecodeSafetensors(blob);
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->tensors.size(), 1u);
  EXPECT_EQ(back->tensors[0].name, "layer.weight");
  EXPECT_EQ(back->tensors[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(back->tensors[0].data, a.data);
  EXPECT_EQ(back->metadata.at("policy_version"), "7");
}

TEST(Safetensors, RejectsMalformedBlobs) {
  EXPECT_FALSE(DecodeSafetensors("abc").ok());
  std::string huge(8, '\xff');
  EXPECT_FALSE(DecodeSafetensors(huge).ok());
  TensorSet set;
  NamedTensor t;
  t.name = "x";
  t.shape = {4};
  t.data = std::string(16, '\0');
  set.tensors.push_back(t);
  std::string blob = EncodeSafetensors(set);
  blob.resize(blob.size() - 4);  // data shorter than the header says
  auto bad = DecodeSafetensors(blob);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'x'"), std::string::npos);
}

// A header as `json` followed by `data`.
std::string Blob(const std::string& json, const std::string& data) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((json.size() >> (8 * i)) & 0xff));
  return out + json + data;
}

TEST(Safetensors, RejectsOffsetsAndShapesThatAreNotWhatTheyClaimWithoutThrowing) {
  const std::string data(16, '\0');
  // Well formed, to show the cases below differ only in the field they break.
  ASSERT_TRUE(DecodeSafetensors(
                  Blob(R"({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", data))
                  .ok());
  for (const char* json : {
           R"({"x": {"dtype": "F32", "shape": [4], "data_offsets": ["0", 16]}})",
           R"({"x": {"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]}})",
           R"({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16.5]}})",
           // 2^32 * 2^32 elements: the product overflows 64 bits.
           R"({"x": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})",
       }) {
    auto bad = DecodeSafetensors(Blob(json, data));
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << json;
    EXPECT_NE(bad.status().message().find("'x'"), std::string::npos) << bad.status();
  }
}

// Found by tests/fuzz/safetensors_fuzz (corpus file regression-empty-tensor-with-a-large-
// dimension): a tensor with a zero dimension has no elements, however large the dimensions
// before it; it was refused when they exceeded the data, so a set holding one did not decode
// after it was encoded again.
TEST(Safetensors, ATensorWithAZeroDimensionDecodesWhateverItsOtherDimensions) {
  auto set = DecodeSafetensors(
      Blob(R"({"e": {"dtype": "BF16", "shape": [2, 0, 4], "data_offsets": [0, 0]}})", ""));
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ(set->tensors.size(), 1u);
  EXPECT_EQ(set->tensors[0].shape, (std::vector<int64_t>{2, 0, 4}));
  EXPECT_EQ(set->tensors[0].data, "");
  // The fuzzer's input: "e" and a one-byte tensor, encoded again, decodes to the same.
  TensorSet two;
  two.tensors.push_back({"b", "BOOL", {}, std::string(1, '\x01')});
  two.tensors.push_back({"e", "BF16", {2, 0, 4}, ""});
  auto again = DecodeSafetensors(EncodeSafetensors(two));
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_EQ(again->tensors.size(), 2u);
  EXPECT_EQ(again->tensors[1].shape, (std::vector<int64_t>{2, 0, 4}));
  // Zero after a product that overflows 64 bits: still no elements.
  EXPECT_TRUE(DecodeSafetensors(Blob(R"({"z": {"dtype": "F32", "shape": [4294967296, )"
                                     R"(4294967296, 0], "data_offsets": [0, 0]}})",
                                     ""))
                  .ok());
}

TEST(Safetensors, AViewDecodesAsTheCopyWithoutCopyingTheBytes) {
  TensorSet set;
  set.tensors.push_back({"b", "F16", {2}, std::string("\x00\x3c\x00\xc0", 4)});
  set.tensors.push_back({"a", "F32", {1}, std::string("\x00\x00\x80\x3f", 4)});
  set.metadata["format"] = "pt";
  const std::string blob = EncodeSafetensors(set);
  auto view = DecodeSafetensorsView(blob);
  ASSERT_TRUE(view.ok()) << view.status();
  ASSERT_EQ(view->tensors.size(), 2u);
  EXPECT_EQ(view->tensors[0].name, "a");  // sorted by name
  EXPECT_EQ(view->tensors[1].dtype, "F16");
  EXPECT_EQ(view->tensors[1].shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(view->tensors[1].data, set.tensors[0].data);
  // The bytes are the blob's own: the data of "b" is first after the header.
  EXPECT_GE(view->tensors[1].data.data(), blob.data());
  EXPECT_EQ(view->tensors[1].data.data() + 8, blob.data() + blob.size());
  EXPECT_EQ(view->metadata.at("format"), "pt");
  EXPECT_EQ(DecodeSafetensorsView(blob.substr(0, blob.size() - 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

float F32At(const std::string& bytes, size_t i) {
  float f;
  std::memcpy(&f, bytes.data() + 4 * i, 4);
  return f;
}

TEST(Safetensors, HalfPrecisionBytesConvertToF32AndBack) {
  // Little-endian: BF16 0x3F80 = 1.0, 0xC040 = -3.0; F16 0x3C00 = 1.0, 0x0001 = 2^-24.
  auto bf16 = ToF32Bytes(std::string("\x80\x3f\x40\xc0", 4), "BF16");
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  ASSERT_EQ(bf16->size(), 8u);
  EXPECT_EQ(F32At(*bf16, 0), 1.0f);
  EXPECT_EQ(F32At(*bf16, 1), -3.0f);
  auto f16 = ToF32Bytes(std::string("\x00\x3c\x01\x00", 4), "F16");
  ASSERT_TRUE(f16.ok()) << f16.status();
  EXPECT_EQ(F32At(*f16, 0), 1.0f);
  EXPECT_EQ(F32At(*f16, 1), std::ldexp(1.0f, -24));
  EXPECT_EQ(*ToF32Bytes(*bf16, "F32"), *bf16);
  // Back, rounded: 1 + 2^-8 is a BF16 tie (to 0x3F80), 1 + 3 * 2^-8 rounds up to 0x3F82.
  const float values[2] = {1.0f + std::ldexp(1.0f, -8), 1.0f + 3 * std::ldexp(1.0f, -8)};
  const std::string f32(reinterpret_cast<const char*>(values), sizeof(values));
  EXPECT_EQ(*FromF32Bytes(f32, "BF16"), std::string("\x80\x3f\x82\x3f", 4));
  // In F16 both are exact: 0x3C04 and 0x3C0C.
  EXPECT_EQ(*FromF32Bytes(f32, "F16"), std::string("\x04\x3c\x0c\x3c", 4));
  EXPECT_EQ(*FromF32Bytes(f32, "F32"), f32);
  EXPECT_EQ(ToF32Bytes("abc", "BF16").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ToF32Bytes("abcdefgh", "I64").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FromF32Bytes("abcdef", "F16").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FromF32Bytes(f32, "I8").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(PolicyParameters, ExportImportRoundTripAndShapeChecks) {
  torch::manual_seed(1);
  PolicyNet a(27, std::vector<int>{16}, 9);
  torch::manual_seed(2);
  PolicyNet b(27, std::vector<int>{16}, 9);
  ASSERT_TRUE(ImportParameters(b, ExportParameters(a)).ok());
  auto x = torch::rand({3, 27});
  EXPECT_TRUE(torch::allclose(a->forward(x), b->forward(x)));
  PolicyNet c(27, std::vector<int>{8}, 9);
  EXPECT_EQ(ImportParameters(c, ExportParameters(a)).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace rally
