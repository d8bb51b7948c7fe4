// Opponent ids of weight snapshots: the curriculum's pool names the learner's snapshot of weight
// version v "snapshot-<v>"; rally-replay writes these ids and rally-actor reads them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace rally {

inline constexpr char kSnapshotOpponentPrefix[] = "snapshot-";

inline std::string SnapshotOpponentId(int64_t version) {
  return absl::StrCat(kSnapshotOpponentPrefix, version);
}

// The version v of "snapshot-<v>" (v >= 1); nullopt for any other id.
inline std::optional<int64_t> SnapshotVersion(absl::string_view opponent_id) {
  if (!absl::ConsumePrefix(&opponent_id, kSnapshotOpponentPrefix)) return std::nullopt;
  int64_t v = 0;
  if (!absl::SimpleAtoi(opponent_id, &v) || v < 1) return std::nullopt;
  return v;
}

}  // namespace rally
