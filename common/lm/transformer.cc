#include "common/lm/transformer.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rally {
namespace {

// Query rows per k/v head up to which attention uses a broadcast product instead of a matmul.
constexpr int64_t kFewQueryRows = 8;

std::string ShapeString(c10::ArrayRef<int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

bool IsNormWeight(const std::string& name) {
  return name.size() >= 11 && name.compare(name.size() - 11, 11, "norm.weight") == 0;
}

bool IsBias(const std::string& name) {
  return name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
}

torch::Tensor Linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  return b.defined() ? torch::linear(x, w, b) : torch::linear(x, w);
}

}  // namespace

absl::Status ValidateTransformerConfig(const TransformerConfig& c) {
  const std::pair<const char*, int> sizes[] = {
      {"layers", c.layers},          {"d_model", c.d_model}, {"heads", c.heads},
      {"kv_heads", c.kv_heads},      {"d_ff", c.d_ff},       {"vocab", c.vocab},
      {"max_seq_len", c.max_seq_len}};
  for (const auto& [field, value] : sizes) {
    if (value <= 0) return absl::InvalidArgumentError(absl::StrCat(field, " must be positive"));
  }
  if (c.heads % c.kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("heads (", c.heads, ") must be a multiple of kv_heads (", c.kv_heads, ")"));
  }
  if (c.head_dim < 0 || c.HeadDim() <= 0 || c.HeadDim() % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("head_dim (", c.HeadDim(), ") must be positive and even"));
  }
  if (!(c.rope_theta > 0)) return absl::InvalidArgumentError("rope_theta must be positive");
  if (!(c.rms_norm_eps > 0)) return absl::InvalidArgumentError("rms_norm_eps must be positive");
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Building blocks.

torch::Tensor RmsNorm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * weight;
}

std::pair<torch::Tensor, torch::Tensor> RotaryCosSin(const torch::Tensor& positions, int head_dim,
                                                     double theta) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(positions.device());
  // Float32 throughout, as Hugging Face computes it, so that logits agree to float precision.
  torch::Tensor exponent = torch::arange(0, head_dim, 2, opts) / static_cast<double>(head_dim);
  torch::Tensor inv_freq = 1.0 / torch::pow(theta, exponent);
  torch::Tensor angle = positions.to(torch::kFloat32).unsqueeze(-1) * inv_freq;
  angle = torch::cat({angle, angle}, -1);
  return {angle.cos(), angle.sin()};
}

torch::Tensor ApplyRotary(const torch::Tensor& x, const torch::Tensor& cos,
                          const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  return x * cos + rotated * sin;
}

torch::Tensor GroupedAttention(const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, const torch::Tensor& allowed) {
  const int64_t n = q.size(0), heads = q.size(1), t = q.size(2), hd = q.size(3);
  const int64_t kv_heads = k.size(1), s = k.size(2), group = heads / kv_heads;
  // Query heads g*group .. g*group+group-1 share k/v head g: fold them into the rows of one
  // matmul per k/v head instead of repeating k and v.
  torch::Tensor grouped = q.reshape({n, kv_heads, group * t, hd});
  // LibTorch's CPU bmm runs one GEMM call per batch entry: with few query rows per k/v head
  // (decoding) a broadcast product replaces n * kv_heads tiny GEMM calls (on par with them at
  // batch 64 on this machine; the GEMM calls' overhead grows with the batch).
  const bool few_rows = group * t <= kFewQueryRows;
  torch::Tensor scores = few_rows ? (grouped.unsqueeze(3) * k.unsqueeze(2)).sum(-1)
                                  : torch::matmul(grouped, k.transpose(-1, -2));
  scores = (scores / std::sqrt(double(hd)))
               .view({n, kv_heads, group, t, s})
               .masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());
  torch::Tensor probs = torch::softmax(scores, -1).view({n, kv_heads, group * t, s});
  torch::Tensor out =
      few_rows ? (probs.unsqueeze(-1) * v.unsqueeze(2)).sum(-2) : torch::matmul(probs, v);
  return out.view({n, heads, t, hd});
}

