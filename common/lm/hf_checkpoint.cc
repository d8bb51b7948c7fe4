#include "common/lm/hf_checkpoint.h"

#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/util/durable_file.h"
#include "nlohmann/json.hpp"

namespace rally {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kConfigFile[] = "config.json";
constexpr char kWeightsFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";
constexpr char kTokenizerFile[] = "tokenizer.json";
constexpr int kMaxLayers = 10000;

absl::StatusOr<json> ReadJsonFile(const fs::path& path) {
  absl::StatusOr<std::string> text = ReadFileBytes(path);
  if (!text.ok()) return text.status();
  try {
    return json::parse(*text);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path.string(), ": not valid JSON (", e.what(), ")"));
  }
}

// ---- config.json ----

absl::Status KeyError(const std::string& path, const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": key \"", key, "\" ", what));
}

// The value of `key`, or nullptr when it is absent or null (Hugging Face writes null for unset).
const json* Find(const json& j, const std::string& key) {
  const auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

absl::StatusOr<int> PositiveInt(const json& j, const std::string& path, const std::string& key,
                                std::optional<int> fallback = std::nullopt) {
  const json* v = Find(j, key);
  if (v == nullptr) {
    if (fallback.has_value()) return *fallback;
    return KeyError(path, key, "is missing");
  }
  if (!v->is_number_integer()) return KeyError(path, key, "is not an integer: " + v->dump());
  const bool in_range = v->is_number_unsigned()
                            ? v->get<uint64_t>() >= 1 && v->get<uint64_t>() <= INT_MAX
                            : v->get<int64_t>() >= 1 && v->get<int64_t>() <= INT_MAX;
  if (!in_range) {
    return KeyError(path, key, "is not a positive integer (up to 2^31-1): " + v->dump());
  }
  return static_cast<int>(v->get<int64_t>());
}

absl::StatusOr<double> PositiveNumber(const json& j, const std::string& path,
                                      const std::string& key, double fallback) {
  const json* v = Find(j, key);
  if (v == nullptr) return fallback;
  if (!v->is_number()) return KeyError(path, key, "is not a number: " + v->dump());
  if (!(v->get<double>() > 0)) return KeyError(path, key, "is not positive: " + v->dump());
  return v->get<double>();
}

absl::StatusOr<bool> Bool(const json& j, const std::string& path, const std::string& key,
                          bool fallback) {
  const json* v = Find(j, key);
  if (v == nullptr) return fallback;
  if (!v->is_boolean()) return KeyError(path, key, "is not true or false: " + v->dump());
  return v->get<bool>();
}

// The rope_type of a rope_scaling or rope_parameters object ("type" in older files).
std::string RopeType(const json& rope) {
  for (const char* key : {"rope_type", "type"}) {
    const json* v = Find(rope, key);
    if (v != nullptr && v->is_string()) return v->get<std::string>();
  }
  return "default";
}

// rope_theta, at the top level or (newer files) in rope_parameters; scaled rotary embeddings
// are refused.
absl::StatusOr<double> ParseRope(const json& j, const std::string& path) {
  const json* scaling = Find(j, "rope_scaling");
  if (scaling != nullptr && (!scaling->is_object() || RopeType(*scaling) != "default")) {
    return KeyError(path, "rope_scaling",
                    "is " + scaling->dump() + ": rope scaling is not supported (only null)");
  }
  const json* parameters = Find(j, "rope_parameters");
  if (parameters == nullptr) return PositiveNumber(j, path, "rope_theta", 10000.0);
  if (!parameters->is_object() || RopeType(*parameters) != "default") {
    return KeyError(path, "rope_parameters",
                    "is " + parameters->dump() + ": only the default rotary embedding (rope_type " +
                        "\"default\") is supported");
  }
  return PositiveNumber(*parameters, path + " rope_parameters", "rope_theta", 10000.0);
}

// Features of the three architectures that rally's transformer does not have.
absl::Status CheckSupported(const json& j, const std::string& path, const std::string& type) {
  const json* act = Find(j, "hidden_act");
  if (act != nullptr && *act != "silu") {
    return KeyError(path, "hidden_act", "is " + act->dump() + ": only \"silu\" is supported");
  }
  for (const char* key : {"use_sliding_window", "mlp_bias"}) {
    absl::StatusOr<bool> on = Bool(j, path, key, false);
    if (!on.ok()) return on.status();
    if (*on) return KeyError(path, key, "is true: not supported");
  }
  if (type == "qwen2") return absl::OkStatus();  // attention_bias is not a key of qwen2
  absl::StatusOr<bool> bias = Bool(j, path, "attention_bias", false);
  if (!bias.ok()) return bias.status();
  if (*bias) {
    return KeyError(path, "attention_bias",
                    "is true: not supported for " + type +
                        " (its o_proj has a bias too; rally's attention has biases on q/k/v "
                        "only, as qwen2's)");
  }
  return absl::OkStatus();
}

// The sizes: layers, widths, heads.
absl::Status ParseSizes(const json& j, const std::string& path, TransformerConfig& c) {
  const std::pair<const char*, int*> required[] = {
      {"num_hidden_layers", &c.layers},  {"hidden_size", &c.d_model},
      {"num_attention_heads", &c.heads}, {"intermediate_size", &c.d_ff},
      {"vocab_size", &c.vocab},          {"max_position_embeddings", &c.max_seq_len}};
  for (const auto& [key, field] : required) {
    absl::StatusOr<int> v = PositiveInt(j, path, key);
    if (!v.ok()) return v.status();
    *field = *v;
  }
  // ExpectedTensors lists a dozen tensors a layer: a bound keeps a damaged file from asking for
  // billions (the deepest public models have under 200 layers).
  if (c.layers > kMaxLayers) {
    return KeyError(path, "num_hidden_layers",
                    absl::StrCat("is ", c.layers, ": more than ", kMaxLayers, " is not supported"));
  }
  absl::StatusOr<int> kv_heads = PositiveInt(j, path, "num_key_value_heads", c.heads);
  if (!kv_heads.ok()) return kv_heads.status();
  c.kv_heads = *kv_heads;
  if (c.heads % c.kv_heads != 0) {
    return KeyError(path, "num_key_value_heads",
                    absl::StrCat("is ", c.kv_heads, ", which does not divide num_attention_heads (",
                                 c.heads, ")"));
  }
  const bool divisible = c.d_model % c.heads == 0;
  absl::StatusOr<int> head_dim =
      PositiveInt(j, path, "head_dim", divisible ? c.d_model / c.heads : 0);
  if (!head_dim.ok()) return head_dim.status();
  if (*head_dim == 0) {
    return KeyError(path, "num_attention_heads",
                    absl::StrCat("is ", c.heads, ", which does not divide hidden_size (", c.d_model,
                                 "), and there is no head_dim"));
  }
  // 0 means d_model / heads (TransformerConfig::HeadDim).
  c.head_dim = divisible && *head_dim == c.d_model / c.heads ? 0 : *head_dim;
  return absl::OkStatus();
}

// ---- weights ----

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// Collects the tensors of a model of `config` from one safetensors file after another, holding
// one file's bytes at a time.
class WeightCollector {
 public:
  explicit WeightCollector(const TransformerConfig& config) : tied_(config.tie_embeddings) {
    expected_ = ExpectedTensors(config);
    for (const ExpectedTensor& t : expected_) shapes_[t.name] = &t.shape;
  }
  WeightCollector(const WeightCollector&) = delete;
  WeightCollector& operator=(const WeightCollector&) = delete;

  // Reads the safetensors file `path`. With `routed`, only the tensors in it are taken from this
  // file (the index assigns them here) and each must be in it.
  absl::Status ReadFile(const fs::path& path, const std::set<std::string>* routed) {
    absl::StatusOr<std::string> blob = ReadFileBytes(path);
    if (!blob.ok()) return blob.status();
    absl::StatusOr<TensorSetView> set = DecodeSafetensorsView(*blob);
    if (!set.ok()) return Prefixed(path, set.status());
    std::set<std::string> found;
    for (const TensorView& t : set->tensors) {
      if (routed != nullptr && routed->count(t.name) == 0) continue;
      found.insert(t.name);
      if (absl::Status s = Take(path, t); !s.ok()) return s;
    }
    if (routed == nullptr) return absl::OkStatus();
    for (const std::string& name : *routed) {
      if (found.count(name) == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            path.string(), ": tensor '", name, "' is missing (", kIndexFile, " places it here)"));
      }
    }
    return absl::OkStatus();
  }

  // The tensors in ExpectedTensors' order, once every file is read. `missing_in` names the file
  // that should have listed a tensor that none held.
  absl::StatusOr<TensorSet> Finish(const fs::path& missing_in) {
    TensorSet out;
    for (const ExpectedTensor& e : expected_) {
      auto it = taken_.find(e.name);
      if (it == taken_.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(missing_in.string(), ": tensor '", e.name, "' is missing"));
      }
      out.tensors.push_back({e.name, "F32", e.shape, std::move(it->second)});
    }
    if (tied_lm_head_.has_value() && *tied_lm_head_ != out.tensors.front().data) {
      return absl::InvalidArgumentError(absl::StrCat(
          lm_head_file_, ": tensor 'lm_head.weight' differs from 'model.embed_tokens.weight', and ",
          kConfigFile, " says tie_word_embeddings: true (set it to false to use lm_head.weight)"));
    }
    return out;
  }

  std::vector<std::string> Ignored() const {
    return std::vector<std::string>(ignored_.begin(), ignored_.end());
  }

 private:
  static absl::Status Prefixed(const fs::path& path, const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat(path.string(), ": ", s.message()));
  }

  absl::Status Take(const fs::path& path, const TensorView& t) {
    const auto shape = shapes_.find(t.name);
    const bool tied_head = tied_ && t.name == "lm_head.weight";
    if (shape == shapes_.end() && !tied_head) {
      ignored_.insert(t.name);
      return absl::OkStatus();
    }
    if (taken_.count(t.name) != 0 || (tied_head && tied_lm_head_.has_value())) {
      return absl::InvalidArgumentError(
          absl::StrCat(path.string(), ": tensor '", t.name, "' is in more than one file"));
    }
    const std::vector<int64_t>& want =
        tied_head ? *shapes_.at("model.embed_tokens.weight") : *shape->second;
    if (t.shape != want) {
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ": tensor '", t.name,
                                                     "' has shape ", ShapeText(t.shape), ", ",
                                                     kConfigFile, " says ", ShapeText(want)));
    }
    absl::StatusOr<std::string> f32 = ToF32Bytes(t.data, t.dtype);
    if (!f32.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ": tensor '", t.name,
                                                     "' has dtype ", t.dtype,
                                                     "; rally reads F32, BF16 and F16"));
    }
    if (tied_head) {
      tied_lm_head_ = *std::move(f32);
      lm_head_file_ = path.string();
    } else {
      taken_[t.name] = *std::move(f32);
    }
    return absl::OkStatus();
  }

  const bool tied_;
  std::vector<ExpectedTensor> expected_;
  std::map<std::string, const std::vector<int64_t>*> shapes_;
  std::map<std::string, std::string> taken_;  // name -> F32 bytes
  std::optional<std::string> tied_lm_head_;   // lm_head.weight of a tied model, to compare
  std::string lm_head_file_;
  std::set<std::string> ignored_;
};

