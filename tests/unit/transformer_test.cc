#include "common/lm/transformer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "common/lm/sampling.h"

namespace rally {
namespace {

TransformerConfig SmallConfig() {
  TransformerConfig c;
  c.layers = 2;
  c.d_model = 16;
  c.heads = 4;
  c.kv_heads = 2;
  c.d_ff = 24;
  c.vocab = 23;
  c.max_seq_len = 64;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-6;
  return c;
}

// Weights of `config` with every tensor random (norm weights near 1, biases non-zero), so that a
// test sees each tensor's effect; the logits are of order one.
TensorSet RandomWeights(const TransformerConfig& config, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  TensorSet set;
  for (const ExpectedTensor& e : ExpectedTensors(config)) {
    NamedTensor t;
    t.name = e.name;
    t.shape = e.shape;
    int64_t n = 1;
    for (int64_t d : e.shape) n *= d;
    const bool norm = e.name.find("norm.weight") != std::string::npos;
    const float scale = norm ? 0.2f : (e.shape.size() == 1 ? 0.3f : 1.0f / std::sqrt(e.shape[1]));
    std::vector<float> values(n);
    for (float& v : values) v = (norm ? 1.0f : 0.0f) + scale * normal(rng);
    t.data.assign(reinterpret_cast<const char*>(values.data()), n * sizeof(float));
    set.tensors.push_back(std::move(t));
  }
  return set;
}

Transformer MakeModel(const TransformerConfig& config, uint64_t seed) {
  auto model = Transformer::Create(config, seed);
  EXPECT_TRUE(model.ok()) << model.status();
  absl::Status s = model->LoadWeights(RandomWeights(config, seed));
  EXPECT_TRUE(s.ok()) << s;
  return std::move(*model);
}

std::vector<std::vector<int32_t>> RandomSequences(const std::vector<int>& lengths, int vocab,
                                                  uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::vector<int32_t>> out;
  for (int n : lengths) {
    std::vector<int32_t> s(n);
    for (int32_t& id : s) id = static_cast<int32_t>(rng() % vocab);
    out.push_back(s);
  }
  return out;
}

// A right-padded [B, T] batch (padding with the last token id, a real token) and its lengths.
std::pair<torch::Tensor, torch::Tensor> Batch(const std::vector<std::vector<int32_t>>& seqs,
                                              int vocab) {
  int64_t t = 0;
  for (const auto& s : seqs) t = std::max<int64_t>(t, s.size());
  torch::Tensor tokens = torch::full({int64_t(seqs.size()), t}, vocab - 1, torch::kInt64);
  torch::Tensor lengths = torch::empty({int64_t(seqs.size())}, torch::kInt64);
  for (size_t b = 0; b < seqs.size(); ++b) {
    for (size_t i = 0; i < seqs[b].size(); ++i) tokens[b][i] = seqs[b][i];
    lengths[b] = int64_t(seqs[b].size());
  }
  return {tokens, lengths};
}

double MaxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

// ---------------------------------------------------------------------------------------------
// The slow, obvious reference: one sequence, float64, heads expanded with repeat_interleave,
// the rotary embedding by its formula element by element.

torch::Tensor RefRms(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  return x / torch::sqrt((x * x).mean(-1, true) + eps) * w;
}

// x [T, H, hd] at positions 0..T-1.
torch::Tensor RefRope(const torch::Tensor& x, double theta) {
  const int64_t t_len = x.size(0), heads = x.size(1), hd = x.size(2), half = hd / 2;
  torch::Tensor out = torch::empty_like(x);
  auto in = x.accessor<double, 3>();
  auto o = out.accessor<double, 3>();
  for (int64_t t = 0; t < t_len; ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      for (int64_t j = 0; j < hd; ++j) {
        const float inv_freq = 1.0f / std::pow(float(theta), float(2 * (j % half)) / float(hd));
        const double angle = double(float(t) * inv_freq);
        const double rotated = j < half ? -in[t][h][j + half] : in[t][h][j - half];
        o[t][h][j] = in[t][h][j] * std::cos(angle) + rotated * std::sin(angle);
      }
    }
  }
  return out;
}

torch::Tensor ReferenceLogits(const TransformerConfig& c, const TensorSet& weights,
                              const std::vector<int32_t>& ids) {
  std::map<std::string, torch::Tensor> w;
  for (const NamedTensor& t : weights.tensors) {
    torch::Tensor f = torch::empty(t.shape, torch::kFloat32);
    std::memcpy(f.data_ptr(), t.data.data(), t.data.size());
    w[t.name] = f.to(torch::kDouble);
  }
  auto lin = [&](const torch::Tensor& x, const std::string& name) {
    torch::Tensor y = x.matmul(w.at(name + ".weight").t());
    return w.count(name + ".bias") ? y + w.at(name + ".bias") : y;
  };
  const int64_t t = ids.size(), hd = c.HeadDim();
  std::vector<int64_t> ids64(ids.begin(), ids.end());
  torch::Tensor x = w.at("model.embed_tokens.weight").index_select(0, torch::tensor(ids64));
  torch::Tensor future = torch::triu(torch::ones({t, t}, torch::kBool), 1);
  for (int i = 0; i < c.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    torch::Tensor a = RefRms(x, w.at(p + "input_layernorm.weight"), c.rms_norm_eps);
    torch::Tensor q = lin(a, p + "self_attn.q_proj").view({t, c.heads, hd});
    torch::Tensor k = lin(a, p + "self_attn.k_proj").view({t, c.kv_heads, hd});
    torch::Tensor v = lin(a, p + "self_attn.v_proj").view({t, c.kv_heads, hd});
    if (c.qk_norm) {
      q = RefRms(q, w.at(p + "self_attn.q_norm.weight"), c.rms_norm_eps);
      k = RefRms(k, w.at(p + "self_attn.k_norm.weight"), c.rms_norm_eps);
    }
    q = RefRope(q.contiguous(), c.rope_theta);
    k = RefRope(k.contiguous(), c.rope_theta).repeat_interleave(c.heads / c.kv_heads, 1);
    v = v.repeat_interleave(c.heads / c.kv_heads, 1);
    torch::Tensor scores = q.permute({1, 0, 2}).matmul(k.permute({1, 2, 0})) / std::sqrt(hd);
    torch::Tensor probs = torch::softmax(scores.masked_fill(future, -INFINITY), -1);
    torch::Tensor o = probs.matmul(v.permute({1, 0, 2})).permute({1, 0, 2}).reshape({t, -1});
    torch::Tensor h = x + lin(o, p + "self_attn.o_proj");
    torch::Tensor m = RefRms(h, w.at(p + "post_attention_layernorm.weight"), c.rms_norm_eps);
    torch::Tensor g = lin(m, p + "mlp.gate_proj");
    x = h + lin(g * torch::sigmoid(g) * lin(m, p + "mlp.up_proj"), p + "mlp.down_proj");
  }
  torch::Tensor out = RefRms(x, w.at("model.norm.weight"), c.rms_norm_eps);
  return out.matmul(w.at(c.tie_embeddings ? "model.embed_tokens.weight" : "lm_head.weight").t());
}

// ---------------------------------------------------------------------------------------------
// Building blocks against hand-computed values.

TEST(Transformer, RmsNormMatchesHandComputedVector) {
  // mean(x²) = (1 + 4 + 9 + 16) / 4 = 7.5; + eps 0.5 = 8; x / sqrt(8) ⊙ w.
  torch::Tensor x = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f});
  torch::Tensor w = torch::tensor({1.0f, 1.0f, 2.0f, 0.5f});
  torch::Tensor y = RmsNorm(x, w, 0.5);
  const float r = 1.0f / std::sqrt(8.0f);  // 0.35355339
  EXPECT_NEAR(y[0].item<float>(), 0.35355339f, 1e-6);
  EXPECT_NEAR(y[1].item<float>(), 2 * r, 1e-6);
  EXPECT_NEAR(y[2].item<float>(), 2.12132034f, 1e-6);
  EXPECT_NEAR(y[3].item<float>(), 0.70710678f, 1e-6);
}

