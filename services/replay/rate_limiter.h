// Reverb's rate limiter: keeps the ratio of samples to inserts near `samples_per_insert`.
//
// The one invariant, kept between the fields below:
//   cursor = inserts * samples_per_insert - samples,   min_diff <= cursor <= max_diff
// (checked when a call would move the cursor, never forced). Until the table holds
// `min_size_to_sample` items, inserts always proceed; after that an insert may proceed if the
// cursor after it stays <= max_diff. A sample of n items may proceed if the table holds at least
// `min_size_to_sample` items and the cursor after it stays >= min_diff. With an error buffer e:
//   min_diff = samples_per_insert * min_size_to_sample - e,  max_diff = the same + e.
// A queue is samples_per_insert = 1, min_size_to_sample = 1, min_diff = 0, max_diff = capacity.
//
// Thread safety: none; the owning table guards it with its lock and does the waiting.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace rally {

struct RateLimiterOptions {
  double samples_per_insert = 1.0;
  int64_t min_size_to_sample = 1;
  double min_diff = 0;
  double max_diff = 1e18;

  // The usual form: min/max_diff from an error buffer around the target ratio.
  static RateLimiterOptions WithErrorBuffer(double samples_per_insert, int64_t min_size_to_sample,
                                            double error_buffer);
  // A FIFO queue of `capacity` items: every item sampled once.
  static RateLimiterOptions Queue(int64_t capacity);
  // No rate limiting beyond the minimum size.
  static RateLimiterOptions MinSize(int64_t min_size_to_sample);
  absl::Status Validate() const;
};

class RateLimiter {
 public:
  explicit RateLimiter(RateLimiterOptions options) : options_(options) {}

  // `size` is the table's current item count.
  bool CanInsert(int64_t size, int64_t n = 1) const;
  bool CanSample(int64_t size, int64_t n = 1) const;
  void Inserted(int64_t n = 1) { inserts_ += n; }
  // An insert taken back (its item withdrawn before anyone could sample it).
  void Uninserted() { --inserts_; }
  void Sampled(int64_t n = 1) { samples_ += n; }

  double cursor() const { return inserts_ * options_.samples_per_insert - samples_; }
  int64_t inserts() const { return inserts_; }
  int64_t samples() const { return samples_; }
  // Restores the counters (after a restart).
  void Restore(int64_t inserts, int64_t samples) {
    inserts_ = inserts;
    samples_ = samples;
  }
  const RateLimiterOptions& options() const { return options_; }
  std::string DebugString() const;

 private:
  RateLimiterOptions options_;
  int64_t inserts_ = 0;
  int64_t samples_ = 0;
};

}  // namespace rally
