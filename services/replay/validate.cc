#include "services/replay/validate.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rally {
namespace {

absl::Status Bad(const std::string& field, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

absl::Status CheckId(const std::string& field, const std::string& id) {
  if (id.size() <= kMaxIdBytes) return absl::OkStatus();
  return Bad(field, absl::StrCat(id.size(), " bytes, longer than the limit of ", kMaxIdBytes));
}

// A return or reward: finite and within +-kMaxAbsReward.
absl::Status CheckReward(const std::string& field, float value) {
  if (!std::isfinite(value)) return Bad(field, "not finite");
  if (std::abs(value) > kMaxAbsReward) {
    return Bad(field,
               absl::StrCat(value, " is outside [", -kMaxAbsReward, ", ", kMaxAbsReward, "]"));
  }
  return absl::OkStatus();
}

absl::Status CheckBehaviourLogProb(const std::string& field, float lp) {
  if (!std::isfinite(lp)) return Bad(field, "not finite");
  if (lp > 0) {
    return Bad(field, absl::StrCat(lp, " is above 0, the log-probability of a certain action"));
  }
  if (lp < kMinBehaviourLogProb) {
    return Bad(field, absl::StrCat(lp, " is below ", kMinBehaviourLogProb,
                                   ": an action of probability e^", kMinBehaviourLogProb,
                                   " is never sampled, so this is not the log-probability of the "
                                   "action drawn"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateTrajectory(const Game& game, const v1::Trajectory& t) {
  if (t.game() != game.Name()) {
    return Bad("game", absl::StrCat("'", t.game(), "' but this job plays '", game.Name(), "'"));
  }
  const int players = game.NumPlayers();
  if (t.returns_size() != players) {
    return Bad("returns",
               absl::StrCat(t.returns_size(), " entries, the game has ", players, " players"));
  }
  for (int i = 0; i < t.returns_size(); ++i) {
    if (auto s = CheckReward(absl::StrCat("returns[", i, "]"), t.returns(i)); !s.ok()) return s;
  }
  if (auto s = CheckId("task_id", t.task_id()); !s.ok()) return s;
  if (auto s = CheckId("opponent_id", t.opponent_id()); !s.ok()) return s;
  if (t.learning_seats_size() == 0) return Bad("learning_seats", "empty");
  for (int seat : t.learning_seats()) {
    if (seat < 0 || seat >= players) {
      return Bad("learning_seats", absl::StrCat("seat ", seat, " out of range [0, ", players, ")"));
    }
  }
  if (t.turns_size() == 0) return Bad("turns", "empty");
  if (t.turns_size() > game.MaxGameLength()) {
    return Bad("turns", absl::StrCat(t.turns_size(), " turns, longer than the game's maximum ",
                                     game.MaxGameLength()));
  }
  const int obs_size = game.ObservationSize();
  const int num_actions = game.NumDistinctActions();
  for (int i = 0; i < t.turns_size(); ++i) {
    const v1::Turn& turn = t.turns(i);
    std::string at = absl::StrCat("turns[", i, "]");
    if (turn.seat() < 0 || turn.seat() >= players) {
      return Bad(at + ".seat", absl::StrCat(turn.seat(), " out of range [0, ", players, ")"));
    }
    if (turn.observation_size() != obs_size) {
      return Bad(
          at + ".observation",
          absl::StrCat(turn.observation_size(), " floats, the game's observation has ", obs_size));
    }
    for (float v : turn.observation()) {
      if (!std::isfinite(v)) return Bad(at + ".observation", "holds a value that is not finite");
    }
    if (turn.legal_actions_size() == 0) return Bad(at + ".legal_actions", "empty");
    for (int k = 0; k < turn.legal_actions_size(); ++k) {
      int a = turn.legal_actions(k);
      if (a < 0 || a >= num_actions) {
        return Bad(at + ".legal_actions", absl::StrCat(a, " out of range [0, ", num_actions, ")"));
      }
      if (k > 0 && a <= turn.legal_actions(k - 1)) {
        return Bad(at + ".legal_actions", "not strictly ascending");
      }
    }
    bool legal = std::find(turn.legal_actions().begin(), turn.legal_actions().end(),
                           turn.action()) != turn.legal_actions().end();
    if (!legal) {
      return Bad(at + ".action", absl::StrCat(turn.action(), " is not among the legal actions [",
                                              absl::StrJoin(turn.legal_actions(), ", "), "]"));
    }
    if (turn.behaviour_log_probs_size() != 1) {
      return Bad(at + ".behaviour_log_probs",
                 absl::StrCat(turn.behaviour_log_probs_size(), " entries, expected 1"));
    }
    if (auto s = CheckBehaviourLogProb(at + ".behaviour_log_probs[0]", turn.behaviour_log_probs(0));
        !s.ok()) {
      return s;
    }
    if (auto s = CheckReward(at + ".reward", turn.reward()); !s.ok()) return s;
    if (turn.policy_version() < 0) return Bad(at + ".policy_version", "negative");
  }
  return absl::OkStatus();
}

}  // namespace rally