TEST(Transformer, RotaryMatchesTheFormulaByHand) {
  // head_dim 4, theta 10000: inv_freq = [1, 10000^(-1/2)] = [1, 0.01].
  torch::Tensor x = torch::tensor({1.0f, 2.0f, 3.0f, 4.0f}).view({1, 4});
  for (int pos : {1, 2}) {
    auto [cos, sin] = RotaryCosSin(torch::tensor({int64_t{pos}}), 4, 10000.0);
    torch::Tensor y = ApplyRotary(x, cos, sin)[0];
    const double a = pos * 1.0, b = pos * 0.01;
    // rotate_half([1, 2, 3, 4]) = [-3, -4, 1, 2].
    EXPECT_NEAR(y[0].item<float>(), 1 * std::cos(a) - 3 * std::sin(a), 1e-6);
    EXPECT_NEAR(y[1].item<float>(), 2 * std::cos(b) - 4 * std::sin(b), 1e-6);
    EXPECT_NEAR(y[2].item<float>(), 3 * std::cos(a) + 1 * std::sin(a), 1e-6);
    EXPECT_NEAR(y[3].item<float>(), 4 * std::cos(b) + 2 * std::sin(b), 1e-6);
  }
  // The same numbers written out: position 1 gives y0 = cos 1 - 3 sin 1, position 2 y2 = 3 cos 2
  // + sin 2.
  auto [cos1, sin1] = RotaryCosSin(torch::tensor({int64_t{1}}), 4, 10000.0);
  EXPECT_NEAR(ApplyRotary(x, cos1, sin1)[0][0].item<float>(), -1.9841107f, 1e-6);
  auto [cos2, sin2] = RotaryCosSin(torch::tensor({int64_t{2}}), 4, 10000.0);
  EXPECT_NEAR(ApplyRotary(x, cos2, sin2)[0][2].item<float>(), -0.3391431f, 1e-6);
  EXPECT_NEAR(ApplyRotary(x, cos2, sin2)[0][3].item<float>(), 4.0391974f, 1e-6);
}