// ---------------------------------------------------------------------------------------------
// KvCache.

int64_t KvCache::BytesFor(const TransformerConfig& config, int slots, int capacity) {
  return int64_t{2} * config.layers * slots * config.kv_heads * capacity * config.HeadDim() *
         int64_t{sizeof(float)};
}

int KvCache::SlotsWithin(const TransformerConfig& config, int capacity, int64_t bytes) {
  const int64_t per_slot = BytesFor(config, 1, capacity);
  return per_slot > 0 ? static_cast<int>(bytes / per_slot) : 0;
}

absl::StatusOr<KvCache> KvCache::Create(const TransformerConfig& config, int slots, int capacity,
                                        torch::Device device) {
  if (absl::Status s = ValidateTransformerConfig(config); !s.ok()) return s;
  if (slots <= 0 || capacity <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("a KV cache needs positive slots and capacity (",
                                                   slots, " slots of ", capacity, " tokens)"));
  }
  KvCache cache;
  cache.capacity_ = capacity;
  cache.lengths_.assign(slots, 0);
  cache.held_.assign(slots, false);
  try {
    auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(device);
    for (int i = 0; i < config.layers; ++i) {
      cache.keys_.push_back(
          torch::zeros({slots, config.kv_heads, capacity, config.HeadDim()}, opts));
      cache.values_.push_back(torch::zeros_like(cache.keys_.back()));
    }
  } catch (const c10::Error& e) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot allocate a KV cache of ", BytesFor(config, slots, capacity), " bytes: ", e.msg()));
  }
  return cache;
}

absl::StatusOr<int> KvCache::Allocate() {
  for (int i = 0; i < slots(); ++i) {
    if (!held_[i]) {
      held_[i] = true;
      lengths_[i] = 0;
      return i;
    }
  }
  return absl::ResourceExhaustedError(absl::StrCat("all ", slots(), " KV cache slots are held"));
}

void KvCache::Release(int slot) {
  if (!held(slot)) return;
  held_[slot] = false;
  lengths_[slot] = 0;
}

absl::Status KvCache::Truncate(int slot, int length) {
  if (!held(slot)) return absl::InvalidArgumentError(absl::StrCat("slot ", slot, " is not held"));
  if (length < 0 || length > lengths_[slot]) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot truncate slot ", slot, " of ", lengths_[slot], " tokens to ", length));
  }
  lengths_[slot] = length;
  return absl::OkStatus();
}