// model.safetensors.index.json: shard file -> the tensors it holds. Shards are plain file names
// in `dir`, every one present.
absl::StatusOr<std::map<std::string, std::set<std::string>>> ReadIndex(const fs::path& dir) {
  const fs::path path = dir / kIndexFile;
  absl::StatusOr<json> index = ReadJsonFile(path);
  if (!index.ok()) return index.status();
  const json* map = index->is_object() ? Find(*index, "weight_map") : nullptr;
  if (map == nullptr || !map->is_object()) {
    return KeyError(path.string(), "weight_map", "is missing or not an object");
  }
  std::map<std::string, std::set<std::string>> shards;
  for (auto it = map->begin(); it != map->end(); ++it) {
    const std::string shard = it->is_string() ? it->get<std::string>() : "";
    if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(path.string(), ": tensor '", it.key(),
                                                     "' maps to ", it->dump(),
                                                     ", not a file name in the directory"));
    }
    std::error_code ec;
    if (!fs::is_regular_file(dir / shard, ec)) {
      return absl::NotFoundError(absl::StrCat((dir / shard).string(), ": no such file (",
                                              path.string(), " places tensor '", it.key(),
                                              "' in it)"));
    }
    shards[shard].insert(it.key());
  }
  return shards;
}

absl::Status LoadWeights(const fs::path& dir, HfModel& model) {
  WeightCollector collector(model.config);
  std::error_code ec;
  fs::path listing = dir / kWeightsFile;
  if (fs::is_regular_file(listing, ec)) {
    if (absl::Status s = collector.ReadFile(listing, nullptr); !s.ok()) return s;
  } else if (fs::is_regular_file(dir / kIndexFile, ec)) {
    listing = dir / kIndexFile;
    absl::StatusOr<std::map<std::string, std::set<std::string>>> shards = ReadIndex(dir);
    if (!shards.ok()) return shards.status();
    for (const auto& [shard, names] : *shards) {
      if (absl::Status s = collector.ReadFile(dir / shard, &names); !s.ok()) return s;
    }
  } else {
    return absl::NotFoundError(
        absl::StrCat(dir.string(), ": neither ", kWeightsFile, " nor ", kIndexFile));
  }
  absl::StatusOr<TensorSet> weights = collector.Finish(listing);
  if (!weights.ok()) return weights.status();
  model.weights = *std::move(weights);
  model.ignored_tensors = collector.Ignored();
  return absl::OkStatus();
}