TEST(Transformer, RotaryScoresDependOnlyOnRelativePosition) {
  torch::manual_seed(3);
  torch::Tensor q = torch::randn({8}), k = torch::randn({8});
  auto score = [&](int64_t m, int64_t n) {
    auto [cm, sm] = RotaryCosSin(torch::tensor({m}), 8, 100.0);
    auto [cn, sn] = RotaryCosSin(torch::tensor({n}), 8, 100.0);
    return (ApplyRotary(q, cm[0], sm[0]) * ApplyRotary(k, cn[0], sn[0])).sum().item<float>();
  };
  EXPECT_NEAR(score(5, 2), score(13, 10), 1e-5);
  EXPECT_NEAR(score(3, 3), (q * k).sum().item<float>(), 1e-5);
  EXPECT_GT(std::abs(score(5, 2) - score(5, 3)), 1e-3);
}

// Queries at positions past[b] .. past[b] + t - 1 of each row, against `s` keys.
void CheckGroupedAttentionAgainstLoops(int64_t t, const int64_t past[2]) {
  torch::manual_seed(4);
  const int64_t n = 2, heads = 6, kv_heads = 2, s = 5, hd = 4;
  torch::Tensor q = torch::randn({n, heads, t, hd});
  torch::Tensor k = torch::randn({n, kv_heads, s, hd});
  torch::Tensor v = torch::randn({n, kv_heads, s, hd});
  torch::Tensor allowed = torch::zeros({n, 1, 1, t, s}, torch::kBool);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t i = 0; i < t; ++i)
      for (int64_t j = 0; j <= past[b] + i; ++j) allowed[b][0][0][i][j] = true;
  torch::Tensor out = GroupedAttention(q, k, v, allowed);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{n, heads, t, hd}));
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t g = h / (heads / kv_heads);  // consecutive query heads share a k/v head
      for (int64_t i = 0; i < t; ++i) {
        std::vector<double> w;
        double total = 0;
        for (int64_t j = 0; j <= past[b] + i; ++j) {
          double dot = 0;
          for (int64_t d = 0; d < hd; ++d) {
            dot += q[b][h][i][d].item<double>() * k[b][g][j][d].item<double>();
          }
          w.push_back(std::exp(dot / std::sqrt(double(hd))));
          total += w.back();
        }
        for (int64_t d = 0; d < hd; ++d) {
          double expected = 0;
          for (size_t j = 0; j < w.size(); ++j)
            expected += w[j] / total * v[b][g][j][d].item<double>();
          EXPECT_NEAR(out[b][h][i][d].item<double>(), expected, 1e-5) << b << h << i << d;
        }
      }
    }
  }
}

TEST(Transformer, GroupedAttentionEqualsLoopsOverHeads) {
  const int64_t prefill[2] = {2, 0};  // row 0 after two cached keys, row 1 from the start
  CheckGroupedAttentionAgainstLoops(3, prefill);  // 9 query rows per k/v head: matmuls
  const int64_t decode[2] = {4, 1};
  CheckGroupedAttentionAgainstLoops(1, decode);  // 3 rows per k/v head: broadcast products
}

// ---------------------------------------------------------------------------------------------
// The whole model against the reference, in the Llama, Qwen2 and Qwen3 variants.

struct Variant {
  const char* name;
  TransformerConfig config;
};

std::vector<Variant> Variants() {
  TransformerConfig llama = SmallConfig();
  TransformerConfig qwen2 = SmallConfig();
  qwen2.attention_bias = true;
  qwen2.kv_heads = 1;
  qwen2.rope_theta = 1000000.0;
  TransformerConfig qwen3 = SmallConfig();
  qwen3.qk_norm = true;
  qwen3.tie_embeddings = true;
  qwen3.head_dim = 6;  // heads * head_dim != d_model, as in Qwen3
  return {{"llama", llama}, {"qwen2", qwen2}, {"qwen3", qwen3}};
}

TEST(Transformer, ForwardEqualsTheReferenceForEachVariant) {
  for (const Variant& variant : Variants()) {
    SCOPED_TRACE(variant.name);
    const TransformerConfig& c = variant.config;
    Transformer model = MakeModel(c, 7);
    const TensorSet weights = RandomWeights(c, 7);
    auto seqs = RandomSequences({6, 3, 1}, c.vocab, 8);
    auto [tokens, lengths] = Batch(seqs, c.vocab);
    auto logits = model.Forward(tokens, lengths);
    ASSERT_TRUE(logits.ok()) << logits.status();
    ASSERT_EQ(logits->sizes(), (std::vector<int64_t>{3, 6, c.vocab}));
    for (size_t b = 0; b < seqs.size(); ++b) {
      torch::Tensor expected = ReferenceLogits(c, weights, seqs[b]);
      EXPECT_GT(expected.abs().max().item<double>(), 0.5);  // the logits carry signal
      EXPECT_LT(MaxAbsDiff((*logits)[b].narrow(0, 0, seqs[b].size()), expected), 1e-4) << b;
    }
  }
}

