// A decoder-only transformer in the Llama / Qwen2 / Qwen3 layout (common/lm/model_config.h):
// token embedding, per layer h = x + o_proj(attn(RMSNorm(x))), out = h +
// down(silu(gate(RMSNorm(h))) ⊙ up(RMSNorm(h))), a final RMSNorm and an output matrix (lm_head, or
// the embedding when tied). Attention is causal grouped-query attention with rotary position
// embeddings in the "rotate half" layout; Qwen3's q/k norms apply to each head's vector before the
// rotation, Qwen2's q/k/v biases where the config asks (../shared/REFERENCES.md, "Block" and
// "Rotary embedding").
//
// The model holds exactly the tensors of ExpectedTensors(config), under their Hugging Face names,
// in fp32 on one device. Two ways to run it:
//   - Forward: logits for a right-padded [B, T] batch, differentiable (training and scoring).
//   - Extend with a KvCache: batched incremental inference over sequences of different lengths.
//     A sequence holds a slot of the cache; each call appends a chunk of tokens (a prompt, one
//     sampled token, or a new observation in a game) to any subset of the slots, each chunk at
//     its own sequence's positions. Inference only (no gradient).
//
// Thread safety: Forward and Extend only read the weights and may run concurrently with each other
// (each Extend on its own KvCache); LoadWeights writes them in place and must not overlap either.
// An optimiser may hold parameters(): LoadWeights copies into those same tensors.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/lm/model_config.h"
#include "common/models/safetensors.h"

namespace rally {

// OK when a model of `config` can be built: positive sizes, heads divisible by kv_heads, an even
// head_dim (RoPE rotates pairs), positive rope_theta and rms_norm_eps. INVALID_ARGUMENT naming the
// field otherwise.
absl::Status ValidateTransformerConfig(const TransformerConfig& config);

// The key/value cache of batched incremental inference: `slots` sequences of at most `capacity`
// tokens each (prompt and generated tokens together), preallocated as one [slots, kv_heads,
// capacity, head_dim] fp32 tensor for keys and one for values per layer, so its memory is fixed at
// construction: BytesFor(config, slots, capacity). A sequence Allocates a slot, is extended by
// Transformer::Extend, and Releases the slot when it ends; the slot is then reused by the next
// sequence (its stale contents are never read). Not thread-safe: one thread uses a cache.
class KvCache {
 public:
  // INVALID_ARGUMENT for a bad config or non-positive slots / capacity; RESOURCE_EXHAUSTED when the
  // tensors cannot be allocated.
  static absl::StatusOr<KvCache> Create(const TransformerConfig& config, int slots, int capacity,
                                        torch::Device device = torch::kCPU);
  // The memory of a cache of `slots` x `capacity` tokens, and how many slots of `capacity` tokens
  // fit in `bytes` (the bound a job spec gives).
  static int64_t BytesFor(const TransformerConfig& config, int slots, int capacity);
  static int SlotsWithin(const TransformerConfig& config, int capacity, int64_t bytes);

  // A free slot, empty (length 0); RESOURCE_EXHAUSTED when all are held.
  absl::StatusOr<int> Allocate();
  // Frees `slot` (a no-op for a slot not held).
  void Release(int slot);
  // Forgets the tokens of `slot` from position `length` on (length <= Length(slot)), e.g. to score
  // several continuations of one prompt in turn.
  absl::Status Truncate(int slot, int length);

  bool held(int slot) const { return slot >= 0 && slot < slots() && held_[slot]; }
  int Length(int slot) const { return lengths_[slot]; }  // tokens cached for `slot`
  int slots() const { return static_cast<int>(lengths_.size()); }
  int capacity() const { return capacity_; }
  int free_slots() const;

 private:
  friend class Transformer;
  KvCache() = default;

  int capacity_ = 0;
  std::vector<torch::Tensor> keys_;    // per layer [slots, kv_heads, capacity, head_dim]
  std::vector<torch::Tensor> values_;  // same
  std::vector<int> lengths_;
  std::vector<bool> held_;
};

// The tokens appended to one sequence by Transformer::Extend.
struct SequenceChunk {
  int slot = 0;
  std::span<const int32_t> tokens;  // at least one
};

class Transformer {
 public:
  // A model with Hugging Face's initialisation: every projection and the embedding ~ N(0, 0.02²)
  // from a generator seeded with `seed`, biases 0, norm weights 1. INVALID_ARGUMENT for a bad
  // config.
  static absl::StatusOr<Transformer> Create(const TransformerConfig& config, uint64_t seed,
                                            torch::Device device = torch::kCPU);

  // Copies `weights` (F32, little-endian) into the model. The names must be exactly those of
  // ExpectedTensors(config()): INVALID_ARGUMENT naming the missing tensor, the tensor whose shape
  // or dtype differs (expected vs got), or the unexpected extra tensor; the model is unchanged
  // then.
  absl::Status LoadWeights(const TensorSet& weights);
  // The weights as F32 tensors, in the names and order of ExpectedTensors(config()).
  TensorSet ExportWeights() const;