// ---- writing ----

// The bytes of `t`, which must be F32 and shaped as `e`, in `dtype`. F16 refuses a finite value
// it would round to infinity (beyond 65519.99...).
absl::StatusOr<std::string> ConvertOne(const ExpectedTensor& e, const NamedTensor& t,
                                       const std::string& dtype) {
  if (t.dtype != "F32" || t.shape != e.shape) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' is ", t.dtype, " ",
                                                   ShapeText(t.shape), ", the config needs F32 ",
                                                   ShapeText(e.shape)));
  }
  int64_t elements = 1;
  for (int64_t d : e.shape) elements *= d;
  absl::StatusOr<std::string> data = FromF32Bytes(t.data, dtype);
  if (!data.ok() || static_cast<int64_t>(t.data.size()) != 4 * elements) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", t.name, "' holds ", t.data.size(), " bytes, not ", 4 * elements));
  }
  for (int64_t i = 0; dtype == "F16" && i < elements; ++i) {
    float v;
    std::memcpy(&v, t.data.data() + 4 * i, 4);
    if (std::isfinite(v) && std::isinf(HalfToFloat(FloatToHalf(v)))) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", t.name, "' holds ", v, " at ", i,
                       ", beyond fp16's range (largest 65504): ", "write bf16 or fp32"));
    }
  }
  return data;
}

