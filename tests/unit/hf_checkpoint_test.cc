#include "common/lm/hf_checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>

#include "nlohmann/json.hpp"

namespace rally {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A fresh, empty directory for one test.
fs::path TestDir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("rally-hf-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(dir);
  return dir;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// The test's model: 2 layers, d_model 8, 2 heads sharing 1 k/v head.
TransformerConfig TinyConfig() {
  TransformerConfig c;
  c.layers = 2;
  c.d_model = 8;
  c.heads = 2;
  c.kv_heads = 1;
  c.d_ff = 12;
  c.vocab = 11;
  c.max_seq_len = 32;
  c.rope_theta = 500000.0;
  c.rms_norm_eps = 1e-5;
  return c;
}

std::vector<float> Floats(const NamedTensor& t) {
  std::vector<float> v(t.data.size() / 4);
  std::memcpy(v.data(), t.data.data(), t.data.size());
  return v;
}

NamedTensor F32Tensor(const std::string& name, std::vector<int64_t> shape,
                      const std::vector<float>& values) {
  NamedTensor t{name, "F32", std::move(shape), std::string(values.size() * 4, '\0')};
  std::memcpy(t.data.data(), values.data(), t.data.size());
  return t;
}

// Every tensor of `config`, with values of many magnitudes and full 24-bit mantissas, so that
// rounding to 16 bits changes almost all of them.
TensorSet RandomWeights(const TransformerConfig& config, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> mantissa(-2.0f, 2.0f);
  std::uniform_int_distribution<int> exponent(-20, 4);
  TensorSet set;
  for (const ExpectedTensor& e : ExpectedTensors(config)) {
    int64_t n = 1;
    for (int64_t d : e.shape) n *= d;
    std::vector<float> values(n);
    for (float& v : values) v = std::ldexp(mantissa(rng), exponent(rng));
    set.tensors.push_back(F32Tensor(e.name, e.shape, values));
  }
  return set;
}

// The nearest number with `bits` mantissa bits (after the leading one) and exponents down to
// `min_exp` (below it: subnormal spacing), ties to the even multiple of the spacing; beyond
// `max_finite`: infinity; the sign kept (a negative number too small is -0). Computed in
// double, where every float and every product here is exact.
float RoundReference(float x, int bits, int min_exp, double max_finite) {
  if (x == 0 || std::isinf(x)) return x;
  int k = 0;
  std::frexp(static_cast<double>(x), &k);  // |x| = f * 2^k, f in [0.5, 1)
  const int e = std::max(k - 1, min_exp);
  const double spacing = std::ldexp(1.0, e - bits);
  const double q = std::fabs(static_cast<double>(x)) / spacing;
  const double low = std::floor(q);
  const double rest = q - low;
  const double n = rest > 0.5                 ? low + 1
                   : rest < 0.5               ? low
                   : std::fmod(low, 2.0) == 0 ? low
                                              : low + 1;
  const double rounded = n * spacing;
  return static_cast<float>(std::copysign(rounded > max_finite ? INFINITY : rounded, x));
}

float Bf16Reference(float x) { return RoundReference(x, 7, -126, std::ldexp(255.0 / 128.0, 127)); }
float HalfReference(float x) { return RoundReference(x, 10, -14, 65504.0); }

uint32_t Bits(float f) { return std::bit_cast<uint32_t>(f); }

// ---- the half-precision conversions ----

TEST(HfCheckpoint, HalfBitPatternsToFloat) {
  EXPECT_EQ(HalfToFloat(0x3C00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xC000), -2.0f);
  EXPECT_EQ(HalfToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(HalfToFloat(0x3555), 0.333251953125f);
  EXPECT_EQ(HalfToFloat(0x0400), std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(HalfToFloat(0x03FF), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(HalfToFloat(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(Bits(HalfToFloat(0x8000)), 0x80000000u);  // -0
  EXPECT_EQ(HalfToFloat(0x7C00), INFINITY);
  EXPECT_EQ(HalfToFloat(0xFC00), -INFINITY);
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7E00)));
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7C01)));  // a signalling NaN is still NaN
  EXPECT_TRUE(std::isnan(HalfToFloat(0xFFFF)));
}

TEST(HfCheckpoint, EveryHalfMatchesItsValueAndConvertsBack) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    const int exponent = (h >> 10) & 0x1F;
    const int mantissa = h & 0x3FF;
    if (exponent == 0x1F) {
      EXPECT_EQ(std::isnan(HalfToFloat(h)), mantissa != 0) << h;
      continue;
    }
    // (-1)^s * mantissa * 2^-24 for subnormals, (1024 + mantissa) * 2^(exponent - 25) else.
    const double magnitude =
        exponent == 0 ? std::ldexp(mantissa, -24) : std::ldexp(1024 + mantissa, exponent - 25);
    const double value = (h & 0x8000) ? -magnitude : magnitude;
    ASSERT_EQ(static_cast<double>(HalfToFloat(h)), value) << h;
    ASSERT_EQ(FloatToHalf(HalfToFloat(h)), h) << h;
  }
}