TEST(Transformer, TiedHeadIsTheEmbeddingAndUntiedHeadIsItsOwn) {
  TransformerConfig tied = SmallConfig();
  tied.tie_embeddings = true;
  Transformer tied_model = MakeModel(tied, 9);
  EXPECT_EQ(tied_model.parameters().size(), ExpectedTensors(tied).size());
  EXPECT_EQ(ExpectedTensors(tied).size() + 1, ExpectedTensors(SmallConfig()).size());
  // An untied model given the embedding as lm_head computes what the tied one does.
  Transformer untied_model = MakeModel(SmallConfig(), 10);
  TensorSet weights = tied_model.ExportWeights();
  NamedTensor head = weights.tensors.front();
  ASSERT_EQ(head.name, "model.embed_tokens.weight");
  head.name = "lm_head.weight";
  weights.tensors.push_back(head);
  ASSERT_TRUE(untied_model.LoadWeights(weights).ok());
  auto [tokens, lengths] = Batch(RandomSequences({5}, tied.vocab, 11), tied.vocab);
  torch::Tensor a = *tied_model.Forward(tokens, lengths);
  torch::Tensor b = *untied_model.Forward(tokens, lengths);
  EXPECT_LT(MaxAbsDiff(a, b), 1e-6);
  // Changing the untied head changes only the untied model's logits.
  weights.tensors.back() = RandomWeights(SmallConfig(), 12).tensors.back();
  ASSERT_EQ(weights.tensors.back().name, "lm_head.weight");
  ASSERT_TRUE(untied_model.LoadWeights(weights).ok());
  EXPECT_GT(MaxAbsDiff(a, *untied_model.Forward(tokens, lengths)), 1e-2);
}

TEST(Transformer, RandomInitialisationIsSeededLikeHuggingFace) {
  TransformerConfig c = SmallConfig();
  c.attention_bias = true;
  c.qk_norm = true;
  auto a = Transformer::Create(c, 5), b = Transformer::Create(c, 5), d = Transformer::Create(c, 6);
  ASSERT_TRUE(a.ok() && b.ok() && d.ok());
  TensorSet wa = a->ExportWeights(), wb = b->ExportWeights(), wd = d->ExportWeights();
  ASSERT_EQ(wa.tensors.size(), ExpectedTensors(c).size());
  for (size_t i = 0; i < wa.tensors.size(); ++i) {
    const NamedTensor& t = wa.tensors[i];
    EXPECT_EQ(t.name, ExpectedTensors(c)[i].name);
    EXPECT_EQ(t.data, wb.tensors[i].data) << t.name;
    const torch::Tensor values = a->parameters()[i].detach();
    if (t.name.find("norm.weight") != std::string::npos) {
      EXPECT_TRUE(values.eq(1).all().item<bool>()) << t.name;
    } else if (t.name.find(".bias") != std::string::npos) {
      EXPECT_TRUE(values.eq(0).all().item<bool>()) << t.name;
    } else {
      EXPECT_NE(t.data, wd.tensors[i].data) << t.name;
      EXPECT_NEAR(values.std().item<float>(), 0.02, 0.004) << t.name;
      EXPECT_NEAR(values.mean().item<float>(), 0.0, 0.004) << t.name;
    }
  }
}

TEST(Transformer, PaddingDoesNotChangeARowsLogits) {
  const TransformerConfig c = SmallConfig();
  Transformer model = MakeModel(c, 13);
  auto seqs = RandomSequences({7, 2, 4}, c.vocab, 14);
  auto [tokens, lengths] = Batch(seqs, c.vocab);
  torch::Tensor batched = *model.Forward(tokens, lengths);
  for (size_t b = 0; b < seqs.size(); ++b) {
    auto [one, one_length] = Batch({seqs[b]}, c.vocab);
    torch::Tensor alone = *model.Forward(one, one_length);
    EXPECT_LT(MaxAbsDiff(batched[b].narrow(0, 0, seqs[b].size()), alone[0]), 1e-5) << b;
  }
}

