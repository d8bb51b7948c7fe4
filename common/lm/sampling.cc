#include "common/lm/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

namespace rally {
namespace {

int32_t Argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Higher logit first, then lower token id.
struct ByLogit {
  std::span<const float> logits;
  bool operator()(int32_t a, int32_t b) const {
    return logits[a] != logits[b] ? logits[a] > logits[b] : a < b;
  }
};

}  // namespace

absl::Status ValidateSamplingOptions(const SamplingOptions& options) {
  if (!(options.temperature >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("temperature must be >= 0, got ", options.temperature));
  }
  if (options.top_k < 0) {
    return absl::InvalidArgumentError(absl::StrCat("top_k must be >= 0, got ", options.top_k));
  }
  if (!(options.top_p > 0 && options.top_p <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("top_p must lie in (0, 1], got ", options.top_p));
  }
  return absl::OkStatus();
}

std::vector<TokenProbability> SamplingDistribution(std::span<const float> logits,
                                                   const SamplingOptions& options) {
  if (logits.empty()) return {};
  if (options.temperature == 0) return {{Argmax(logits), 1.0}};
  // Candidates in descending order of logit (temperature keeps the order); top-k cuts the list.
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  const size_t k = options.top_k > 0 ? std::min<size_t>(options.top_k, order.size()) : order.size();
  std::partial_sort(order.begin(), order.begin() + k, order.end(), ByLogit{logits});
  order.resize(k);
  // Softmax of logits / temperature over the candidates.
  const double max_z = logits[order[0]] / options.temperature;
  std::vector<TokenProbability> dist;
  dist.reserve(k);
  double total = 0;
  for (int32_t id : order) {
    const double p = std::exp(logits[id] / options.temperature - max_z);
    if (p <= 0) break;  // the rest are smaller still
    dist.push_back({id, p});
    total += p;
  }
  // Nucleus: keep a token while the mass before it is below top_p.
  size_t kept = 0;
  double mass = 0, kept_mass = 0;
  for (; kept < dist.size(); ++kept) {
    if (kept > 0 && mass >= options.top_p) break;
    mass += dist[kept].prob / total;
    kept_mass += dist[kept].prob;
  }
  dist.resize(kept);
  for (TokenProbability& tp : dist) tp.prob /= kept_mass;
  return dist;
}

SampledToken SampleToken(std::span<const float> logits, const SamplingOptions& options,
                         std::mt19937_64& rng) {
  if (options.temperature == 0 || options.top_k == 1) return {Argmax(logits), 0.0f};
  std::vector<TokenProbability> dist = SamplingDistribution(logits, options);
  if (dist.size() <= 1) return {dist.empty() ? 0 : dist[0].token, 0.0f};
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  double cumulative = 0;
  for (const TokenProbability& tp : dist) {
    cumulative += tp.prob;
    if (u < cumulative) return {tp.token, static_cast<float>(std::log(tp.prob))};
  }
  return {dist.back().token, static_cast<float>(std::log(dist.back().prob))};
}

}  // namespace rally