TEST(HfCheckpoint, FloatToHalfRoundsToNearestEven) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3C00);
  EXPECT_EQ(FloatToHalf(-1.0f), 0xBC00);
  EXPECT_EQ(FloatToHalf(0.1f), 0x2E66);
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7BFF);
  EXPECT_EQ(FloatToHalf(65519.996f), 0x7BFF);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7C00);  // the tie goes to the even, infinity
  EXPECT_EQ(FloatToHalf(1e6f), 0x7C00);
  EXPECT_EQ(FloatToHalf(-1e6f), 0xFC00);
  EXPECT_EQ(FloatToHalf(INFINITY), 0x7C00);
  EXPECT_EQ(FloatToHalf(-INFINITY), 0xFC00);
  const uint16_t nan = FloatToHalf(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7C00, 0x7C00);
  EXPECT_NE(nan & 0x03FF, 0);
  EXPECT_NE(FloatToHalf(std::bit_cast<float>(0x7F800001u)) & 0x03FF, 0);  // payload below 13 bits
  // 1 + 2^-11 lies halfway between 0x3C00 and 0x3C01: to the even 0x3C00.
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);
  EXPECT_EQ(FloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // 0x3C01 odd: up
  // Subnormals, in units of 2^-24.
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);  // half a unit: to even 0
  EXPECT_EQ(FloatToHalf(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(FloatToHalf(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 units: to even 2
  EXPECT_EQ(FloatToHalf(std::ldexp(5.0f, -25)), 0x0002);  // 2.5 units: to even 2
  EXPECT_EQ(FloatToHalf(std::ldexp(-3.0f, -25)), 0x8002);
  EXPECT_EQ(FloatToHalf(std::ldexp(2047.0f, -25)), 0x0400);  // 1023.5 units: to normal
  EXPECT_EQ(FloatToHalf(1e-10f), 0x0000);
  EXPECT_EQ(FloatToHalf(std::numeric_limits<float>::denorm_min()), 0x0000);
}

TEST(HfCheckpoint, Bf16BitPatterns) {
  EXPECT_EQ(Bf16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(Bf16ToFloat(0xBF80), -1.0f);
  EXPECT_EQ(Bf16ToFloat(0x4049), 3.140625f);
  EXPECT_EQ(Bf16ToFloat(0x7F7F), std::ldexp(255.0f, 120));  // the largest finite
  EXPECT_EQ(Bf16ToFloat(0x0001), std::ldexp(1.0f, -133));   // the smallest subnormal
  EXPECT_EQ(Bf16ToFloat(0x7F80), INFINITY);
  EXPECT_EQ(Bf16ToFloat(0xFF80), -INFINITY);
  EXPECT_TRUE(std::isnan(Bf16ToFloat(0x7FC0)));
  EXPECT_EQ(FloatToBf16(1.0f), 0x3F80);
  EXPECT_EQ(FloatToBf16(-2.0f), 0xC000);
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x3F808000u)), 0x3F80);  // tie: to even 0x3F80
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x3F818000u)), 0x3F82);  // tie: 0x3F81 odd, up
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x3F808001u)), 0x3F81);
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x3F807FFFu)), 0x3F80);
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x7F7F7FFFu)), 0x7F7F);
  EXPECT_EQ(FloatToBf16(std::numeric_limits<float>::max()), 0x7F80);  // rounds past the largest
  EXPECT_EQ(FloatToBf16(-INFINITY), 0xFF80);
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x7FC00000u)), 0x7FC0);
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0x7F800001u)), 0x7FC0);  // NaN whose payload is low
  EXPECT_EQ(FloatToBf16(std::bit_cast<float>(0xFFC12345u)) & 0xFFC0, 0xFFC0);
}