TEST(Transformer, ForwardIsLogitsFromHiddenOfForwardHiddenBitForBit) {
  for (const Variant& variant : Variants()) {
    SCOPED_TRACE(variant.name);
    const TransformerConfig& c = variant.config;
    Transformer model = MakeModel(c, 21);
    auto seqs = RandomSequences({5, 2, 4}, c.vocab, 22);
    auto [tokens, lengths] = Batch(seqs, c.vocab);
    auto hidden = model.ForwardHidden(tokens, lengths);
    ASSERT_TRUE(hidden.ok()) << hidden.status();
    ASSERT_EQ(hidden->sizes(), (std::vector<int64_t>{3, 5, c.d_model}));
    EXPECT_TRUE(torch::equal(model.LogitsFromHidden(*hidden), *model.Forward(tokens, lengths)));
    // The hidden state is after the final RMSNorm: divided by the norm's weight, each real
    // position's vector has root mean square 1.
    torch::Tensor norm_weight;
    for (const NamedTensor& t : RandomWeights(c, 21).tensors) {
      if (t.name != "model.norm.weight") continue;
      norm_weight = torch::empty(t.shape, torch::kFloat32);
      std::memcpy(norm_weight.data_ptr(), t.data.data(), t.data.size());
    }
    ASSERT_TRUE(norm_weight.defined());
    for (size_t b = 0; b < seqs.size(); ++b) {
      const torch::Tensor row =
          ((*hidden)[b].narrow(0, 0, seqs[b].size()) / norm_weight).to(torch::kDouble);
      EXPECT_LT((row.pow(2).mean(-1).sqrt() - 1).abs().max().item<double>(), 1e-3) << b;
    }
  }
  const TransformerConfig c = SmallConfig();
  Transformer model = MakeModel(c, 23);
  EXPECT_FALSE(
      model.ForwardHidden(torch::zeros({2, 3}, torch::kInt64), torch::tensor({3, 0})).ok());
  EXPECT_THROW(model.LogitsFromHidden(torch::zeros({2, c.d_model + 1})), c10::Error);
}

TEST(Transformer, ForwardIsDifferentiableInEveryParameter) {
  TransformerConfig c = SmallConfig();
  c.attention_bias = true;
  c.qk_norm = true;
  Transformer model = MakeModel(c, 15);
  auto [tokens, lengths] = Batch(RandomSequences({5, 3}, c.vocab, 16), c.vocab);
  torch::Tensor logits = *model.Forward(tokens, lengths);
  torch::log_softmax(logits, -1).select(-1, 3).sum().backward();
  const std::vector<torch::Tensor> params = model.parameters();
  ASSERT_EQ(params.size(), ExpectedTensors(c).size());
  for (size_t i = 0; i < params.size(); ++i) {
    const torch::Tensor& p = params[i];
    ASSERT_TRUE(p.grad().defined()) << ExpectedTensors(c)[i].name;
    EXPECT_GT(p.grad().abs().sum().item<float>(), 0.0f) << ExpectedTensors(c)[i].name;
  }
}

TEST(Transformer, ForwardRejectsBadInput) {
  const TransformerConfig c = SmallConfig();
  Transformer model = MakeModel(c, 17);
  torch::Tensor tokens = torch::zeros({2, 3}, torch::kInt64);
  EXPECT_FALSE(model.Forward(tokens, torch::tensor({3, 0})).ok());
  EXPECT_FALSE(model.Forward(tokens, torch::tensor({3, 4})).ok());
  EXPECT_FALSE(model.Forward(tokens, torch::tensor({3})).ok());
  EXPECT_FALSE(model.Forward(torch::full({2, 3}, c.vocab), torch::tensor({3, 3})).ok());
  EXPECT_FALSE(model.Forward(torch::zeros({2, 3}), torch::tensor({3, 3})).ok());
  EXPECT_TRUE(model.Forward(tokens, torch::tensor({3, 1})).ok());
  TransformerConfig bad = c;
  bad.kv_heads = 3;
  EXPECT_FALSE(Transformer::Create(bad, 1).ok());
}

// ---------------------------------------------------------------------------------------------
// Weights in and out.

TEST(Transformer, LoadWeightsNamesTheMissingMisshapenOrExtraTensor) {
  TransformerConfig c = SmallConfig();
  c.attention_bias = true;
  Transformer model = MakeModel(c, 18);
  auto [tokens, lengths] = Batch(RandomSequences({4}, c.vocab, 19), c.vocab);
  const torch::Tensor before = *model.Forward(tokens, lengths);
  const TensorSet good = RandomWeights(c, 20);

  TensorSet missing = good;
  missing.tensors.erase(missing.tensors.begin() + 3);  // model.layers.0.self_attn.q_proj.bias
  absl::Status s = model.LoadWeights(missing);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("model.layers.0.self_attn.q_proj.bias"), std::string::npos) << s;

  TensorSet misshapen = good;
  for (NamedTensor& t : misshapen.tensors) {
    if (t.name == "model.layers.1.mlp.up_proj.weight") t.shape = {16, 24};  // transposed
  }
  s = model.LoadWeights(misshapen);
  EXPECT_NE(s.message().find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << s;
  EXPECT_NE(s.message().find("[16, 24], expected [24, 16]"), std::string::npos) << s;

  TensorSet extra = good;
  extra.tensors.push_back(good.tensors[0]);
  extra.tensors.back().name = "model.layers.2.input_layernorm.weight";
  s = model.LoadWeights(extra);
  EXPECT_NE(s.message().find("unexpected tensor 'model.layers.2.input_layernorm.weight'"),
            std::string::npos)
      << s;

  TensorSet half = good;
  half.tensors[0].dtype = "F16";
  s = model.LoadWeights(half);
  EXPECT_NE(s.message().find("model.embed_tokens.weight"), std::string::npos) << s;

  // A refused load leaves the model as it was.
  EXPECT_EQ(MaxAbsDiff(*model.Forward(tokens, lengths), before), 0.0);
}