int KvCache::free_slots() const {
  int n = 0;
  for (bool h : held_) n += h ? 0 : 1;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Transformer: construction and weights.

Transformer::Transformer(const TransformerConfig& config, torch::Device device)
    : config_(config), device_(device) {}

absl::StatusOr<Transformer> Transformer::Create(const TransformerConfig& config, uint64_t seed,
                                                torch::Device device) {
  if (absl::Status s = ValidateTransformerConfig(config); !s.ok()) return s;
  Transformer model(config, device);
  try {
    torch::NoGradGuard no_grad;
    at::Generator gen = at::detail::createCPUGenerator(seed);
    for (const ExpectedTensor& e : ExpectedTensors(config)) {
      torch::Tensor t;
      if (IsNormWeight(e.name)) {
        t = torch::ones(e.shape);
      } else if (IsBias(e.name)) {
        t = torch::zeros(e.shape);
      } else {
        t = torch::empty(e.shape).normal_(0.0, 0.02, gen);
      }
      model.names_.push_back(e.name);
      model.tensors_.push_back(t.to(device).requires_grad_(true));
    }
  } catch (const c10::Error& e) {
    return absl::ResourceExhaustedError(absl::StrCat("cannot build the model: ", e.msg()));
  }
  model.BindLayers();
  return model;
}

void Transformer::BindLayers() {
  std::unordered_map<std::string, torch::Tensor> by_name;
  for (size_t i = 0; i < names_.size(); ++i) by_name[names_[i]] = tensors_[i];
  auto get = [&](const std::string& name) {
    auto it = by_name.find(name);
    return it == by_name.end() ? torch::Tensor() : it->second;
  };
  embed_ = get("model.embed_tokens.weight");
  final_norm_ = get("model.norm.weight");
  lm_head_ = get("lm_head.weight");
  layers_.clear();
  for (int i = 0; i < config_.layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    const std::string a = p + "self_attn.";
    layers_.push_back({get(p + "input_layernorm.weight"), get(a + "q_proj.weight"),
                       get(a + "q_proj.bias"), get(a + "k_proj.weight"), get(a + "k_proj.bias"),
                       get(a + "v_proj.weight"), get(a + "v_proj.bias"), get(a + "o_proj.weight"),
                       get(a + "q_norm.weight"), get(a + "k_norm.weight"),
                       get(p + "post_attention_layernorm.weight"), get(p + "mlp.gate_proj.weight"),
                       get(p + "mlp.up_proj.weight"), get(p + "mlp.down_proj.weight")});
  }
}

absl::Status Transformer::LoadWeights(const TensorSet& weights) {
  std::map<std::string, const NamedTensor*> by_name;
  for (const NamedTensor& t : weights.tensors) {
    if (!by_name.emplace(t.name, &t).second) {
      return absl::InvalidArgumentError(absl::StrCat("weights hold tensor '", t.name, "' twice"));
    }
  }
  for (size_t i = 0; i < names_.size(); ++i) {
    auto it = by_name.find(names_[i]);
    if (it == by_name.end()) {
      return absl::InvalidArgumentError(absl::StrCat("weights lack tensor '", names_[i], "'"));
    }
    const NamedTensor& src = *it->second;
    const auto expected = tensors_[i].sizes();
    if (src.dtype != "F32") {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", src.name, "' has dtype ", src.dtype, ", expected F32"));
    }
    if (c10::IntArrayRef(src.shape) != expected) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", src.name, "' has shape ",
                                                     ShapeString(src.shape), ", expected ",
                                                     ShapeString(expected)));
    }
    if (src.data.size() != tensors_[i].numel() * sizeof(float)) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", src.name, "' holds ",
                                                     src.data.size(), " bytes, expected ",
                                                     tensors_[i].numel() * sizeof(float)));
    }
  }
  if (by_name.size() != names_.size()) {
    const std::set<std::string> expected(names_.begin(), names_.end());
    for (const auto& [name, tensor] : by_name) {
      if (!expected.count(name)) {
        return absl::InvalidArgumentError(absl::StrCat("unexpected tensor '", name, "'"));
      }
    }
  }
  try {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < names_.size(); ++i) {
      const NamedTensor& src = *by_name.at(names_[i]);
      torch::Tensor cpu = torch::empty(src.shape, torch::kFloat32);
      std::memcpy(cpu.data_ptr(), src.data.data(), src.data.size());
      tensors_[i].copy_(cpu);
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("cannot copy the weights: ", e.msg()));
  }
  return absl::OkStatus();
}

TensorSet Transformer::ExportWeights() const {
  TensorSet out;
  for (size_t i = 0; i < names_.size(); ++i) {
    torch::Tensor t = tensors_[i].detach().to(torch::kCPU, torch::kFloat32).contiguous();
    NamedTensor nt;
    nt.name = names_[i];
    nt.dtype = "F32";
    nt.shape.assign(t.sizes().begin(), t.sizes().end());
    nt.data.assign(static_cast<const char*>(t.data_ptr()), t.numel() * sizeof(float));
    out.tensors.push_back(std::move(nt));
  }
  return out;
}

std::vector<torch::Tensor> Transformer::parameters() const { return tensors_; }

torch::Tensor Transformer::OutputMatrix() const { return lm_head_.defined() ? lm_head_ : embed_; }

// ---------------------------------------------------------------------------------------------
// Transformer: the forward pass.