// Random float32 bit patterns over the whole range, against the slow reference.
TEST(HfCheckpoint, RoundingMatchesAReferenceOverTheWholeRange) {
  std::mt19937 rng(7);
  for (int i = 0; i < 200000; ++i) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(rng()));
    if (std::isnan(x)) continue;
    ASSERT_EQ(Bits(Bf16ToFloat(FloatToBf16(x))), Bits(Bf16Reference(x))) << Bits(x);
    ASSERT_EQ(Bits(HalfToFloat(FloatToHalf(x))), Bits(HalfReference(x))) << Bits(x);
  }
}

// ---- config.json ----

json Qwen3Json() {
  // Qwen3-0.6B's config.json: head_dim (128) differs from hidden_size / heads (64).
  return json::parse(R"({
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
    "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
    "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null,
    "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.51.0",
    "use_cache": true, "use_sliding_window": false, "vocab_size": 151936})");
}

TEST(HfCheckpoint, Qwen3ConfigWithItsOwnHeadDimMaps) {
  absl::StatusOr<TransformerConfig> c = ParseHfConfig(Qwen3Json(), "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->layers, 28);
  EXPECT_EQ(c->d_model, 1024);
  EXPECT_EQ(c->heads, 16);
  EXPECT_EQ(c->kv_heads, 8);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->d_ff, 3072);
  EXPECT_EQ(c->vocab, 151936);
  EXPECT_EQ(c->max_seq_len, 40960);
  EXPECT_EQ(c->rope_theta, 1e6);
  EXPECT_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_TRUE(c->tie_embeddings);
  EXPECT_TRUE(c->qk_norm);
  EXPECT_FALSE(c->attention_bias);
  const std::vector<ExpectedTensor> tensors = ExpectedTensors(*c);
  EXPECT_EQ(tensors[2].name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(tensors[2].shape, (std::vector<int64_t>{2048, 1024}));
  EXPECT_EQ(tensors[6].name, "model.layers.0.self_attn.q_norm.weight");
  EXPECT_EQ(tensors[6].shape, (std::vector<int64_t>{128}));
}

TEST(HfCheckpoint, Qwen2AndLlamaConfigsMap) {
  // Qwen2.5-0.5B's: biases on q/k/v, no head_dim key, tied.
  absl::StatusOr<TransformerConfig> qwen2 = ParseHfConfig(json::parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "hidden_act": "silu", "hidden_size": 896,
    "intermediate_size": 4864, "max_position_embeddings": 32768, "model_type": "qwen2",
    "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
    "tie_word_embeddings": true, "use_sliding_window": false, "vocab_size": 151936})"),
                                                          "config.json");
  ASSERT_TRUE(qwen2.ok()) << qwen2.status();
  EXPECT_TRUE(qwen2->attention_bias);
  EXPECT_FALSE(qwen2->qk_norm);
  EXPECT_EQ(qwen2->head_dim, 0);
  EXPECT_EQ(qwen2->HeadDim(), 64);
  EXPECT_EQ(qwen2->kv_heads, 2);
  // A llama without num_key_value_heads, rope_theta or rms_norm_eps: the defaults.
  absl::StatusOr<TransformerConfig> llama = ParseHfConfig(json::parse(R"({
    "model_type": "llama", "hidden_size": 64, "intermediate_size": 172,
    "max_position_embeddings": 256, "num_attention_heads": 4, "num_hidden_layers": 3,
    "vocab_size": 100, "attention_bias": false, "rope_scaling": null})"),
                                                          "config.json");
  ASSERT_TRUE(llama.ok()) << llama.status();
  EXPECT_EQ(llama->kv_heads, 4);
  EXPECT_EQ(llama->rope_theta, 10000.0);
  EXPECT_EQ(llama->rms_norm_eps, 1e-6);
  EXPECT_FALSE(llama->tie_embeddings);
  EXPECT_FALSE(llama->attention_bias);
  EXPECT_FALSE(llama->qk_norm);
  // rope_theta inside rope_parameters (newer files).
  json j = Qwen3Json();
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 5000.0}};
  absl::StatusOr<TransformerConfig> nested = ParseHfConfig(j, "config.json");
  ASSERT_TRUE(nested.ok()) << nested.status();
  EXPECT_EQ(nested->rope_theta, 5000.0);
}