TEST(Transformer, ExportThenLoadGivesIdenticalLogits) {
  for (const Variant& variant : Variants()) {
    SCOPED_TRACE(variant.name);
    const TransformerConfig& c = variant.config;
    Transformer a = MakeModel(c, 21);
    auto b = Transformer::Create(c, 22);
    ASSERT_TRUE(b.ok());
    TensorSet exported = a.ExportWeights();
    ASSERT_EQ(exported.tensors.size(), ExpectedTensors(c).size());
    for (size_t i = 0; i < exported.tensors.size(); ++i) {
      EXPECT_EQ(exported.tensors[i].name, ExpectedTensors(c)[i].name);
      EXPECT_EQ(exported.tensors[i].shape, ExpectedTensors(c)[i].shape);
      EXPECT_EQ(exported.tensors[i].dtype, "F32");
    }
    auto decoded = DecodeSafetensors(EncodeSafetensors(exported));
    ASSERT_TRUE(decoded.ok());
    ASSERT_TRUE(b->LoadWeights(*decoded).ok());
    auto [tokens, lengths] = Batch(RandomSequences({6, 2}, c.vocab, 23), c.vocab);
    EXPECT_TRUE(torch::equal(*a.Forward(tokens, lengths), *b->Forward(tokens, lengths)));
  }
}

// ---------------------------------------------------------------------------------------------
// The KV cache against the full forward.

// Feeds `seqs` through the cache in the held `slots`, in chunks of the given sizes (chunk j of
// every sequence in one Extend call, sequences that have ended left out and their slots released),
// checking every logit against `full` [B, T, V].
void CheckCacheAgainstFull(const Transformer& model, KvCache& cache, const std::vector<int>& slot,
                           const std::vector<std::vector<int32_t>>& seqs,
                           const std::vector<std::vector<int>>& chunk_sizes,
                           const torch::Tensor& full) {
  std::vector<int> done(seqs.size(), 0);
  for (size_t step = 0;; ++step) {
    std::vector<SequenceChunk> chunks;
    std::vector<size_t> rows;
    for (size_t b = 0; b < seqs.size(); ++b) {
      if (step >= chunk_sizes[b].size()) {
        cache.Release(slot[b]);  // ended: the others go on without it
        continue;
      }
      std::span<const int32_t> all(seqs[b]);
      chunks.push_back({slot[b], all.subspan(done[b], chunk_sizes[b][step])});
      rows.push_back(b);
    }
    if (chunks.empty()) break;
    const bool whole = step % 2 == 0;
    auto logits =
        model.Extend(cache, chunks, whole ? Transformer::Logits::kAll : Transformer::Logits::kLast);
    ASSERT_TRUE(logits.ok()) << logits.status();
    for (size_t r = 0; r < rows.size(); ++r) {
      const size_t b = rows[r];
      const int64_t n = chunks[r].tokens.size();
      EXPECT_EQ(cache.Length(slot[b]), done[b] + n);
      if (whole) {
        EXPECT_LT(MaxAbsDiff((*logits)[r].narrow(0, 0, n), full[b].narrow(0, done[b], n)), 1e-5)
            << "step " << step << " row " << b;
      } else {
        EXPECT_LT(MaxAbsDiff((*logits)[r], full[b][done[b] + n - 1]), 1e-5)
            << "step " << step << " row " << b;
      }
      done[b] += n;
    }
  }
}

