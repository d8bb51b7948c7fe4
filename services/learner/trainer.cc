#include "services/learner/trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/games/registry.h"
#include "common/models/policy_net.h"
#include "common/net/server.h"
#include "common/rl/losses.h"
#include "common/util/log.h"
#include "common/util/shutdown.h"
#include "nlohmann/json.hpp"
#include "services/learner/batch_source.h"
#include "services/learner/checkpoint.h"
#include "services/learner/distributed.h"

namespace rally {
namespace {

using Clock = std::chrono::steady_clock;
// Batches requested ahead of training.
// Ranks compare weight digests every this many steps (and at the end of a job).
constexpr int64_t kDigestCheckEverySteps = 100;
constexpr char kBatchesSkipped[] = "rally_learner_batches_skipped_total";
constexpr char kBatchesSkippedHelp[] =
    "Batches not applied because their loss or a gradient was not finite.";
constexpr char kWeightsRefused[] = "rally_learner_weights_refused_total";
constexpr char kWeightsRefusedHelp[] =
    "Weight sets neither published nor checkpointed because a parameter was not finite.";

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

void MoveToDevice(TurnBatch& b, const torch::Device& device) {
  for (torch::Tensor* t : {&b.observations, &b.legal_mask, &b.actions, &b.advantages,
                           &b.behaviour_log_probs, &b.rewards, &b.dones}) {
    if (t->defined()) *t = t->to(device);
  }
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
      value_loss(AddGauge(r, "rally_learner_value_loss",
                          "V-trace value loss 0.5 mean (v_s - V(x_s))^2 of the latest step.")),
      kl(AddGauge(r, "rally_learner_kl_to_reference",
                  "Mean KL(pi || reference policy) of the latest step.")),
      magnet_kl(
          AddGauge(r, "rally_learner_kl_to_magnet", "Mean KL(pi || magnet) of the latest step.")),
      mean_return(AddGauge(r, "rally_learner_mean_return",
                           "Mean return of the learning seats in the latest batch.")),
      policy_lag(AddHistogram(r, "rally_learner_policy_lag_versions",
                              "Policy versions between acting and training, per turn.",
                              {0, 1, 2, 4, 8, 16, 32, 64})),
      step_seconds(AddHistogram(r, "rally_learner_step_seconds", "Wall time of one optimiser step.",
                                {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1})),
      batch_wait_seconds(AddHistogram(r, "rally_learner_batch_wait_seconds",
                                      "Time spent waiting for the next batch.",
                                      {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5})),
      skipped_non_finite_loss(
          AddCounter(r, kBatchesSkipped, kBatchesSkippedHelp, {{"reason", "non_finite_loss"}})),
      skipped_non_finite_gradient(
          AddCounter(r, kBatchesSkipped, kBatchesSkippedHelp, {{"reason", "non_finite_gradient"}})),
      refused_publish(
          AddCounter(r, kWeightsRefused, kWeightsRefusedHelp, {{"destination", "publish"}})),
      refused_checkpoint(
          AddCounter(r, kWeightsRefused, kWeightsRefusedHelp, {{"destination", "checkpoint"}})) {}

bool AllFinite(const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> finite;
  for (const torch::Tensor& t : tensors) {
    if (t.defined()) finite.push_back(torch::isfinite(t).all());
  }
  return finite.empty() || torch::stack(finite).all().item<bool>();
}

GuardedOptimiser::GuardedOptimiser(std::vector<torch::Tensor> parameters,
                                   torch::optim::Optimizer& optimiser, DataParallel* dp,
                                   TrainerMetrics& metrics)
    : parameters_(std::move(parameters)), optimiser_(optimiser), dp_(dp), metrics_(metrics) {}

absl::StatusOr<GuardedOptimiser::Outcome> GuardedOptimiser::Update(const torch::Tensor& loss) {
  optimiser_.zero_grad();
  StepFlags flags{.stop = !loss.defined()};
  if (!flags.stop) {
    flags.skip = !AllFinite({loss});
    if (!flags.skip) loss.backward();
  }
  if (dp_ != nullptr) {
    absl::StatusOr<StepFlags> any = dp_->AverageGradients(parameters_, flags);
    if (!any.ok()) return any.status();
    flags = *any;
  }
  if (flags.stop) return Outcome::kStopped;
  if (flags.skip) return Skip(/*non_finite_loss=*/true);
  std::vector<torch::Tensor> gradients;
  for (const torch::Tensor& p : parameters_) gradients.push_back(p.grad());
  if (!AllFinite(gradients)) return Skip(/*non_finite_loss=*/false);
  optimiser_.step();
  return Outcome::kApplied;
}

GuardedOptimiser::Outcome GuardedOptimiser::Skip(bool non_finite_loss) {
  optimiser_.zero_grad();
  (non_finite_loss ? metrics_.skipped_non_finite_loss : metrics_.skipped_non_finite_gradient)
      .Increment();
  ++skipped_;
  // Logged at the 1st, 2nd, 4th, 8th, ... skip: a stream of bad batches cannot flood the log,
  // and the count says how many there were.
  if ((skipped_ & (skipped_ - 1)) == 0) {
    LogWarning("skipped a batch whose loss or gradient is not finite",
               {{"reason", non_finite_loss ? "non_finite_loss" : "non_finite_gradient"},
                {"skipped_total", skipped_}});
  }
  return Outcome::kSkipped;
}

bool GuardedOptimiser::WeightsFinite(Destination destination) {
  if (AllFinite(parameters_)) return true;
  const bool publish = destination == Destination::kPublish;
  (publish ? metrics_.refused_publish : metrics_.refused_checkpoint).Increment();
  ++refused_;
  if ((refused_ & (refused_ - 1)) == 0) {
    LogError("weights hold a value that is not finite; they are not handed out",
             {{"destination", publish ? "publish" : "checkpoint"}, {"refused_total", refused_}});
  }
  return false;
}

namespace {

// Makes every rank start from rank 0's training state: parameters, Adam moments and step
// counts, and the learner step and policy version (rank 0 may have resumed from a checkpoint).
absl::Status BroadcastTrainingState(DataParallel& dp, PolicyNet& net, torch::optim::Adam& optimiser,
                                    int64_t& step, int64_t& version) {
  std::vector<torch::Tensor> tensors;
  std::vector<torch::optim::AdamParamState*> states;
  for (const torch::Tensor& p : net->parameters()) {
    tensors.push_back(p.detach());
    auto& s = AdamState(optimiser, p);
    tensors.push_back(s.exp_avg());
    tensors.push_back(s.exp_avg_sq());
    states.push_back(&s);
  }
  std::vector<int64_t> counters{step, version};
  for (auto* s : states) counters.push_back(s->step());
  torch::Tensor counter_tensor = torch::tensor(counters, torch::kInt64).to(tensors[0].device());
  tensors.push_back(counter_tensor);
  if (auto s = dp.Broadcast(tensors); !s.ok()) return s;
  torch::Tensor got = counter_tensor.cpu();
  step = got[0].item<int64_t>();
  version = got[1].item<int64_t>();
  for (size_t i = 0; i < states.size(); ++i) states[i]->step(got[2 + i].item<int64_t>());
  return absl::OkStatus();
}

// Every rank compares its weights with the others'; a difference is a bug, not noise.
absl::StatusOr<uint64_t> CheckIdenticalWeights(DataParallel& dp, PolicyNet& net, int64_t step) {
  auto digests = dp.GatherDigests(net->parameters());
  if (!digests.ok()) return digests.status();
  for (size_t r = 1; r < digests->size(); ++r) {
    if ((*digests)[r] != (*digests)[0]) {
      return absl::InternalError(absl::StrCat("weights differ across ranks at step ", step,
                                              ": rank 0 digest ", (*digests)[0], ", rank ", r,
                                              " digest ", (*digests)[r]));
    }
  }
  return (*digests)[0];
}

}  // namespace

absl::Status RunTrainer(const v1::Assignment& assignment, const JobConfig& config,
                        const TrainerOptions& options, ControlClient& control,
                        WeightServiceImpl& weights, TrainerMetrics& m, TrainerProgress& progress) {
  const std::string& job_id = assignment.job_id();
  auto game = LoadGame(config.game.name, config.game.params);
  if (!game.ok()) return game.status();
  const int obs_size = (*game)->ObservationSize();
  const int num_actions = (*game)->NumDistinctActions();
  const LearnerConfig& lc = config.learner;
  const bool rank0 = options.rank == 0;
  // This job's snapshot pool (opponents for the curriculum), set before its first Publish.
  weights.SetSnapshotPool({lc.snapshot_every_versions, lc.snapshot_pool_size});

  torch::manual_seed(static_cast<uint64_t>(config.seed));
  torch::Device device = ChooseDevice(lc.device);
  PolicyNet net(obs_size, config.policy.hidden, num_actions);
  torch::optim::Adam optimiser(net->parameters(), torch::optim::AdamOptions(lc.learning_rate));
  std::map<RoleBaselines::Key, double> initial_baselines;
  int64_t step = 0;
  int64_t version = 0;
  // A restarted learner continues its job from the newest checkpoint: same step and version
  // numbering, optimiser moments, baselines and RNG state.
  auto resumed = LoadLatestCheckpoint(options.checkpoint_dir, job_id, net, optimiser);
  if (resumed.ok()) {
    step = resumed->step;
    version = resumed->version;
    initial_baselines = resumed->baselines;
    LogInfo("resumed from checkpoint", {{"job_id", job_id}, {"step", step}, {"version", version}});
  } else if (!absl::IsNotFound(resumed.status())) {
    return resumed.status();
  }
  // Rank 0 with a checkpoint directory keeps what outlives this run there: version
  // reservations, checkpoints, and the policy that met the target.
  const bool saves = rank0 && !options.checkpoint_dir.empty();
  // Versions are reserved ahead of publishing: after a restart, numbering continues above all
  // that the previous run may have published.
  int64_t reserved = -1;
  if (saves) {
    const absl::StatusOr<int64_t> read = ReservedVersions(options.checkpoint_dir, job_id);
    const int64_t first = FirstVersionAfterRestart(version, read);
    if (!read.ok()) {
      LogError(
          "reserved policy versions unknown; numbering skips ahead of the checkpoint so that no "
          "version published before the restart is published again",
          {{"error", read.status().ToString()},
           {"checkpoint_version", version},
           {"version", first}});
    } else if (first > version) {
      LogInfo("policy versions continue above those reserved before the restart",
              {{"job_id", job_id},
               {"checkpoint_version", version},
               {"reserved_through", *read},
               {"version", first}});
    }
    if (read.ok()) reserved = *read;
    version = first;
  }
  net->to(device);

  // Data parallelism: rank 0's state goes to every rank, then gradients are averaged each step.
  std::unique_ptr<DataParallel> dp;
  int world_size = 1;
  if (options.rendezvous != nullptr && options.rendezvous->options().world_size > 1) {
    auto created = DataParallel::Create(*options.rendezvous, job_id, device.is_cuda());
    if (!created.ok()) return created.status();
    dp = std::move(*created);
    world_size = dp->world_size();
    if (auto s = BroadcastTrainingState(*dp, net, optimiser, step, version); !s.ok()) return s;
    auto digest = CheckIdenticalWeights(*dp, net, step);
    if (!digest.ok()) return digest.status();
    LogInfo("data parallel", {{"job_id", job_id},
                              {"rank", dp->rank()},
                              {"world_size", world_size},
                              {"backend", dp->backend()},
                              {"step", step}});
  }
  GuardedOptimiser guard(net->parameters(), optimiser, dp.get(), m);
  progress.steps = step;
  progress.version = version;
  // The newest published weight sets (up to kRecentWeightsBytes; references to the weight
  // service's blobs, not copies): when the job ends because an evaluation round met its target,
  // the learner has trained on for a second or two, and the version that round measured is
  // saved from here as checkpoint_dir/target. A weight set over the bound is not kept at all.
  struct Recent {
    int64_t version;
    int64_t step;
    grpc::Slice blob;
  };
  constexpr size_t kRecentWeightsBytes = size_t{64} << 20;
  std::deque<Recent> recent;
  size_t recent_bytes = 0;
  // A target policy left by another job would pass for this one's.
  if (saves) RemoveOtherJobsPolicy(options.checkpoint_dir, kTargetPolicy, job_id);
  // Publishes the current weights (on CPU: they leave the process; training is on `device`).
  int64_t retry_reservation_at = 0;
  auto publish = [&] {
    if (!guard.WeightsFinite(GuardedOptimiser::Destination::kPublish)) return;
    if (saves && version > reserved && version >= retry_reservation_at) {
      const int64_t through = version + kVersionBlock - 1;
      if (auto s = ReserveVersions(options.checkpoint_dir, job_id, through); s.ok()) {
        reserved = through;
      } else {
        // Tried again a block later, not at every publish.
        retry_reservation_at = version + kVersionBlock;
        LogWarning("cannot reserve policy versions; a restart may publish these numbers again",
                   {{"error", s.ToString()}});
      }
    }
    net->to(torch::kCPU);
    grpc::Slice blob = weights.Publish(version, step, EncodeWeights(net, version, step));
    net->to(device);
    if (saves && blob.size() <= kRecentWeightsBytes) {
      recent_bytes += blob.size();
      recent.push_back({version, step, std::move(blob)});
      while (recent_bytes > kRecentWeightsBytes) {
        recent_bytes -= recent.front().blob.size();
        recent.pop_front();
      }
    }
  };
  if (rank0) publish();
  // Steps count only once the job is RUNNING: every part (replay, actors, the evaluator when the
  // job evaluates) is at work, so none misses a job that ends within a second.
  while (control.IsActive(job_id) && control.assignment().job_state() == v1::JOB_STATE_STARTING &&
         !WaitForShutdown(std::chrono::milliseconds(20))) {
  }
  // learner.batch_episodes is the batch of the whole job: each rank samples its share.
  const int rank_batch = (lc.batch_episodes + world_size - 1) / world_size;
  LogInfo("training", {{"job_id", job_id},
                       {"device", device.str()},
                       {"batch_episodes", rank_batch},
                       {"world_size", world_size},
                       {"learning_rate", lc.learning_rate}});

  if (assignment.endpoints().replay().empty()) {
    return absl::FailedPreconditionError("no replay endpoint in the assignment");
  }
  std::atomic<int64_t> acting_version{version};
  BatchSourceOptions source_options;
  source_options.replay_addresses.assign(assignment.endpoints().replay().begin(),
                                         assignment.endpoints().replay().end());
  source_options.table = lc.table;
  source_options.batch_episodes = rank_batch;
  source_options.observation_size = obs_size;
  source_options.num_actions = num_actions;
  source_options.objective = lc.objective == "win" ? Objective::kWin : Objective::kReturn;
  RoleBaselines baselines(lc.baseline_decay);
  baselines.set_values(initial_baselines);
  BatchSource source(std::move(source_options), std::move(baselines), acting_version,
                     &m.policy_lag);
  // Ends the stream reads when the job ends or the process shuts down.
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done && control.IsActive(job_id) && !WaitForShutdown(std::chrono::milliseconds(100))) {
    }
    source.Cancel();
  });
  auto save_target = [&] {
    // The job may still be running: the learner can stop at its own step limit before control
    // has heard of the last step. Ask until it has ended (within the stop grace of workers).
    v1::Job job;
    for (int attempt = 0; attempt < 30; ++attempt) {
      auto got = control.GetJob(job_id);
      if (!got.ok()) {
        LogWarning("cannot ask control whether the target was met",
                   {{"error", got.status().ToString()}});
        return;
      }
      job = *std::move(got);
      if (IsTerminal(job.state())) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!job.progress().target_met()) return;
    const int64_t target = job.progress().target_policy_version();
    auto it = std::find_if(recent.begin(), recent.end(),
                           [&](const Recent& r) { return r.version == target; });
    if (it == recent.end()) {
      LogWarning(
          "the version that met the target is no longer held",
          {{"version", target}, {"oldest_held", recent.empty() ? -1 : recent.front().version}});
      return;
    }
    LearnerState state{job_id,     config.game.name,   config.game.params, it->step,
                       target,     source.baselines(), obs_size,           config.policy.hidden,
                       num_actions};
    const std::string blob(reinterpret_cast<const char*>(it->blob.begin()), it->blob.size());
    if (auto s = SavePolicy(options.checkpoint_dir, kTargetPolicy, state, blob); !s.ok()) {
      LogWarning("cannot save the policy that met the target", {{"error", s.ToString()}});
      return;
    }
    LogInfo("saved the policy that met the target",
            {{"version", target}, {"dir", options.checkpoint_dir + "/" + kTargetPolicy}});
  };
  auto save_checkpoint = [&] {
    if (!guard.WeightsFinite(GuardedOptimiser::Destination::kCheckpoint)) return;
    net->to(torch::kCPU);
    LearnerState state{job_id,     config.game.name,   config.game.params, step,
                       version,    source.baselines(), obs_size,           config.policy.hidden,
                       num_actions};
    auto s = SaveCheckpoint(options.checkpoint_dir, state, net, optimiser, lc.keep_checkpoints);
    net->to(device);
    if (!s.ok()) LogWarning("checkpoint failed", {{"error", s.ToString()}});
  };

