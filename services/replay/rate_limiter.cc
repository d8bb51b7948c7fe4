#include "services/replay/rate_limiter.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace rally {

RateLimiterOptions RateLimiterOptions::WithErrorBuffer(double samples_per_insert,
                                                       int64_t min_size_to_sample,
                                                       double error_buffer) {
  RateLimiterOptions o;
  o.samples_per_insert = samples_per_insert;
  o.min_size_to_sample = min_size_to_sample;
  double centre = samples_per_insert * static_cast<double>(min_size_to_sample);
  o.min_diff = centre - error_buffer;
  o.max_diff = centre + error_buffer;
  return o;
}

RateLimiterOptions RateLimiterOptions::Queue(int64_t capacity) {
  RateLimiterOptions o;
  o.samples_per_insert = 1;
  o.min_size_to_sample = 1;
  o.min_diff = 0;
  o.max_diff = static_cast<double>(capacity);
  return o;
}

RateLimiterOptions RateLimiterOptions::MinSize(int64_t min_size_to_sample) {
  RateLimiterOptions o;
  o.samples_per_insert = 1;
  o.min_size_to_sample = min_size_to_sample;
  o.min_diff = -1e18;
  o.max_diff = 1e18;
  return o;
}

absl::Status RateLimiterOptions::Validate() const {
  if (!(samples_per_insert > 0) || !std::isfinite(samples_per_insert)) {
    return absl::InvalidArgumentError("samples_per_insert must be positive");
  }
  if (min_size_to_sample < 1) {
    return absl::InvalidArgumentError("min_size_to_sample must be at least 1");
  }
  if (!(min_diff <= max_diff)) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_diff (", min_diff, ") must not exceed max_diff (", max_diff, ")"));
  }
  return absl::OkStatus();
}

bool RateLimiter::CanInsert(int64_t size, int64_t n) const {
  if (size + n <= options_.min_size_to_sample) return true;
  return cursor() + static_cast<double>(n) * options_.samples_per_insert <= options_.max_diff;
}

bool RateLimiter::CanSample(int64_t size, int64_t n) const {
  if (size < options_.min_size_to_sample) return false;
  return cursor() - static_cast<double>(n) >= options_.min_diff;
}

std::string RateLimiter::DebugString() const {
  return absl::StrCat("rate_limiter(samples_per_insert=", options_.samples_per_insert,
                      ", min_size_to_sample=", options_.min_size_to_sample,
                      ", min_diff=", options_.min_diff, ", max_diff=", options_.max_diff,
                      ", cursor=", cursor(), ")");
}

}  // namespace rally