void ExpectSameConfig(const TransformerConfig& a, const TransformerConfig& b) {
  EXPECT_EQ(a.layers, b.layers);
  EXPECT_EQ(a.d_model, b.d_model);
  EXPECT_EQ(a.heads, b.heads);
  EXPECT_EQ(a.kv_heads, b.kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.d_ff, b.d_ff);
  EXPECT_EQ(a.vocab, b.vocab);
  EXPECT_EQ(a.max_seq_len, b.max_seq_len);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.tie_embeddings, b.tie_embeddings);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.attention_bias, b.attention_bias);
}

// The three flavours rally writes: llama (untied, then tied), qwen2 (biases), qwen3 (q/k norms,
// its own head_dim).
std::vector<std::pair<std::string, TransformerConfig>> Flavours() {
  std::vector<std::pair<std::string, TransformerConfig>> out;
  TransformerConfig llama = TinyConfig();
  out.push_back({"llama", llama});
  llama.tie_embeddings = true;
  llama.rms_norm_eps = 1e-6;
  out.push_back({"llama", llama});
  TransformerConfig qwen2 = TinyConfig();
  qwen2.attention_bias = true;
  qwen2.tie_embeddings = true;
  out.push_back({"qwen2", qwen2});
  TransformerConfig qwen3 = TinyConfig();
  qwen3.qk_norm = true;
  qwen3.head_dim = 6;
  qwen3.rope_theta = 1e6;
  out.push_back({"qwen3", qwen3});
  return out;
}

TEST(HfCheckpoint, ConfigJsonRoundTripsForEveryFlavour) {
  for (const auto& [type, config] : Flavours()) {
    const json j = HfConfigJson(config);
    EXPECT_EQ(j["model_type"], type);
    EXPECT_EQ(HfModelType(config), type);
    EXPECT_EQ(j["head_dim"], config.HeadDim());
    EXPECT_TRUE(j["rope_scaling"].is_null());
    absl::StatusOr<TransformerConfig> back = ParseHfConfig(json::parse(j.dump()), "config.json");
    ASSERT_TRUE(back.ok()) << back.status();
    ExpectSameConfig(*back, config);
  }
  EXPECT_EQ(HfConfigJson(Flavours()[2].second)["architectures"][0], "Qwen2ForCausalLM");
  EXPECT_EQ(HfConfigJson(Flavours()[3].second)["architectures"][0], "Qwen3ForCausalLM");
  EXPECT_EQ(HfConfigJson(Flavours()[0].second)["architectures"][0], "LlamaForCausalLM");
}

// `message` names every one of `parts`.
void ExpectNames(const absl::Status& status, const std::vector<std::string>& parts) {
  EXPECT_FALSE(status.ok());
  for (const std::string& part : parts) {
    EXPECT_NE(status.message().find(part), std::string_view::npos)
        << "'" << part << "' not in: " << status.message();
  }
}

TEST(HfCheckpoint, BadConfigsNameTheKey) {
  struct Case {
    std::string key;
    json value;  // null: the key is removed
    std::vector<std::string> says;
  };
  const std::vector<Case> cases = {
      {"model_type", "gpt2", {"model_type", "gpt2"}},
      {"model_type", nullptr, {"model_type", "missing"}},
      {"hidden_size", nullptr, {"hidden_size", "missing"}},
      {"vocab_size", nullptr, {"vocab_size", "missing"}},
      {"hidden_size", "1024", {"hidden_size", "not an integer"}},
      {"num_hidden_layers", 0, {"num_hidden_layers", "positive"}},
      {"num_hidden_layers", 10001, {"num_hidden_layers", "more than 10000"}},
      {"hidden_size", 4294967296, {"hidden_size", "positive integer (up to 2^31-1)"}},
      {"intermediate_size", -3, {"intermediate_size", "positive"}},
      {"max_position_embeddings", 1.5, {"max_position_embeddings", "integer"}},
      {"num_key_value_heads", 3, {"num_key_value_heads", "does not divide"}},
      {"head_dim", 0, {"head_dim", "positive"}},
      {"rope_theta", "big", {"rope_theta", "not a number"}},
      {"rms_norm_eps", 0, {"rms_norm_eps", "positive"}},
      {"tie_word_embeddings", 1, {"tie_word_embeddings", "true or false"}},
      {"rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}, {"rope_scaling", "not supported"}},
      {"attention_bias", true, {"attention_bias", "not supported"}},
      {"hidden_act", "gelu", {"hidden_act", "silu"}},
      {"use_sliding_window", true, {"use_sliding_window", "not supported"}},
  };
  for (const Case& c : cases) {
    json j = Qwen3Json();
    if (c.value.is_null()) {
      j.erase(c.key);
    } else {
      j[c.key] = c.value;
    }
    ExpectNames(ParseHfConfig(j, "/m/config.json").status(), c.says);
    ExpectNames(ParseHfConfig(j, "/m/config.json").status(), {"/m/config.json"});
  }
  // Heads that do not divide the width need a head_dim.
  json j = Qwen3Json();
  j.erase("head_dim");
  j["num_attention_heads"] = 24;
  j["num_key_value_heads"] = 8;
  ExpectNames(ParseHfConfig(j, "config.json").status(), {"num_attention_heads", "head_dim"});
  ExpectNames(ParseHfConfig(json::array({1, 2}), "config.json").status(), {"config.json"});
}

// ---- directories ----

void ExpectSameWeights(const TensorSet& a, const TensorSet& b) {
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].name, b.tensors[i].name);
    EXPECT_EQ(a.tensors[i].dtype, b.tensors[i].dtype);
    EXPECT_EQ(a.tensors[i].shape, b.tensors[i].shape);
    EXPECT_TRUE(a.tensors[i].data == b.tensors[i].data) << a.tensors[i].name;
  }
}

