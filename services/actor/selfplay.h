// Self-play: `envs` environments of the job's game stepped by `threads` threads. Every seat is
// played by the learning policy; each episode is played entirely by the policy version that was
// latest when it started (new weights apply between episodes). Each thread submits the pending
// observations of all its environments to the inference worker at once, so one forward pass
// serves many environments. Finished episodes go to the replay writer.
//
// Opponents: each new episode first draws from the spec's fixed opponents (actors.opponents,
// their shares); the rest takes a pick from `opponents` when given (the curriculum: "latest" =
// every seat learns; "snapshot-<v>" = the learning policy sits in the pick's learner seat and the
// snapshot's policy plays the others, through the same inference worker; its turns are not
// recorded). Episodes of curriculum picks are reported back to it with the learner seat's return.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "common/config/job_config.h"
#include "common/games/game.h"
#include "common/models/network_policy.h"
#include "services/actor/inference.h"
#include "services/actor/opponent_source.h"
#include "services/actor/replay_writer.h"

namespace rally {

struct SelfPlayStats {
  std::atomic<int64_t> episodes{0};
  std::atomic<int64_t> turns{0};
  // Episodes by opponent kind: every seat learning, a snapshot, a fixed opponent.
  std::atomic<int64_t> episodes_latest{0};
  std::atomic<int64_t> episodes_snapshot{0};
  std::atomic<int64_t> episodes_fixed{0};
};

// Runs until `keep_running()` turns false or the writer stops. `opponents` may be null (no
// curriculum: self-play and fixed opponents only).
void RunSelfPlay(const JobConfig& config, const Game& game, const std::string& actor_id,
                 LatestPolicy& latest, InferenceWorker& inference, ReplayWriter& writer,
                 const std::function<bool()>& keep_running, SelfPlayStats& stats,
                 OpponentSource* opponents = nullptr);

}  // namespace rally