struct Transformer::CacheWrite {
  KvCache* cache;
  torch::Tensor slots;      // [N] the slot of each batch row
  torch::Tensor src_rows;   // [M] the valid tokens, as rows of the flattened [N*T] batch
  torch::Tensor dest_rows;  // [M*kv_heads] their rows in a cache tensor viewed [-1, head_dim]
  int64_t span = 0;         // keys to read per row: max over rows of past + length
  // How attention reads the keys. When the batch's slots lie in a range of at most twice as many
  // slots, attention runs over that range of the cache in place (no copy of the keys), batch row
  // i as row rows[i] of the range, and the rows of other slots compute outputs that are dropped;
  // `identity` when the range is the batch itself, in order. Otherwise (range 0) the batch's
  // slots are gathered.
  int64_t first = 0, range = 0;
  torch::Tensor rows;  // [N] slot - first
  bool identity = false;
};

torch::Tensor Transformer::Attention(const Layer& l, int index, const torch::Tensor& x,
                                     const torch::Tensor& cos, const torch::Tensor& sin,
                                     const torch::Tensor& allowed, const CacheWrite* cache) const {
  const int64_t n = x.size(0), t = x.size(1), hd = config_.HeadDim();
  const int64_t heads = config_.heads, kv_heads = config_.kv_heads;
  torch::Tensor q = Linear(x, l.q_w, l.q_b).view({n, t, heads, hd});
  torch::Tensor k = Linear(x, l.k_w, l.k_b).view({n, t, kv_heads, hd});
  torch::Tensor v = Linear(x, l.v_w, l.v_b).view({n, t, kv_heads, hd});
  if (config_.qk_norm) {
    q = RmsNorm(q, l.q_norm, config_.rms_norm_eps);
    k = RmsNorm(k, l.k_norm, config_.rms_norm_eps);
  }
  q = ApplyRotary(q, cos, sin).transpose(1, 2);
  k = ApplyRotary(k, cos, sin);
  torch::Tensor keys, values;
  if (cache == nullptr) {
    keys = k.transpose(1, 2);
    values = v.transpose(1, 2);
  } else {
    const torch::Tensor& cache_k = cache->cache->keys_[index];
    const torch::Tensor& cache_v = cache->cache->values_[index];
    auto rows = [&](const torch::Tensor& y) {
      return y.reshape({n * t, kv_heads, hd}).index_select(0, cache->src_rows).reshape({-1, hd});
    };
    cache_k.view({-1, hd}).index_copy_(0, cache->dest_rows, rows(k));
    cache_v.view({-1, hd}).index_copy_(0, cache->dest_rows, rows(v));
    if (cache->range > 0) {
      keys = cache_k.narrow(0, cache->first, cache->range).narrow(2, 0, cache->span);
      values = cache_v.narrow(0, cache->first, cache->range).narrow(2, 0, cache->span);
      if (!cache->identity) {
        q = torch::zeros({cache->range, heads, t, hd}, q.options()).index_copy_(0, cache->rows, q);
      }
    } else {
      keys = cache_k.narrow(2, 0, cache->span).index_select(0, cache->slots);
      values = cache_v.narrow(2, 0, cache->span).index_select(0, cache->slots);
    }
  }
  torch::Tensor out = GroupedAttention(q, keys, values, allowed);
  if (cache != nullptr && cache->range > 0 && !cache->identity) {
    out = out.index_select(0, cache->rows);
  }
  return torch::linear(out.transpose(1, 2).reshape({n, t, heads * hd}), l.o_w);
}

