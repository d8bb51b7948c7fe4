// ParseHfConfig (common/lm/hf_checkpoint.h) on arbitrary bytes read as a Hugging Face
// config.json: an error or a config, never a crash or an exception; a config that parses is
// written by HfConfigJson and reads back the same.
#include <cstddef>
#include <cstdint>

#include "common/lm/hf_checkpoint.h"
#include "nlohmann/json.hpp"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json j = nlohmann::json::parse(rally::fuzz::Bytes(data, size), nullptr, false);
  if (j.is_discarded()) return 0;
  absl::StatusOr<rally::TransformerConfig> c = rally::ParseHfConfig(j, "config.json");
  if (!c.ok()) {
    FUZZ_CHECK(c.status().message().find("config.json") != std::string_view::npos);
    return 0;
  }
  absl::StatusOr<rally::TransformerConfig> back =
      rally::ParseHfConfig(nlohmann::json::parse(rally::HfConfigJson(*c).dump()), "config.json");
  FUZZ_CHECK(back.ok());
  FUZZ_CHECK(back->layers == c->layers && back->d_model == c->d_model && back->heads == c->heads &&
             back->kv_heads == c->kv_heads && back->head_dim == c->head_dim &&
             back->d_ff == c->d_ff && back->vocab == c->vocab &&
             back->max_seq_len == c->max_seq_len && back->rope_theta == c->rope_theta &&
             back->rms_norm_eps == c->rms_norm_eps && back->tie_embeddings == c->tie_embeddings &&
             back->qk_norm == c->qk_norm && back->attention_bias == c->attention_bias);
  return 0;
}