  auto algorithm = ParseAlgorithm(lc.algorithm);
  if (!algorithm.ok()) return algorithm.status();
  LossOptions loss_options;
  loss_options.algorithm = *algorithm;
  loss_options.rho_bar = lc.importance_weight_cap;
  loss_options.c_bar = lc.vtrace_c_bar;
  loss_options.vtrace_lambda = lc.vtrace_lambda;
  loss_options.discount = lc.discount;
  loss_options.value_coef = lc.value_coef;
  loss_options.clip_epsilon = lc.clip_epsilon;
  loss_options.kl_coef = lc.kl_coef;
  // The KL penalty's reference policy (the policy at the job's start, or refreshed every
  // kl_reference_update_steps) and the EMA magnet: copies of the net that take no gradient.
  // Neither is checkpointed: a resumed job starts both from the resumed policy.
  PolicyNet reference{nullptr}, magnet{nullptr};
  auto frozen_copy = [&] {
    PolicyNet copy(obs_size, config.policy.hidden, num_actions);
    copy->to(device);
    UpdateEma(copy, net, 0.0);
    for (auto& p : copy->parameters()) p.set_requires_grad(false);
    return copy;
  };
  if (lc.kl_coef > 0) reference = frozen_copy();
  if (lc.magnet == "ema" && (lc.magnet_coef > 0 || lc.magnet_coef_final > 0)) {
    magnet = frozen_copy();
  }

