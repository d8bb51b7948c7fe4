// Hugging Face checkpoint directories of decoder-only transformers (Llama, Qwen2, Qwen3), read
// into a TransformerConfig and F32 tensors, and written back from them. Torch-free.
//
// A directory holds:
//   config.json                   model_type "llama", "qwen2" or "qwen3" and the sizes;
//   model.safetensors             the weights in F32, BF16 or F16, or instead
//   model.safetensors.index.json  {"weight_map": {"<tensor>": "<shard file>", ...}} and its shards;
//   tokenizer.json                optional, byte-level BPE (common/lm/tokenizer.h reads it).
// Tensor names and shapes are ExpectedTensors(config)'s (common/lm/model_config.h).
//
// What maps, and what is refused (every error names the file and the key or tensor):
//   - config.json: num_hidden_layers (at most 10000), hidden_size, num_attention_heads,
//     intermediate_size, vocab_size, max_position_embeddings are required positive integers;
//     num_key_value_heads (default: num_attention_heads) must divide num_attention_heads;
//     head_dim is optional (default hidden_size / num_attention_heads); rope_theta (default
//     10000, also read from rope_parameters), rms_norm_eps (default 1e-6), tie_word_embeddings
//     (default false).
//     Refused as not supported: rope_scaling other than null, a rope_parameters rope_type other
//     than "default", hidden_act other than "silu", use_sliding_window true, mlp_bias true, and
//     attention_bias true for llama and qwen3 (their bias is on o_proj as well; rally's attention
//     has biases on q/k/v only, as Qwen2's, which always has them). qwen3 has q/k norms.
//   - weights: every expected tensor present with its shape and dtype F32, BF16 or F16, converted
//     to F32 exactly. Tensors rally does not hold (rotary_emb.inv_freq, ...) are skipped and
//     listed in HfModel::ignored_tensors; lm_head.weight in a tied model is skipped when it
//     equals the embedding and refused when it differs.
//
// Memory: loading holds one file's bytes at a time besides the F32 result. Writing holds the
// encoded model.safetensors besides the caller's tensors.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/lm/model_config.h"
#include "common/models/safetensors.h"
#include "nlohmann/json_fwd.hpp"

namespace rally {

struct HfModel {
  TransformerConfig config;
  std::string model_type;  // "llama", "qwen2" or "qwen3"
  // Every tensor of ExpectedTensors(config), in its order, dtype F32, shaped as it says.
  TensorSet weights;
  std::string tokenizer_path;  // "<dir>/tokenizer.json", or "" when the directory has none
  std::vector<std::string> ignored_tensors;  // in the files but not part of the model, sorted
};

// Reads the checkpoint directory `dir`. NOT_FOUND when a file it needs is absent (config.json,
// the weights, a shard the index names), INVALID_ARGUMENT for anything else wrong.
absl::StatusOr<HfModel> LoadHfDirectory(const std::string& dir);

// Writes config.json, model.safetensors (dtype "fp32" (also ""), "bf16" or "fp16", rounded to the
// nearest even) and, when `tokenizer_path` is not empty, a copy of it as tokenizer.json into
// `dir` (created when absent; files of these names are replaced, and a model.safetensors.index.json
// left there is removed, as it would name other weights). `f32_weights` holds exactly
// ExpectedTensors(config), F32, in any order; the model_type is HfModelType(config). Nothing is
// written when the arguments are refused.
absl::Status WriteHfDirectory(const std::string& dir, const TransformerConfig& config,
                              const TensorSet& f32_weights, const std::string& dtype,
                              const std::string& tokenizer_path);

// "qwen3" when config.qk_norm, "qwen2" when config.attention_bias (and no qk_norm), else "llama".
std::string HfModelType(const TransformerConfig& config);

// config.json -> TransformerConfig, as described above; `path` names the file in errors.
absl::StatusOr<TransformerConfig> ParseHfConfig(const nlohmann::json& j, const std::string& path);
// TransformerConfig -> config.json (model_type HfModelType(c), architectures, sizes, head_dim,
// rope_theta, rms_norm_eps, tie_word_embeddings, ...). ParseHfConfig reads it back to `c`, with
// head_dim 0 when it is d_model / heads. WriteHfDirectory refuses a config that does not read
// back (qk_norm with attention_bias, which no model_type has; a size that is not positive).
nlohmann::json HfConfigJson(const TransformerConfig& c);

}  // namespace rally
