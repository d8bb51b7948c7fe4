// The shape of a decoder-only transformer in the Llama / Qwen2 / Qwen3 layout, as a job spec
// (`policy: {kind: transformer, ...}`), a Hugging Face config.json and a rally checkpoint write it.
// Torch-free: the CLI, the config validator and the checkpoint readers use it without LibTorch.
//
// Tensor names are Hugging Face's, so that a rally model and a Hugging Face directory hold the
// same names (ExpectedTensors lists them):
//   model.embed_tokens.weight                         [vocab, d_model]
//   model.layers.{i}.input_layernorm.weight           [d_model]
//   model.layers.{i}.self_attn.q_proj.weight          [heads*head_dim, d_model]   (+ .bias)
//   model.layers.{i}.self_attn.k_proj.weight          [kv_heads*head_dim, d_model] (+ .bias)
//   model.layers.{i}.self_attn.v_proj.weight          [kv_heads*head_dim, d_model] (+ .bias)
//   model.layers.{i}.self_attn.o_proj.weight          [d_model, heads*head_dim]
//   model.layers.{i}.self_attn.q_norm.weight          [head_dim]   (qk_norm only)
//   model.layers.{i}.self_attn.k_norm.weight          [head_dim]   (qk_norm only)
//   model.layers.{i}.post_attention_layernorm.weight  [d_model]
//   model.layers.{i}.mlp.gate_proj.weight             [d_ff, d_model]
//   model.layers.{i}.mlp.up_proj.weight               [d_ff, d_model]
//   model.layers.{i}.mlp.down_proj.weight             [d_model, d_ff]
//   model.norm.weight                                 [d_model]
//   lm_head.weight                                    [vocab, d_model]  (absent when tied)
// (.bias on q/k/v only with attention_bias, as Qwen2 has.)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rally {

struct TransformerConfig {
  int layers = 2;
  int d_model = 128;
  int heads = 4;
  int kv_heads = 4;  // grouped-query attention: each k/v head serves heads/kv_heads query heads
  int head_dim = 0;  // 0: d_model / heads
  int d_ff = 512;
  int vocab = 256;
  int max_seq_len = 512;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_embeddings = false;  // lm_head shares model.embed_tokens.weight
  bool qk_norm = false;         // Qwen3's RMSNorm over each head's q and k before RoPE
  bool attention_bias = false;  // Qwen2's bias on q_proj, k_proj, v_proj

  int HeadDim() const { return head_dim > 0 ? head_dim : d_model / heads; }
};

// The byte tokenizer's vocabulary (common/lm/tokenizer.h): bytes 0..255 and three special
// tokens ("<|endoftext|>", "<|im_start|>", "<|im_end|>").
inline constexpr int kByteTokenizerVocab = 259;

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};

// Every tensor a model of `config` holds, in a fixed order (embedding, layers, final norm, head).
std::vector<ExpectedTensor> ExpectedTensors(const TransformerConfig& config);

}  // namespace rally