// The tensors of `weights` as ExpectedTensors(config) lists them, converted to `dtype`.
absl::StatusOr<TensorSet> ConvertForWriting(const TransformerConfig& config,
                                            const TensorSet& weights, const std::string& dtype) {
  std::map<std::string, const NamedTensor*> by_name;
  for (const NamedTensor& t : weights.tensors) {
    if (!by_name.emplace(t.name, &t).second) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "' is given twice"));
    }
  }
  TensorSet out;
  out.metadata["format"] = "pt";  // transformers checks it
  for (const ExpectedTensor& e : ExpectedTensors(config)) {
    auto it = by_name.find(e.name);
    if (it == by_name.end()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", e.name, "' is missing"));
    }
    absl::StatusOr<std::string> data = ConvertOne(e, *it->second, dtype);
    if (!data.ok()) return data.status();
    out.tensors.push_back({e.name, dtype, e.shape, *std::move(data)});
    by_name.erase(it);
  }
  if (!by_name.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", by_name.begin()->first,
                                                   "' is not part of a model of this config"));
  }
  return out;
}

}  // namespace

std::string HfModelType(const TransformerConfig& config) {
  if (config.qk_norm) return "qwen3";
  return config.attention_bias ? "qwen2" : "llama";
}

absl::StatusOr<TransformerConfig> ParseHfConfig(const json& j, const std::string& path) {
  if (!j.is_object()) return absl::InvalidArgumentError(path + ": not a JSON object");
  const json* type = Find(j, "model_type");
  if (type == nullptr) return KeyError(path, "model_type", "is missing");
  if (*type != "llama" && *type != "qwen2" && *type != "qwen3") {
    return KeyError(path, "model_type",
                    "is " + type->dump() + ": rally reads \"llama\", \"qwen2\" and \"qwen3\"");
  }
  const std::string model_type = type->get<std::string>();
  if (absl::Status s = CheckSupported(j, path, model_type); !s.ok()) return s;
  TransformerConfig c;
  if (absl::Status s = ParseSizes(j, path, c); !s.ok()) return s;
  absl::StatusOr<double> theta = ParseRope(j, path);
  absl::StatusOr<double> eps = PositiveNumber(j, path, "rms_norm_eps", 1e-6);
  absl::StatusOr<bool> tied = Bool(j, path, "tie_word_embeddings", false);
  for (const absl::Status& s : {theta.status(), eps.status(), tied.status()}) {
    if (!s.ok()) return s;
  }
  c.rope_theta = *theta;
  c.rms_norm_eps = *eps;
  c.tie_embeddings = *tied;
  c.qk_norm = model_type == "qwen3";
  c.attention_bias = model_type == "qwen2";
  return c;
}