TEST(HfCheckpoint, Fp32RoundTripIsBitExactForEveryFlavour) {
  for (const auto& [type, config] : Flavours()) {
    const fs::path dir = TestDir("fp32");
    const TensorSet weights = RandomWeights(config, 1);
    ASSERT_TRUE(WriteHfDirectory(dir.string(), config, weights, "fp32", "").ok());
    absl::StatusOr<HfModel> model = LoadHfDirectory(dir.string());
    ASSERT_TRUE(model.ok()) << model.status();
    EXPECT_EQ(model->model_type, type);
    ExpectSameConfig(model->config, config);
    ExpectSameWeights(model->weights, weights);  // ExpectedTensors' order, F32, same bytes
    EXPECT_EQ(model->tokenizer_path, "");
    EXPECT_TRUE(model->ignored_tensors.empty());
    // The file is F32 with transformers' metadata, and nothing but the HF files is written.
    absl::StatusOr<TensorSet> file = DecodeSafetensors(ReadFile(dir / "model.safetensors"));
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ(file->metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
    EXPECT_EQ(file->tensors.size(), weights.tensors.size());
    EXPECT_EQ(json::parse(ReadFile(dir / "config.json"))["torch_dtype"], "float32");
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 2);
    fs::remove_all(dir);
  }
}

TEST(HfCheckpoint, HalfPrecisionRoundTripsGiveTheRoundedValues) {
  const TransformerConfig config = TinyConfig();
  const TensorSet weights = RandomWeights(config, 2);
  for (const std::string dtype : {"bf16", "fp16"}) {
    const fs::path dir = TestDir(dtype);
    ASSERT_TRUE(WriteHfDirectory(dir.string(), config, weights, dtype, "").ok());
    absl::StatusOr<HfModel> model = LoadHfDirectory(dir.string());
    ASSERT_TRUE(model.ok()) << model.status();
    ASSERT_EQ(model->weights.tensors.size(), weights.tensors.size());
    int changed = 0;
    for (size_t i = 0; i < weights.tensors.size(); ++i) {
      const std::vector<float> in = Floats(weights.tensors[i]);
      const std::vector<float> out = Floats(model->weights.tensors[i]);
      ASSERT_EQ(in.size(), out.size());
      for (size_t k = 0; k < in.size(); ++k) {
        const float want = dtype == "bf16" ? Bf16Reference(in[k]) : HalfReference(in[k]);
        ASSERT_EQ(Bits(out[k]), Bits(want)) << weights.tensors[i].name << "[" << k << "]";
        changed += in[k] != out[k];
      }
    }
    EXPECT_GT(changed, 100);  // the rounding did happen
    absl::StatusOr<TensorSet> file = DecodeSafetensors(ReadFile(dir / "model.safetensors"));
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ(file->tensors[0].dtype, dtype == "bf16" ? "BF16" : "F16");
    EXPECT_EQ(json::parse(ReadFile(dir / "config.json"))["torch_dtype"],
              dtype == "bf16" ? "bfloat16" : "float16");
    fs::remove_all(dir);
  }
}