TEST(Transformer, CachedPrefillDecodeAndAppendEqualTheFullForward) {
  for (const Variant& variant : Variants()) {
    SCOPED_TRACE(variant.name);
    const TransformerConfig& c = variant.config;
    Transformer model = MakeModel(c, 24);
    // Prompts of 3, 6 and 1 tokens, decoded one token at a time, with appended observations of
    // several tokens (the next turn of a game); the second sequence ends first.
    const std::vector<std::vector<int>> chunk_sizes = {
        {3, 1, 4, 1, 1, 2, 1}, {6, 1, 1}, {1, 1, 5, 1, 3, 1, 1, 1}};
    std::vector<int> lengths;
    for (const auto& sizes : chunk_sizes) {
      int n = 0;
      for (int s : sizes) n += s;
      lengths.push_back(n);
    }
    auto seqs = RandomSequences(lengths, c.vocab, 25);
    auto [tokens, lens] = Batch(seqs, c.vocab);
    torch::Tensor full = *model.Forward(tokens, lens);
    auto cache = KvCache::Create(c, 8, 16);
    ASSERT_TRUE(cache.ok()) << cache.status();
    for (int i = 0; i < 8; ++i) ASSERT_EQ(*cache->Allocate(), i);  // the others are bystanders
    // Slots 1..3: read in place, the batch first in order, then with a hole when row 2 ends.
    CheckCacheAgainstFull(model, *cache, {1, 2, 3}, seqs, chunk_sizes, full);
    EXPECT_EQ(cache->free_slots(), 3);
    // Far-apart slots (gathered), and released slots reused in reverse order, whose stale keys
    // must not be read.
    auto more = RandomSequences({4, 2}, c.vocab, 26);
    auto [more_tokens, more_lens] = Batch(more, c.vocab);
    const torch::Tensor more_full = *model.Forward(more_tokens, more_lens);
    CheckCacheAgainstFull(model, *cache, {7, 0}, more, {{1, 1, 2}, {2}}, more_full);
    ASSERT_EQ(*cache->Allocate(), 0);
    ASSERT_EQ(*cache->Allocate(), 1);
    ASSERT_EQ(*cache->Allocate(), 2);
    CheckCacheAgainstFull(model, *cache, {2, 0}, more, {{3, 1}, {1, 1}}, more_full);
  }
}

TEST(Transformer, TruncateRewindsASlotToScoreAnotherContinuation) {
  const TransformerConfig c = SmallConfig();
  Transformer model = MakeModel(c, 27);
  auto cache = KvCache::Create(c, 1, 12);
  ASSERT_TRUE(cache.ok());
  const int slot = *cache->Allocate();
  const std::vector<int32_t> prompt = {1, 2, 3}, first = {4, 5}, second = {6, 7, 8};
  ASSERT_TRUE(model.Extend(*cache, std::vector<SequenceChunk>{{slot, prompt}}).ok());
  ASSERT_TRUE(model.Extend(*cache, std::vector<SequenceChunk>{{slot, first}}).ok());
  ASSERT_TRUE(cache->Truncate(slot, 3).ok());
  auto scored =
      model.Extend(*cache, std::vector<SequenceChunk>{{slot, second}}, Transformer::Logits::kAll);
  ASSERT_TRUE(scored.ok());
  auto [tokens, lens] = Batch({{1, 2, 3, 6, 7, 8}}, c.vocab);
  torch::Tensor full = *model.Forward(tokens, lens);
  EXPECT_LT(MaxAbsDiff((*scored)[0], full[0].narrow(0, 3, 3)), 1e-5);
  EXPECT_FALSE(cache->Truncate(slot, 7).ok());
}

TEST(Transformer, ExtendRefusesBadChunksAndLeavesTheCacheAlone) {
  const TransformerConfig c = SmallConfig();
  Transformer model = MakeModel(c, 28);
  auto cache = KvCache::Create(c, 2, 4);
  ASSERT_TRUE(cache.ok());
  const int a = *cache->Allocate();
  const std::vector<int32_t> three = {1, 2, 3}, two = {1, 2}, none, bad = {1, c.vocab};
  ASSERT_TRUE(model.Extend(*cache, std::vector<SequenceChunk>{{a, three}}).ok());
  absl::StatusOr<torch::Tensor> r = model.Extend(*cache, std::vector<SequenceChunk>{{a, two}});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("slot 0"), std::string::npos) << r.status();
  EXPECT_FALSE(model.Extend(*cache, std::vector<SequenceChunk>{{1, two}}).ok());  // not held
  EXPECT_FALSE(model.Extend(*cache, std::vector<SequenceChunk>{{a, none}}).ok());
  const int b = *cache->Allocate();
  EXPECT_FALSE(model.Extend(*cache, std::vector<SequenceChunk>{{b, bad}}).ok());
  EXPECT_FALSE(model.Extend(*cache, std::vector<SequenceChunk>{{b, two}, {b, two}}).ok());
  EXPECT_EQ(cache->Length(a), 3);
  EXPECT_EQ(cache->Length(b), 0);
  EXPECT_EQ(cache->Allocate().status().code(), absl::StatusCode::kResourceExhausted);
  TransformerConfig other = c;
  other.kv_heads = 4;
  auto wrong = KvCache::Create(other, 1, 4);
  ASSERT_TRUE(wrong.ok());
  const int w = *wrong->Allocate();
  EXPECT_FALSE(model.Extend(*wrong, std::vector<SequenceChunk>{{w, two}}).ok());
}