  absl::Status result = absl::OkStatus();
  const std::vector<torch::Tensor> parameters = net->parameters();
  auto wait_start = Clock::now();
  while (true) {
    auto next = source.Next();
    auto step_start = Clock::now();
    m.batch_wait_seconds.Observe(std::chrono::duration<double>(step_start - wait_start).count());
    // A rank that has no batch (the job ended, or a batch was bad) still joins the step's
    // gradient all-reduce with its stop flag set, so that every rank stops after this step.
    bool stop = !next.ok() || !next->has_value();
    if (!next.ok()) result = next.status();
    loss_options.entropy_coef = lc.entropy_coef_schedule().At(step);
    loss_options.magnet_coef = lc.magnet_coef_schedule().At(step);
    const double lr = lc.learning_rate_schedule().At(step);
    for (auto& group : optimiser.param_groups()) {
      static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
    }
    LossTerms loss;  // of the latest update applied
    bool applied = false;
    int64_t episodes = 0;
    double mean_return = 0;
    try {
      if (!stop) {
        MoveToDevice(**next, device);
        episodes = (*next)->episodes;
        mean_return = (*next)->mean_return;
      }
      // One learner step trains one batch with learner.epochs_per_batch optimiser updates. A
      // batch whose loss or gradient is not finite is dropped at that update (on every rank).
      for (int epoch = 0; epoch < lc.epochs_per_batch; ++epoch) {
        LossTerms terms;  // its loss stays undefined when this rank stops
        if (!stop) {
          const TurnBatch& turns = **next;
          torch::Tensor reference_log_probs, magnet_log_probs;
          if (reference) reference_log_probs = PolicyLogProbs(reference, turns);
          if (magnet) magnet_log_probs = PolicyLogProbs(magnet, turns);
          terms = ComputeLoss(net, turns, loss_options, reference_log_probs, magnet_log_probs);
        }
        absl::StatusOr<GuardedOptimiser::Outcome> outcome = guard.Update(terms.loss);
        if (!outcome.ok()) {
          result = outcome.status();
          break;
        }
        if (*outcome == GuardedOptimiser::Outcome::kStopped) stop = true;
        if (*outcome != GuardedOptimiser::Outcome::kApplied) break;
        loss = std::move(terms);
        applied = true;
        if (magnet) UpdateEma(magnet, net, lc.magnet_ema_decay);
      }
    } catch (const c10::Error& e) {
      result =
          absl::InternalError(absl::StrCat("training step failed: ", e.what_without_backtrace()));
      break;
    }
    if (stop || !result.ok()) break;
    if (!applied) {
      wait_start = Clock::now();
      continue;
    }
    ++step;
    if (reference && lc.kl_reference_update_steps > 0 && step % lc.kl_reference_update_steps == 0) {
      UpdateEma(reference, net, 0.0);
    }
    progress.steps = step;
    m.steps_total.Increment();
    m.episodes_total.Increment(static_cast<double>(episodes));
    m.loss.Set(loss.loss.item<double>());
    m.value_loss.Set(loss.value_loss);
    m.kl.Set(loss.kl);
    m.magnet_kl.Set(loss.magnet_kl);
    m.entropy.Set(loss.entropy);
    m.importance_weight.Set(loss.mean_importance_weight);
    m.mean_return.Set(mean_return);
    if (step % lc.publish_every_steps == 0) {
      ++version;
      acting_version = version;
      progress.version = version;
      if (rank0) publish();
    }
    if (dp && step % kDigestCheckEverySteps == 0) {
      if (auto digest = CheckIdenticalWeights(*dp, net, step); !digest.ok()) {
        result = digest.status();
        break;
      }
    }
    if (saves && lc.checkpoint_every_steps > 0 && step % lc.checkpoint_every_steps == 0) {
      save_checkpoint();
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
  source.Cancel();
  grpc::Status end = source.Finish();
  if (result.ok() && !end.ok() && control.IsActive(job_id) && !ShutdownRequested()) {
    result =
        absl::UnavailableError(absl::StrCat("replay sample stream ended: ", end.error_message()));
  }
  std::string digest_hex = absl::StrCat(absl::Hex(TensorsDigest(parameters), absl::kZeroPad16));
  if (dp && result.ok()) {
    auto digest = CheckIdenticalWeights(*dp, net, step);
    if (!digest.ok()) result = digest.status();
  }
  // The policy the job ended with is the one users export and evaluate: checkpoint it too.
  if (result.ok() && saves && step > 0 &&
      (lc.checkpoint_every_steps == 0 || step % lc.checkpoint_every_steps != 0)) {
    save_checkpoint();
  }
  if (result.ok() && saves) save_target();
  LogInfo("training ended", {{"job_id", job_id},
                             {"steps", step},
                             {"version", version},
                             {"rank", options.rank},
                             {"weights_digest", digest_hex}});
  return result;
}

}  // namespace rally