json HfConfigJson(const TransformerConfig& c) {
  const std::string type = HfModelType(c);
  const char* architecture = type == "qwen3"   ? "Qwen3ForCausalLM"
                             : type == "qwen2" ? "Qwen2ForCausalLM"
                                               : "LlamaForCausalLM";
  json j = {{"architectures", json::array({architecture})},
            {"model_type", type},
            {"num_hidden_layers", c.layers},
            {"hidden_size", c.d_model},
            {"num_attention_heads", c.heads},
            {"num_key_value_heads", c.kv_heads},
            {"head_dim", c.HeadDim()},
            {"intermediate_size", c.d_ff},
            {"vocab_size", c.vocab},
            {"max_position_embeddings", c.max_seq_len},
            {"rope_theta", c.rope_theta},
            {"rope_scaling", nullptr},
            {"rms_norm_eps", c.rms_norm_eps},
            {"tie_word_embeddings", c.tie_embeddings},
            {"hidden_act", "silu"},
            {"attention_dropout", 0.0},
            {"use_cache", true}};
  if (type == "qwen2" || type == "qwen3") j["use_sliding_window"] = false;
  // qwen2's q/k/v biases are implied by its type; the others' key would add one to o_proj too.
  if (type != "qwen2") j["attention_bias"] = c.attention_bias;
  return j;
}

absl::StatusOr<HfModel> LoadHfDirectory(const std::string& dir) {
  const fs::path root(dir);
  const fs::path config_path = root / kConfigFile;
  absl::StatusOr<json> j = ReadJsonFile(config_path);
  if (!j.ok()) return j.status();
  HfModel model;
  absl::StatusOr<TransformerConfig> config = ParseHfConfig(*j, config_path.string());
  if (!config.ok()) return config.status();
  model.config = *config;
  model.model_type = (*j)["model_type"].get<std::string>();
  if (absl::Status s = LoadWeights(root, model); !s.ok()) return s;
  std::error_code ec;
  if (fs::is_regular_file(root / kTokenizerFile, ec)) {
    model.tokenizer_path = (root / kTokenizerFile).string();
  }
  return model;
}

absl::Status WriteHfDirectory(const std::string& dir, const TransformerConfig& config,
                              const TensorSet& f32_weights, const std::string& dtype,
                              const std::string& tokenizer_path) {
  static const std::map<std::string, std::pair<std::string, std::string>> kDtypes = {
      {"", {"F32", "float32"}},
      {"fp32", {"F32", "float32"}},
      {"bf16", {"BF16", "bfloat16"}},
      {"fp16", {"F16", "float16"}}};
  const auto kind = kDtypes.find(dtype);
  if (kind == kDtypes.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype '", dtype, "' is not one of fp32, bf16, fp16"));
  }
  json config_json = HfConfigJson(config);
  if (absl::Status s = ParseHfConfig(config_json, kConfigFile).status(); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the model's shape has no Hugging Face config.json: ", s.message()));
  }
  config_json["torch_dtype"] = kind->second.second;
  absl::StatusOr<TensorSet> converted = ConvertForWriting(config, f32_weights, kind->second.first);
  if (!converted.ok()) return converted.status();
  std::optional<std::string> tokenizer;
  if (!tokenizer_path.empty()) {
    absl::StatusOr<std::string> bytes = ReadFileBytes(tokenizer_path);
    if (!bytes.ok()) return bytes.status();
    tokenizer = *std::move(bytes);
  }
  const fs::path root(dir);
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  fs::remove(root / kIndexFile, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot remove ", (root / kIndexFile).string()));
  if (absl::Status s = WriteFileSynced(root / kConfigFile, config_json.dump(2) + "\n"); !s.ok()) {
    return s;
  }
  const std::string blob = EncodeSafetensors(*converted);
  converted->tensors.clear();
  if (absl::Status s = WriteFileSynced(root / kWeightsFile, blob); !s.ok()) return s;
  if (tokenizer.has_value()) {
    if (absl::Status s = WriteFileSynced(root / kTokenizerFile, *tokenizer); !s.ok()) return s;
  }
  return SyncDirectory(root);
}

}  // namespace rally
