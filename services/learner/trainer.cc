#include "services/learner/trainer.h"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/games/registry.h"
#include "common/models/policy_net.h"
#include "common/net/server.h"
#include "common/rl/reinforce.h"
#include "common/util/log.h"
#include "common/util/shutdown.h"
#include "nlohmann/json.hpp"
#include "rally/v1/replay.grpc.pb.h"
#include "services/learner/checkpoint.h"

namespace rally {
namespace {

using Clock = std::chrono::steady_clock;
// Batches requested ahead of training.
constexpr int kPrefetchBatches = 2;

torch::Device ChooseDevice(const std::string& wanted) {
  if (wanted == "cpu") return torch::kCPU;
  if (wanted == "auto")
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::kCPU;
  return torch::Device(wanted);
}

std::string EncodeWeights(PolicyNet& net, int64_t version, int64_t step) {
  TensorSet set;
  set.tensors = ExportParameters(net);
  set.metadata = {{"policy_version", absl::StrCat(version)}, {"learner_step", absl::StrCat(step)}};
  return EncodeSafetensors(set);
}

}  // namespace

TrainerMetrics::TrainerMetrics(prometheus::Registry& r)
    : steps_total(AddCounter(r, "rally_learner_steps_total", "Optimiser steps.")),
      episodes_total(AddCounter(r, "rally_learner_episodes_total", "Episodes trained on.")),
      loss(AddGauge(r, "rally_learner_loss", "Loss of the latest step.")),
      entropy(AddGauge(r, "rally_learner_policy_entropy_nats",
                       "Mean policy entropy over the latest batch's turns.")),
      importance_weight(AddGauge(r, "rally_learner_importance_weight",
                                 "Mean truncated importance weight pi/mu of the latest batch.")),
      mean_return(AddGauge(r, "rally_learner_mean_return",
                           "Mean return of the learning seats in the latest batch.")),
      policy_lag(AddHistogram(r, "rally_learner_policy_lag_versions",
                              "Policy versions between acting and training, per turn.",
                              {0, 1, 2, 4, 8, 16, 32, 64})),
      step_seconds(AddHistogram(r, "rally_learner_step_seconds", "Wall time of one optimiser step.",
                                {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1})),
      batch_wait_seconds(AddHistogram(r, "rally_learner_batch_wait_seconds",
                                      "Time spent waiting for the next batch.",
                                      {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5})) {}

absl::Status RunTrainer(const v1::Assignment& assignment, const JobConfig& config,
                        const TrainerOptions& options, ControlClient& control,
                        WeightServiceImpl& weights, TrainerMetrics& m, TrainerProgress& progress) {
  const std::string& job_id = assignment.job_id();
  auto game = LoadGame(config.game.name);
  if (!game.ok()) return game.status();
  const int obs_size = (*game)->ObservationSize();
  const int num_actions = (*game)->NumDistinctActions();
  const LearnerConfig& lc = config.learner;

  torch::manual_seed(static_cast<uint64_t>(config.seed));
  torch::Device device = ChooseDevice(lc.device);
  PolicyNet net(obs_size, config.policy.hidden, num_actions);
  torch::optim::Adam optimiser(net->parameters(), torch::optim::AdamOptions(lc.learning_rate));
  RoleBaselines baselines(lc.baseline_decay);
  int64_t step = 0;
  int64_t version = 0;
  // A restarted learner continues its job from the newest checkpoint: same step and version
  // numbering, optimiser moments, baselines and RNG state.
  auto resumed = LoadLatestCheckpoint(options.checkpoint_dir, job_id, net, optimiser);
  if (resumed.ok()) {
    step = resumed->step;
    version = resumed->version;
    baselines.set_values(resumed->baselines);
    LogInfo("resumed from checkpoint", {{"job_id", job_id}, {"step", step}, {"version", version}});
  } else if (!absl::IsNotFound(resumed.status())) {
    return resumed.status();
  }
  progress.steps = step;
  progress.version = version;
  progress.version = 0;
  // Publish on CPU (weights leave the process), train on `device`.
  if (options.rank == 0) weights.Publish(version, step, EncodeWeights(net, version, step));
  net->to(device);
  LogInfo("training", {{"job_id", job_id},
                       {"device", device.str()},
                       {"batch_episodes", lc.batch_episodes},
                       {"learning_rate", lc.learning_rate}});

  if (assignment.endpoints().replay().empty()) {
    return absl::FailedPreconditionError("no replay endpoint in the assignment");
  }
  // One sample stream per replay shard; batches are taken from the shards in turn, each stream
  // keeping kPrefetchBatches batches requested so they are assembled while the learner trains.
  struct Shard {
    std::unique_ptr<v1::ReplayService::Stub> stub;
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReaderWriter<v1::SampleRequest, v1::SampleResponse>> stream;
  };
  std::vector<std::unique_ptr<Shard>> shards;
  for (const std::string& address : assignment.endpoints().replay()) {
    auto shard = std::make_unique<Shard>();
    shard->stub = v1::ReplayService::NewStub(MakeChannel(address));
    shard->stream = shard->stub->Sample(&shard->ctx);
    v1::SampleRequest req;
    req.set_table(lc.table);
    req.set_batch_size(lc.batch_episodes);
    req.set_credits(kPrefetchBatches);
    shard->stream->Write(req);
    shards.push_back(std::move(shard));
  }
  // Ends the blocking stream reads when the job ends or the process shuts down.
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done && control.IsActive(job_id) && !WaitForShutdown(std::chrono::milliseconds(100))) {
    }
    for (auto& shard : shards) shard->ctx.TryCancel();
  });

  absl::Status result = absl::OkStatus();
  v1::SampleResponse batch;
  auto wait_start = Clock::now();
  size_t next_shard = 0;
  while (true) {
    Shard& shard = *shards[next_shard];
    next_shard = (next_shard + 1) % shards.size();
    if (!shard.stream->Read(&batch)) break;
    auto step_start = Clock::now();
    {
      v1::SampleRequest more;
      more.set_credits(1);
      more.set_policy_version(version);
      shard.stream->Write(more);
    }
    m.batch_wait_seconds.Observe(std::chrono::duration<double>(step_start - wait_start).count());
    std::vector<const v1::Trajectory*> episodes;
    for (const v1::SampledItem& item : batch.items()) {
      episodes.push_back(&item.trajectory());
      for (const v1::Turn& t : item.trajectory().turns()) {
        m.policy_lag.Observe(static_cast<double>(version - t.policy_version()));
      }
    }
    auto turns = BuildTurnBatch(episodes, obs_size, num_actions, baselines);
    if (!turns.ok()) {
      result = turns.status();
      break;
    }
    turns->observations = turns->observations.to(device);
    turns->legal_mask = turns->legal_mask.to(device);
    turns->actions = turns->actions.to(device);
    turns->advantages = turns->advantages.to(device);
    turns->behaviour_log_probs = turns->behaviour_log_probs.to(device);
    double coef = lc.entropy_coef;
    if (lc.entropy_coef_final >= 0 && lc.entropy_decay_steps > 0) {
      double frac = std::min(1.0, static_cast<double>(step) / lc.entropy_decay_steps);
      coef = lc.entropy_coef + (lc.entropy_coef_final - lc.entropy_coef) * frac;
    }
    if (lc.learning_rate_final >= 0 && lc.learning_rate_decay_steps > 0) {
      double frac = std::min(1.0, static_cast<double>(step) / lc.learning_rate_decay_steps);
      double lr = lc.learning_rate + (lc.learning_rate_final - lc.learning_rate) * frac;
      for (auto& group : optimiser.param_groups()) {
        static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
      }
    }
    LossTerms loss;
    try {
      loss = ReinforceLoss(net, *turns, coef, lc.importance_weight_cap);
      optimiser.zero_grad();
      loss.loss.backward();
      optimiser.step();
    } catch (const c10::Error& e) {
      result =
          absl::InternalError(absl::StrCat("training step failed: ", e.what_without_backtrace()));
      break;
    }
    ++step;
    progress.steps = step;
    m.steps_total.Increment();
    m.episodes_total.Increment(static_cast<double>(turns->episodes));
    m.loss.Set(loss.loss.item<double>());
    m.entropy.Set(loss.entropy);
    m.importance_weight.Set(loss.mean_importance_weight);
    m.mean_return.Set(turns->mean_return);
    if (options.rank == 0 && step % lc.publish_every_steps == 0) {
      ++version;
      net->to(torch::kCPU);
      weights.Publish(version, step, EncodeWeights(net, version, step));
      net->to(device);
      progress.version = version;
    }
    if (options.rank == 0 && !options.checkpoint_dir.empty() && lc.checkpoint_every_steps > 0 &&
        step % lc.checkpoint_every_steps == 0) {
      net->to(torch::kCPU);
      LearnerState state{job_id,   config.game.name,     step,       version, baselines.values(),
                         obs_size, config.policy.hidden, num_actions};
      auto s = SaveCheckpoint(options.checkpoint_dir, state, net, optimiser, lc.keep_checkpoints);
      net->to(device);
      if (!s.ok()) LogWarning("checkpoint failed", {{"error", s.ToString()}});
    }
    m.step_seconds.Observe(std::chrono::duration<double>(Clock::now() - step_start).count());
    wait_start = Clock::now();
    if (config.stop.max_learner_steps > 0 && step >= config.stop.max_learner_steps) {
      LogInfo("reached stop.max_learner_steps", {{"steps", step}});
      break;
    }
  }
  done = true;
  watcher.join();
  // The policy the job ended with is the one users export and evaluate: checkpoint it too.
  if (result.ok() && options.rank == 0 && !options.checkpoint_dir.empty() && step > 0 &&
      (lc.checkpoint_every_steps == 0 || step % lc.checkpoint_every_steps != 0)) {
    net->to(torch::kCPU);
    LearnerState state{job_id,   config.game.name,     step,       version, baselines.values(),
                       obs_size, config.policy.hidden, num_actions};
    auto s = SaveCheckpoint(options.checkpoint_dir, state, net, optimiser, lc.keep_checkpoints);
    if (!s.ok()) LogWarning("final checkpoint failed", {{"error", s.ToString()}});
  }
  for (auto& shard : shards) {
    shard->ctx.TryCancel();
    grpc::Status end = shard->stream->Finish();
    if (result.ok() && !end.ok() && end.error_code() != grpc::StatusCode::CANCELLED &&
        control.IsActive(job_id) && !ShutdownRequested()) {
      result =
          absl::UnavailableError(absl::StrCat("replay sample stream ended: ", end.error_message()));
    }
  }
  LogInfo("training ended", {{"job_id", job_id}, {"steps", step}, {"version", version}});
  return result;
}

}  // namespace rally