torch::Tensor Transformer::Run(const torch::Tensor& tokens, const torch::Tensor& past,
                               const CacheWrite* cache) const {
  const int64_t n = tokens.size(0), t = tokens.size(1);
  auto long_opts = torch::TensorOptions().dtype(torch::kInt64).device(device_);
  torch::Tensor positions = past.unsqueeze(1) + torch::arange(t, long_opts).unsqueeze(0);  // [N,T]
  auto [cos, sin] = RotaryCosSin(positions, config_.HeadDim(), config_.rope_theta);
  cos = cos.unsqueeze(2);  // [N, T, 1, hd]: the same for every head
  sin = sin.unsqueeze(2);
  // Causal at each row's own offset: query t of row n (position past[n] + t) sees keys 0 ..
  // past[n] + t. No lengths needed: padding only follows the real tokens, so no real query sees
  // it, and padding queries see at least key 0 (their outputs are discarded).
  const int64_t span = cache == nullptr ? t : cache->span;
  torch::Tensor allowed =
      torch::arange(span, long_opts).view({1, 1, span}) <= positions.unsqueeze(-1);
  allowed = allowed.view({n, 1, 1, t, span});
  if (cache != nullptr && cache->range > 0 && !cache->identity) {
    // The range's rows outside the batch see key 0 only.
    torch::Tensor in_range = torch::zeros({cache->range, 1, 1, t, span}, allowed.options());
    in_range.select(-1, 0).fill_(true);
    allowed = in_range.index_copy_(0, cache->rows, allowed);
  }

  torch::Tensor x = torch::embedding(embed_, tokens);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const Layer& l = layers_[i];
    torch::Tensor h =
        x + Attention(l, static_cast<int>(i), RmsNorm(x, l.input_norm, config_.rms_norm_eps), cos,
                      sin, allowed, cache);
    torch::Tensor m = RmsNorm(h, l.post_norm, config_.rms_norm_eps);
    x = h + torch::linear(torch::silu(torch::linear(m, l.gate)) * torch::linear(m, l.up), l.down);
  }
  return RmsNorm(x, final_norm_, config_.rms_norm_eps);
}

absl::StatusOr<torch::Tensor> Transformer::Forward(const torch::Tensor& tokens,
                                                   const torch::Tensor& lengths) const {
  absl::StatusOr<torch::Tensor> hidden = ForwardHidden(tokens, lengths);
  if (!hidden.ok()) return hidden.status();
  try {
    return LogitsFromHidden(*hidden);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("transformer forward: ", e.msg()));
  }
}

torch::Tensor Transformer::LogitsFromHidden(const torch::Tensor& hidden) const {
  TORCH_CHECK(hidden.size(-1) == config_.d_model, "hidden states of width ", hidden.size(-1),
              ", expected d_model ", config_.d_model);
  return torch::linear(hidden, OutputMatrix());
}

absl::StatusOr<torch::Tensor> Transformer::ForwardHidden(const torch::Tensor& tokens,
                                                         const torch::Tensor& lengths) const {
  if (tokens.dim() != 2 || tokens.is_floating_point() || tokens.size(1) == 0) {
    return absl::InvalidArgumentError("tokens must be a non-empty [B, T] integer tensor");
  }
  const int64_t b = tokens.size(0), t = tokens.size(1);
  if (lengths.dim() != 1 || lengths.size(0) != b || lengths.is_floating_point()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "lengths must be a [", b, "] integer tensor, got ", ShapeString(lengths.sizes())));
  }
  try {
    torch::Tensor ids = tokens.to(device_, torch::kInt64);
    torch::Tensor lens = lengths.to(device_, torch::kInt64);
    if (b > 0 && (lens.min().item<int64_t>() < 1 || lens.max().item<int64_t>() > t)) {
      return absl::InvalidArgumentError(absl::StrCat("lengths must lie in [1, ", t, "]"));
    }
    if (b > 0 && (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= config_.vocab)) {
      return absl::InvalidArgumentError(
          absl::StrCat("token ids must lie in [0, ", config_.vocab, ")"));
    }
    return Run(ids, torch::zeros({b}, ids.options()), nullptr);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("transformer forward: ", e.msg()));
  }
}