  // The trainable tensors, in the order of ExpectedTensors (the tied head is the embedding, listed
  // once). They require gradients.
  std::vector<torch::Tensor> parameters() const;

  // Logits [B, T, vocab] for `tokens` [B, T] (any integer dtype, right-padded) whose row b holds
  // lengths[b] real tokens (`lengths` [B] integer, each in [1, T]); position t of row b sees
  // positions <= t. Logits at padded positions are finite and meaningless. Differentiable.
  // INVALID_ARGUMENT for bad shapes, lengths or token ids.
  absl::StatusOr<torch::Tensor> Forward(const torch::Tensor& tokens,
                                        const torch::Tensor& lengths) const;
  // Forward in two halves, for heads a learner keeps beside the model (a value head): the hidden
  // states [B, T, d_model] after the final RMSNorm, then the logits of any [..., d_model] hidden
  // states. Forward(t, l) == LogitsFromHidden(ForwardHidden(t, l)) bit for bit. Same contract and
  // errors as Forward; LogitsFromHidden throws c10::Error for a last dimension other than d_model.
  absl::StatusOr<torch::Tensor> ForwardHidden(const torch::Tensor& tokens,
                                              const torch::Tensor& lengths) const;
  torch::Tensor LogitsFromHidden(const torch::Tensor& hidden) const;

  // Which logits Extend returns.
  enum class Logits {
    kLast,  // [N, vocab]: after each chunk's last token (prefill and decode)
    kAll,   // [N, T, vocab], T the longest chunk: after each token of each chunk (scoring)
  };
  // Appends each chunk to its slot's sequence in one batched pass and returns the logits that
  // follow, rows in the order of `chunks`. Token i of a chunk sits at position Length(slot) + i
  // and attends to the slot's cached tokens and the chunk's earlier tokens. Slots not named are
  // untouched. INVALID_ARGUMENT for a slot not held, named twice, an empty chunk or a token out of
  // the vocabulary; RESOURCE_EXHAUSTED naming the slot when a chunk would pass the capacity; the
  // cache is unchanged on error.
  absl::StatusOr<torch::Tensor> Extend(KvCache& cache, std::span<const SequenceChunk> chunks,
                                       Logits which = Logits::kLast) const;

  const TransformerConfig& config() const { return config_; }
  torch::Device device() const { return device_; }

 private:
  struct Layer {
    torch::Tensor input_norm, q_w, q_b, k_w, k_b, v_w, v_b, o_w, q_norm, k_norm, post_norm;
    torch::Tensor gate, up, down;
  };
  // Where one Run writes keys and values: the cache, its slots for the batch rows, and per row
  // the flattened destination rows of the valid tokens.
  struct CacheWrite;

  Transformer(const TransformerConfig& config, torch::Device device);
  void BindLayers();
  // The shared body of Forward and Extend: hidden states [N, T, d_model] after the final norm.
  // Row n's token t is at position past[n] + t; with a cache, its keys and values are written
  // there first and the row attends to its slot's cached keys.
  torch::Tensor Run(const torch::Tensor& tokens, const torch::Tensor& past,
                    const CacheWrite* cache) const;
  torch::Tensor Attention(const Layer& layer, int index, const torch::Tensor& x,
                          const torch::Tensor& cos, const torch::Tensor& sin,
                          const torch::Tensor& allowed, const CacheWrite* cache) const;
  torch::Tensor OutputMatrix() const;

  TransformerConfig config_;
  torch::Device device_;
  std::vector<std::string> names_;              // ExpectedTensors order
  std::vector<torch::Tensor> tensors_;          // parallel to names_
  torch::Tensor embed_, final_norm_, lm_head_;  // lm_head_ undefined when tied
  std::vector<Layer> layers_;
};

// Building blocks, exposed for tests and for reuse.
// RMSNorm over the last dimension: x / sqrt(mean(x²) + eps) ⊙ weight.
torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps);
// cos and sin [..., head_dim] of the rotary embedding at integer `positions` [...]: angle_j =
// position · theta^(−2j/head_dim) for j < head_dim/2, duplicated to [angle, angle].
std::pair<torch::Tensor, torch::Tensor> RotaryCosSin(const torch::Tensor& positions, int head_dim,
                                                     double theta);
// x ⊙ cos + rotate_half(x) ⊙ sin with rotate_half([a, b]) = [−b, a] over the last dimension.
torch::Tensor ApplyRotary(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin);
// Grouped-query attention: q [N, heads, T, hd], k and v [N, kv_heads, S, hd], `allowed` bool
// broadcastable to [N, 1, 1, T, S] (true where query t may see key s; at least one per row).
// Query head h uses k/v head h / (heads / kv_heads). Returns [N, heads, T, hd].
torch::Tensor GroupedAttention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& allowed);

}  // namespace rally