TEST(HfCheckpoint, TheTokenizerIsCopiedAndFound) {
  const fs::path dir = TestDir("tokenizer");
  const fs::path source = TestDir("tokenizer-source.json");
  WriteFile(source, R"({"model": {"type": "BPE"}})");
  const TransformerConfig config = TinyConfig();
  ASSERT_TRUE(
      WriteHfDirectory(dir.string(), config, RandomWeights(config, 3), "", source.string()).ok());
  absl::StatusOr<HfModel> model = LoadHfDirectory(dir.string());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->tokenizer_path, (dir / "tokenizer.json").string());
  EXPECT_EQ(ReadFile(dir / "tokenizer.json"), R"({"model": {"type": "BPE"}})");
  fs::remove_all(dir);
  ExpectNames(WriteHfDirectory(dir.string(), config, RandomWeights(config, 3), "", "/no/such.json"),
              {"/no/such.json"});
  EXPECT_FALSE(fs::exists(dir));  // nothing written
  fs::remove(source);
}

// Writes `set` as the shards of `dir` by `shard_of` (tensor -> file), and the index.
void WriteSharded(const fs::path& dir, const TensorSet& set,
                  const std::map<std::string, std::string>& shard_of) {
  std::map<std::string, TensorSet> shards;
  json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", json::object()}};
  for (const NamedTensor& t : set.tensors) {
    shards[shard_of.at(t.name)].tensors.push_back(t);
    index["weight_map"][t.name] = shard_of.at(t.name);
  }
  for (const auto& [file, shard] : shards) WriteFile(dir / file, EncodeSafetensors(shard));
  WriteFile(dir / "model.safetensors.index.json", index.dump(2));
}

