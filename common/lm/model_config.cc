#include "common/lm/model_config.h"

namespace rally {

std::vector<ExpectedTensor> ExpectedTensors(const TransformerConfig& config) {
  std::vector<ExpectedTensor> out;
  const int64_t d = config.d_model, hd = config.HeadDim(), v = config.vocab, ff = config.d_ff;
  const int64_t q = config.heads * hd, kv = config.kv_heads * hd;
  out.push_back({"model.embed_tokens.weight", {v, d}});
  for (int i = 0; i < config.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    out.push_back({p + "input_layernorm.weight", {d}});
    out.push_back({p + "self_attn.q_proj.weight", {q, d}});
    if (config.attention_bias) out.push_back({p + "self_attn.q_proj.bias", {q}});
    out.push_back({p + "self_attn.k_proj.weight", {kv, d}});
    if (config.attention_bias) out.push_back({p + "self_attn.k_proj.bias", {kv}});
    out.push_back({p + "self_attn.v_proj.weight", {kv, d}});
    if (config.attention_bias) out.push_back({p + "self_attn.v_proj.bias", {kv}});
    out.push_back({p + "self_attn.o_proj.weight", {d, q}});
    if (config.qk_norm) {
      out.push_back({p + "self_attn.q_norm.weight", {hd}});
      out.push_back({p + "self_attn.k_norm.weight", {hd}});
    }
    out.push_back({p + "post_attention_layernorm.weight", {d}});
    out.push_back({p + "mlp.gate_proj.weight", {ff, d}});
    out.push_back({p + "mlp.up_proj.weight", {ff, d}});
    out.push_back({p + "mlp.down_proj.weight", {d, ff}});
  }
  out.push_back({"model.norm.weight", {d}});
  if (!config.tie_embeddings) out.push_back({"lm_head.weight", {v, d}});
  return out;
}

}  // namespace rally