TEST(Transformer, CacheMemoryIsBoundedBySlotsTimesCapacity) {
  const TransformerConfig c = SmallConfig();  // 2 layers, 2 kv heads of 4
  // keys and values: 2 * layers * slots * kv_heads * capacity * head_dim floats.
  EXPECT_EQ(KvCache::BytesFor(c, 3, 10), 2 * 2 * 3 * 2 * 10 * 4 * 4);
  EXPECT_EQ(KvCache::SlotsWithin(c, 10, 2 * 2 * 3 * 2 * 10 * 4 * 4 + 100), 3);
  EXPECT_FALSE(KvCache::Create(c, 0, 10).ok());
}

// ---------------------------------------------------------------------------------------------
// Sampling.

TEST(Sampling, GreedyIsTheArgmaxWithLogProbZero) {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 1.9f};
  std::mt19937_64 rng(1);
  SampledToken t = SampleToken(logits, {.temperature = 0.0}, rng);
  EXPECT_EQ(t.token, 1);
  EXPECT_EQ(t.log_prob, 0.0f);
  for (int i = 0; i < 20; ++i) {
    SampledToken k1 = SampleToken(logits, {.temperature = 1.0, .top_k = 1}, rng);
    EXPECT_EQ(k1.token, 1);
    EXPECT_EQ(k1.log_prob, 0.0f);
  }
}

TEST(Sampling, TemperatureTopKTopPRenormaliseAsComputedByHand) {
  // z = logits / 0.5 = [4, 2, 0, -2, 6]. top-k 3 keeps tokens 4, 0, 1 with probabilities
  // e^6, e^4, e^2 / sum = 0.8668, 0.1173, 0.0159. top-p 0.9 keeps token 1 only while the mass
  // before it (0.9841) is below 0.9: it does not. Renormalised: token 4 e^6 / (e^6 + e^4) =
  // sigmoid(2) = 0.880797, token 0 0.119203.
  const std::vector<float> logits = {2.0f, 1.0f, 0.0f, -1.0f, 3.0f};
  const SamplingOptions options{.temperature = 0.5, .top_k = 3, .top_p = 0.9};
  std::vector<TokenProbability> dist = SamplingDistribution(logits, options);
  ASSERT_EQ(dist.size(), 2u);
  EXPECT_EQ(dist[0].token, 4);
  EXPECT_NEAR(dist[0].prob, 0.880797, 1e-6);
  EXPECT_EQ(dist[1].token, 0);
  EXPECT_NEAR(dist[1].prob, 0.119203, 1e-6);
  std::mt19937_64 rng(2);
  const int draws = 20000;
  int fours = 0;
  for (int i = 0; i < draws; ++i) {
    SampledToken t = SampleToken(logits, options, rng);
    ASSERT_TRUE(t.token == 4 || t.token == 0) << t.token;
    EXPECT_NEAR(t.log_prob, std::log(t.token == 4 ? 0.880797 : 0.119203), 1e-5);
    fours += t.token == 4;
  }
  // Standard deviation sqrt(0.88 * 0.12 / 20000) = 0.0023: 0.01 is over four of them.
  EXPECT_NEAR(double(fours) / draws, 0.880797, 0.01);
}

TEST(Sampling, FrequenciesMatchTheSoftmaxByChiSquare) {
  const std::vector<float> logits = {0.0f, 1.0f, -0.5f, 0.3f, -INFINITY, 0.8f};
  const double temperature = 1.3;
  std::vector<double> expected(logits.size());
  double total = 0;
  for (size_t i = 0; i < logits.size(); ++i)
    total += expected[i] = std::exp(logits[i] / temperature);
  for (double& p : expected) p /= total;
  std::mt19937_64 rng(3);
  const int draws = 50000;
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < draws; ++i) {
    SampledToken t = SampleToken(logits, {.temperature = temperature}, rng);
    ++counts[t.token];
    ASSERT_NEAR(t.log_prob, std::log(expected[t.token]), 1e-5);
  }
  EXPECT_EQ(counts[4], 0);  // -inf is never drawn
  double chi2 = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (i == 4) continue;
    const double e = expected[i] * draws;
    chi2 += (counts[i] - e) * (counts[i] - e) / e;
  }
  EXPECT_LT(chi2, 18.47);  // 4 degrees of freedom, p = 0.001
}

TEST(Sampling, SameSeedSameTokens) {
  const std::vector<float> logits = {0.1f, 0.2f, 0.3f, 0.4f};
  std::mt19937_64 a(9), b(9);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(SampleToken(logits, {.top_p = 0.8}, a).token,
              SampleToken(logits, {.top_p = 0.8}, b).token);
  }
}

TEST(Sampling, ValidateRejectsBadOptions) {
  EXPECT_TRUE(ValidateSamplingOptions({}).ok());
  EXPECT_FALSE(ValidateSamplingOptions({.temperature = -1}).ok());
  EXPECT_FALSE(ValidateSamplingOptions({.top_k = -1}).ok());
  EXPECT_FALSE(ValidateSamplingOptions({.top_p = 0}).ok());
  EXPECT_FALSE(ValidateSamplingOptions({.top_p = 1.5}).ok());
}

}  // namespace
}  // namespace rally
