#include "services/cli/restart_policy.h"

#include <algorithm>

namespace rally {

std::optional<RestartPolicy::Duration> RestartPolicy::Exited(TimePoint now) {
  if (now - started_ >= options_.stable_after) doublings_ = 0;
  if (spent()) return std::nullopt;
  ++restarts_;
  Duration backoff = options_.initial_backoff;
  for (int i = 0; i < doublings_ && backoff < options_.max_backoff; ++i) backoff *= 2;
  ++doublings_;
  return std::min(backoff, options_.max_backoff);
}

}  // namespace rally
