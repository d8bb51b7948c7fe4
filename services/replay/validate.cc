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

absl::Status CheckObservation(const Game& game, const v1::Turn& turn, const std::string& at) {
  const int obs_size = game.ObservationSize();
  if (turn.observation_size() != obs_size) {
    return Bad(at + ".observation", absl::StrCat(turn.observation_size(),
                                                 " floats, the game's observation has ", obs_size));
  }
  for (float v : turn.observation()) {
    if (!std::isfinite(v)) return Bad(at + ".observation", "holds a value that is not finite");
  }
  return absl::OkStatus();
}

// A board or card game's turn: an observation, the legal actions, one chosen action.
absl::Status CheckActionTurn(const Game& game, const v1::Turn& turn, const std::string& at) {
  if (turn.action_token_versions_size() > 0) {
    return Bad(at + ".action_tokens", absl::StrCat("empty, but action_token_versions has ",
                                                   turn.action_token_versions_size(), " entries"));
  }
  if (auto s = CheckObservation(game, turn, at); !s.ok()) return s;
  const int num_actions = game.NumDistinctActions();
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
  bool legal = std::find(turn.legal_actions().begin(), turn.legal_actions().end(), turn.action()) !=
               turn.legal_actions().end();
  if (!legal) {
    return Bad(at + ".action", absl::StrCat(turn.action(), " is not among the legal actions [",
                                            absl::StrJoin(turn.legal_actions(), ", "), "]"));
  }
  if (turn.behaviour_log_probs_size() != 1) {
    return Bad(at + ".behaviour_log_probs",
               absl::StrCat(turn.behaviour_log_probs_size(), " entries, expected 1"));
  }
  return CheckBehaviourLogProb(at + ".behaviour_log_probs[0]", turn.behaviour_log_probs(0));
}

// A language-model turn: the prompt's tokens (context), the generated tokens (the action), one
// behaviour log-probability and at most one policy version per generated token.
absl::Status CheckTokenTurn(const Game& game, const v1::Turn& turn, const std::string& at) {
  const int n = turn.action_tokens_size();
  const size_t tokens = static_cast<size_t>(turn.observation_tokens_size()) + n;
  if (tokens > kMaxTokensPerTurn) {
    return Bad(at, absl::StrCat(tokens, " tokens (prompt and action), more than the limit of ",
                                kMaxTokensPerTurn));
  }
  if (turn.observation_tokens_size() == 0) {
    return Bad(at + ".observation_tokens", "empty in a token turn (the prompt is context)");
  }
  if (turn.observation_size() != 0 && turn.observation_size() != game.ObservationSize()) {
    return Bad(at + ".observation", absl::StrCat(turn.observation_size(),
                                                 " floats, a token turn has none or the game's ",
                                                 game.ObservationSize()));
  }
  if (turn.observation_size() != 0) {
    if (auto s = CheckObservation(game, turn, at); !s.ok()) return s;
  }
  // A token turn's legal_actions are token ids (its legal answers; services/actor/text_selfplay.h).
  for (int k = 0; k < turn.legal_actions_size(); ++k) {
    if (turn.legal_actions(k) < 0 ||
        (k > 0 && turn.legal_actions(k) <= turn.legal_actions(k - 1))) {
      return Bad(at + ".legal_actions", "token ids not non-negative and strictly ascending");
    }
  }
  if (turn.behaviour_log_probs_size() != n) {
    return Bad(at + ".behaviour_log_probs",
               absl::StrCat(turn.behaviour_log_probs_size(),
                            " entries, expected one per action token (", n, ")"));
  }
  for (int k = 0; k < n; ++k) {
    if (auto s = CheckBehaviourLogProb(absl::StrCat(at, ".behaviour_log_probs[", k, "]"),
                                       turn.behaviour_log_probs(k));
        !s.ok()) {
      return s;
    }
  }
  const int versions = turn.action_token_versions_size();
  if (versions != 0 && versions != n) {
    return Bad(at + ".action_token_versions",
               absl::StrCat(versions, " entries, expected none or one per action token (", n, ")"));
  }
  for (int k = 0; k < versions; ++k) {
    const std::string field = absl::StrCat(at, ".action_token_versions[", k, "]");
    const int64_t v = turn.action_token_versions(k);
    if (v < 0) return Bad(field, "negative");
    if (v > turn.policy_version()) {
      return Bad(field, absl::StrCat(v, " is newer than the turn's policy_version ",
                                     turn.policy_version()));
    }
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
  for (int i = 0; i < t.turns_size(); ++i) {
    const v1::Turn& turn = t.turns(i);
    std::string at = absl::StrCat("turns[", i, "]");
    if (turn.seat() < 0 || turn.seat() >= players) {
      return Bad(at + ".seat", absl::StrCat(turn.seat(), " out of range [0, ", players, ")"));
    }
    absl::Status s = turn.action_tokens_size() > 0 ? CheckTokenTurn(game, turn, at)
                                                   : CheckActionTurn(game, turn, at);
    if (!s.ok()) return s;
    if (auto s = CheckReward(at + ".reward", turn.reward()); !s.ok()) return s;
    if (turn.policy_version() < 0) return Bad(at + ".policy_version", "negative");
  }
  return absl::OkStatus();
}

}  // namespace rally