TEST(HfCheckpoint, AShardedDirectoryLoadsAsTheSingleFile) {
  const TransformerConfig config = TinyConfig();
  const fs::path single = TestDir("single");
  ASSERT_TRUE(WriteHfDirectory(single.string(), config, RandomWeights(config, 4), "bf16", "").ok());
  absl::StatusOr<HfModel> want = LoadHfDirectory(single.string());
  ASSERT_TRUE(want.ok()) << want.status();
  // The same bf16 tensors in two shards (layer 1 and the head in the second), with the rotary
  // frequencies Hugging Face adds.
  absl::StatusOr<TensorSet> file = DecodeSafetensors(ReadFile(single / "model.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status();
  file->tensors.push_back(
      {"model.layers.0.self_attn.rotary_emb.inv_freq", "F32", {2}, std::string(8, '\0')});
  std::map<std::string, std::string> shard_of;
  for (const NamedTensor& t : file->tensors) {
    const bool second = t.name.rfind("model.layers.1.", 0) == 0 || t.name == "lm_head.weight" ||
                        t.name == "model.norm.weight";
    shard_of[t.name] =
        second ? "model-00002-of-00002.safetensors" : "model-00001-of-00002.safetensors";
  }
  const fs::path sharded = TestDir("sharded");
  fs::create_directories(sharded);
  fs::copy_file(single / "config.json", sharded / "config.json");
  WriteSharded(sharded, *file, shard_of);
  absl::StatusOr<HfModel> got = LoadHfDirectory(sharded.string());
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSameWeights(got->weights, want->weights);
  EXPECT_EQ(got->ignored_tensors,
            std::vector<std::string>{"model.layers.0.self_attn.rotary_emb.inv_freq"});
  // A shard the index names is absent.
  fs::remove(sharded / "model-00002-of-00002.safetensors");
  absl::StatusOr<HfModel> absent = LoadHfDirectory(sharded.string());
  EXPECT_EQ(absent.status().code(), absl::StatusCode::kNotFound);
  // (lm_head.weight is the first tensor of the index placed in it.)
  ExpectNames(absent.status(), {"model-00002-of-00002.safetensors", "'lm_head.weight'"});
  // The index lacks a tensor.
  file->tensors.erase(file->tensors.begin());  // lm_head.weight, first by name
  WriteSharded(sharded, *file, shard_of);
  ExpectNames(LoadHfDirectory(sharded.string()).status(),
              {"model.safetensors.index.json", "'lm_head.weight'", "missing"});
  // The index places a tensor in a shard that does not hold it.
  json index = json::parse(ReadFile(sharded / "model.safetensors.index.json"));
  index["weight_map"]["lm_head.weight"] = "model-00001-of-00002.safetensors";
  WriteFile(sharded / "model.safetensors.index.json", index.dump());
  ExpectNames(LoadHfDirectory(sharded.string()).status(),
              {"model-00001-of-00002.safetensors", "'lm_head.weight'", "missing"});
  // A shard outside the directory.
  index["weight_map"]["lm_head.weight"] = "../model.safetensors";
  WriteFile(sharded / "model.safetensors.index.json", index.dump());
  ExpectNames(LoadHfDirectory(sharded.string()).status(),
              {"model.safetensors.index.json", "'lm_head.weight'"});
  fs::remove_all(single);
  fs::remove_all(sharded);
}

// A written directory of TinyConfig whose model.safetensors `edit` changes.
class BadDirectory {
 public:
  explicit BadDirectory(const std::string& name) : dir_(TestDir(name)) {
    EXPECT_TRUE(
        WriteHfDirectory(dir_.string(), TinyConfig(), RandomWeights(TinyConfig(), 5), "fp32", "")
            .ok());
  }
  ~BadDirectory() { fs::remove_all(dir_); }

  absl::Status EditWeights(const std::function<void(TensorSet&)>& edit) {
    absl::StatusOr<TensorSet> set = DecodeSafetensors(ReadFile(dir_ / "model.safetensors"));
    EXPECT_TRUE(set.ok()) << set.status();
    edit(*set);
    WriteFile(dir_ / "model.safetensors", EncodeSafetensors(*set));
    return LoadHfDirectory(dir_.string()).status();
  }

  NamedTensor& Find(TensorSet& set, const std::string& name) {
    for (NamedTensor& t : set.tensors) {
      if (t.name == name) return t;
    }
    ADD_FAILURE() << name;
    return set.tensors.front();
  }

  const fs::path dir_;
};

TEST(HfCheckpoint, BadWeightsNameTheFileAndTheTensor) {
  const std::string up = "model.layers.1.mlp.up_proj.weight";
  {
    BadDirectory d("missing-tensor");
    ExpectNames(d.EditWeights([&](TensorSet& s) {
      s.tensors.erase(std::find_if(s.tensors.begin(), s.tensors.end(),
                                   [&](const NamedTensor& t) { return t.name == up; }));
    }),
                {(d.dir_ / "model.safetensors").string(), "'" + up + "'", "missing"});
  }
  {
    BadDirectory d("wrong-shape");
    ExpectNames(d.EditWeights([&](TensorSet& s) {
      d.Find(s, up).shape = {8, 12};
    }),
                {"model.safetensors", "'" + up + "'", "[8, 12]", "[12, 8]"});
  }
  {
    BadDirectory d("wrong-dtype");
    ExpectNames(d.EditWeights([&](TensorSet& s) {
      NamedTensor& t = d.Find(s, "model.norm.weight");
      t.dtype = "I64";
      t.data.resize(64);
    }),
                {"model.safetensors", "'model.norm.weight'", "I64"});
  }
  {
    BadDirectory d("truncated");
    std::string blob = ReadFile(d.dir_ / "model.safetensors");
    WriteFile(d.dir_ / "model.safetensors", blob.substr(0, blob.size() - 10));
    // lm_head.weight is the last in the data.
    ExpectNames(LoadHfDirectory(d.dir_.string()).status(),
                {"model.safetensors", "'lm_head.weight'"});
    WriteFile(d.dir_ / "model.safetensors", blob.substr(0, 20));
    ExpectNames(LoadHfDirectory(d.dir_.string()).status(), {"model.safetensors", "header"});
  }
  {
    BadDirectory d("no-weights");
    fs::remove(d.dir_ / "model.safetensors");
    absl::Status s = LoadHfDirectory(d.dir_.string()).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
    ExpectNames(s, {"model.safetensors", "model.safetensors.index.json"});
  }
}

TEST(HfCheckpoint, BadConfigFilesNameTheFile) {
  BadDirectory d("bad-config");
  const fs::path path = d.dir_ / "config.json";
  const json good = json::parse(ReadFile(path));
  WriteFile(path, R"({"model_type": "llama", "hidden_size": )");
  ExpectNames(LoadHfDirectory(d.dir_.string()).status(), {path.string(), "not valid JSON"});
  json j = good;
  j["model_type"] = "mistral";
  WriteFile(path, j.dump());
  ExpectNames(LoadHfDirectory(d.dir_.string()).status(), {path.string(), "model_type", "mistral"});
  j = good;
  j.erase("intermediate_size");
  WriteFile(path, j.dump());
  ExpectNames(LoadHfDirectory(d.dir_.string()).status(),
              {path.string(), "intermediate_size", "missing"});
  fs::remove(path);
  absl::Status s = LoadHfDirectory(d.dir_.string()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  ExpectNames(s, {path.string()});
}

TEST(HfCheckpoint, ATiedModelMayHoldItsHeadWhenItIsTheEmbedding) {
  TransformerConfig config = TinyConfig();
  config.tie_embeddings = true;
  const fs::path dir = TestDir("tied");
  const TensorSet weights = RandomWeights(config, 6);
  ASSERT_TRUE(WriteHfDirectory(dir.string(), config, weights, "bf16", "").ok());
  absl::StatusOr<TensorSet> file = DecodeSafetensors(ReadFile(dir / "model.safetensors"));
  ASSERT_TRUE(file.ok());
  NamedTensor head = file->tensors.front();  // model.embed_tokens.weight, first written
  ASSERT_EQ(head.name, "model.embed_tokens.weight");
  head.name = "lm_head.weight";
  file->tensors.push_back(head);
  WriteFile(dir / "model.safetensors", EncodeSafetensors(*file));
  absl::StatusOr<HfModel> model = LoadHfDirectory(dir.string());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->weights.tensors.size(), ExpectedTensors(config).size());  // no lm_head
  EXPECT_TRUE(model->ignored_tensors.empty());
  file->tensors.back().data[5] ^= 1;
  WriteFile(dir / "model.safetensors", EncodeSafetensors(*file));
  ExpectNames(LoadHfDirectory(dir.string()).status(),
              {"model.safetensors", "'lm_head.weight'", "tie_word_embeddings"});
  fs::remove_all(dir);
}

TEST(HfCheckpoint, WritingRefusesWeightsThatAreNotTheConfigsAndWritesNothing) {
  const TransformerConfig config = TinyConfig();
  const fs::path dir = TestDir("refused");
  const TensorSet good = RandomWeights(config, 7);
  TensorSet missing = good;
  missing.tensors.pop_back();
  ExpectNames(WriteHfDirectory(dir.string(), config, missing, "fp32", ""),
              {"'lm_head.weight'", "missing"});
  TensorSet extra = good;
  extra.tensors.push_back(
      F32Tensor("model.layers.2.mlp.up_proj.weight", {12, 8}, std::vector<float>(96)));
  ExpectNames(WriteHfDirectory(dir.string(), config, extra, "fp32", ""),
              {"'model.layers.2.mlp.up_proj.weight'"});
  TensorSet shaped = good;
  shaped.tensors[1].shape = {4, 2};
  ExpectNames(WriteHfDirectory(dir.string(), config, shaped, "fp32", ""),
              {"'model.layers.0.input_layernorm.weight'", "[4, 2]", "[8]"});
  TensorSet short_data = good;
  short_data.tensors[1].data.resize(12);
  ExpectNames(WriteHfDirectory(dir.string(), config, short_data, "fp32", ""),
              {"'model.layers.0.input_layernorm.weight'", "12 bytes"});
  ExpectNames(WriteHfDirectory(dir.string(), config, good, "int8", ""), {"int8"});
  // fp16 would make 65520 infinite; bf16 holds it.
  TensorSet large = good;
  reinterpret_cast<float*>(large.tensors[3].data.data())[2] = 65520.0f;
  ExpectNames(WriteHfDirectory(dir.string(), config, large, "fp16", ""),
              {"'model.layers.0.self_attn.k_proj.weight'", "65520", "fp16"});
  EXPECT_FALSE(fs::exists(dir));
  ASSERT_TRUE(WriteHfDirectory(dir.string(), config, large, "bf16", "").ok());
  fs::remove_all(dir);
  TransformerConfig both = config;
  both.qk_norm = true;
  both.attention_bias = true;
  ExpectNames(WriteHfDirectory(dir.string(), both, RandomWeights(both, 7), "fp32", ""),
              {"attention_bias"});
  EXPECT_FALSE(fs::exists(dir));
}

}  // namespace
}  // namespace rally