absl::StatusOr<torch::Tensor> Transformer::Extend(KvCache& cache,
                                                  std::span<const SequenceChunk> chunks,
                                                  Logits which) const {
  const int64_t hd = config_.HeadDim(), kv_heads = config_.kv_heads;
  if (cache.keys_.size() != layers_.size() || cache.keys_[0].size(1) != kv_heads ||
      cache.keys_[0].size(3) != hd) {
    return absl::InvalidArgumentError("the KV cache was built for a model of another shape");
  }
  if (chunks.empty()) return absl::InvalidArgumentError("Extend needs at least one chunk");
  const int64_t n = static_cast<int64_t>(chunks.size());
  int64_t t = 0, span = 0;
  std::set<int> seen;
  for (const SequenceChunk& c : chunks) {
    if (!cache.held(c.slot)) {
      return absl::InvalidArgumentError(absl::StrCat("slot ", c.slot, " is not held"));
    }
    if (!seen.insert(c.slot).second) {
      return absl::InvalidArgumentError(absl::StrCat("slot ", c.slot, " is extended twice"));
    }
    if (c.tokens.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("the chunk for slot ", c.slot, " is empty"));
    }
    const int64_t end = cache.Length(c.slot) + static_cast<int64_t>(c.tokens.size());
    if (end > cache.capacity()) {
      return absl::ResourceExhaustedError(absl::StrCat("slot ", c.slot, " would hold ", end,
                                                       " tokens, past the capacity of ",
                                                       cache.capacity()));
    }
    for (int32_t id : c.tokens) {
      if (id < 0 || id >= config_.vocab) {
        return absl::InvalidArgumentError(absl::StrCat("token id ", id, " for slot ", c.slot,
                                                       " is outside [0, ", config_.vocab, ")"));
      }
    }
    t = std::max<int64_t>(t, c.tokens.size());
    span = std::max(span, end);
  }

  // The batch, right-padded, and where each valid token's keys and values go in the cache.
  torch::Tensor tokens = torch::zeros({n, t}, torch::kInt64);
  std::vector<int64_t> slots(n), past(n), lengths(n), src_rows, dest_rows;
  auto* tok = tokens.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const SequenceChunk& c = chunks[i];
    slots[i] = c.slot;
    past[i] = cache.Length(c.slot);
    lengths[i] = static_cast<int64_t>(c.tokens.size());
    for (int64_t j = 0; j < lengths[i]; ++j) {
      tok[i * t + j] = c.tokens[j];
      src_rows.push_back(i * t + j);
      for (int64_t h = 0; h < kv_heads; ++h) {
        dest_rows.push_back((slots[i] * kv_heads + h) * cache.capacity() + past[i] + j);
      }
    }
  }
  auto on_device = [&](std::vector<int64_t>& v) {
    return torch::from_blob(v.data(), {static_cast<int64_t>(v.size())}, torch::kInt64)
        .to(device_, /*non_blocking=*/false, /*copy=*/true);
  };
  try {
    torch::NoGradGuard no_grad;
    CacheWrite write{&cache, on_device(slots), on_device(src_rows), on_device(dest_rows), span};
    const auto [lo, hi] = std::minmax_element(slots.begin(), slots.end());
    if (*hi - *lo + 1 <= 2 * n) {
      write.first = *lo;
      write.range = *hi - *lo + 1;
      std::vector<int64_t> rows(n);
      bool identity = write.range == n;
      for (int64_t i = 0; i < n; ++i) {
        rows[i] = slots[i] - *lo;
        identity = identity && rows[i] == i;
      }
      write.rows = on_device(rows);
      write.identity = identity;
    }
    torch::Tensor hidden = Run(tokens.to(device_), on_device(past), &write);
    torch::Tensor logits;
    if (which == Logits::kLast) {
      std::vector<int64_t> last(n);
      for (int64_t i = 0; i < n; ++i) last[i] = i * t + lengths[i] - 1;
      hidden = hidden.reshape({n * t, -1}).index_select(0, on_device(last));
    }
    logits = torch::linear(hidden, OutputMatrix());
    for (int64_t i = 0; i < n; ++i) cache.lengths_[slots[i]] += static_cast<int>(lengths[i]);
    return logits;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("transformer extend: ", e.msg()));
  }
}

}  // namespace rally
