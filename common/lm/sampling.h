// Sampling the next token from a row of logits, as Hugging Face's generate does it: temperature,
// then top-k, then top-p (nucleus), then a draw from the renormalised distribution. The
// behaviour log-probability returned with the token is the one under that renormalised
// distribution, the distribution the token was actually drawn from, which is what importance
// ratios against the learner's policy need.
//
// Torch-free: a row of logits is a span of floats (finite, or -inf for excluded tokens; at least
// one finite). Reproducible: the only randomness is the caller's std::mt19937_64.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "absl/status/status.h"

namespace rally {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy
  int top_k = 0;             // keep the k highest logits (ties to the lower token id); 0: all
  double top_p = 1.0;        // keep the smallest set of most probable tokens whose mass >= top_p
};

// OK unless temperature < 0, top_k < 0 or top_p outside (0, 1]; INVALID_ARGUMENT naming the field.
absl::Status ValidateSamplingOptions(const SamplingOptions& options);

struct SampledToken {
  int32_t token = 0;
  float log_prob = 0;  // log of its probability under the distribution it was drawn from
};

// One token from `logits`. Greedy (temperature 0, or a single token kept) returns the argmax, the
// lowest id among equal maxima, with log_prob 0: it was drawn with probability 1.
SampledToken SampleToken(std::span<const float> logits, const SamplingOptions& options,
                         std::mt19937_64& rng);

// The distribution SampleToken draws from, as (token, probability) pairs, most probable first,
// zero-probability tokens left out; probabilities sum to 1.
struct TokenProbability {
  int32_t token;
  double prob;
};
std::vector<TokenProbability> SamplingDistribution(std::span<const float> logits,
                                                   const SamplingOptions& options);

}  // namespace rally
