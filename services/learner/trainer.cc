#include "services/learner/trainer.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/games/registry.h"
#include "common/net/server.h"
#include "common/util/log.h"
#include "common/util/shutdown.h"
#include "services/learner/checkpoint.h"
#include "services/learner/distributed.h"
#include "services/learner/token_policy_learner.h"
#include "services/learner/turn_policy_learner.h"

namespace rally {
namespace {

// Ranks compare weight digests every this many steps (and at the end of a job).
constexpr int64_t kDigestCheckEverySteps = 100;
// The newest published weight sets the learner holds for the target policy (Trainer::recent_).
constexpr size_t kRecentWeightsBytes = size_t{64} << 20;
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

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(
    const v1::Assignment& assignment, const JobConfig& config, const TrainerOptions& options,
    ControlClient& control, WeightServiceImpl& weights, TrainerMetrics& metrics,
    TrainerProgress& progress) {
  auto game = LoadGame(config.game.name, config.game.params);
  if (!game.ok()) return game.status();
  const LearnerConfig& lc = config.learner;
  // This job's snapshot pool (opponents for the curriculum), set before its first Publish.
  weights.SetSnapshotPool({lc.snapshot_every_versions, lc.snapshot_pool_size});
  absl::StatusOr<Algorithm> algorithm = ParseAlgorithm(lc.algorithm);
  if (!algorithm.ok()) return algorithm.status();

  torch::manual_seed(static_cast<uint64_t>(config.seed));
  std::unique_ptr<PolicyLearner> learner;
  if (config.policy.is_transformer()) {
    auto token_learner = TokenPolicyLearner::Create(config, ChooseDevice(config.learner.device));
    if (!token_learner.ok()) return token_learner.status();
    learner = *std::move(token_learner);
  } else {
    learner = std::make_unique<TurnPolicyLearner>(config, (*game)->ObservationSize(),
                                                  (*game)->NumDistinctActions());
  }
  std::unique_ptr<Trainer> trainer(new Trainer(assignment, config, options, control, weights,
                                               metrics, progress, std::move(learner), *algorithm));
  if (absl::Status s = trainer->Restore(); !s.ok()) return s;
  if (absl::Status s = trainer->JoinDataParallel(); !s.ok()) return s;
  trainer->guard_ = std::make_unique<GuardedOptimiser>(
      trainer->learner_->Parameters(), trainer->optimiser_, trainer->dp_.get(), metrics);
  progress.steps = trainer->step_;
  progress.version = trainer->version_;
  return trainer;
}

Trainer::Trainer(const v1::Assignment& assignment, const JobConfig& config,
                 const TrainerOptions& options, ControlClient& control, WeightServiceImpl& weights,
                 TrainerMetrics& metrics, TrainerProgress& progress,
                 std::unique_ptr<PolicyLearner> learner, Algorithm algorithm)
    : assignment_(assignment),
      config_(config),
      learner_config_(config.learner),
      options_(options),
      control_(control),
      weights_(weights),
      metrics_(metrics),
      progress_(progress),
      job_id_(assignment.job_id()),
      rank0_(options.rank == 0),
      saves_(rank0_ && !options.checkpoint_dir.empty()),
      device_(ChooseDevice(config.learner.device)),
      learner_(std::move(learner)),
      optimiser_(learner_->Parameters(), torch::optim::AdamOptions(config.learner.learning_rate)) {
  const LearnerConfig& lc = learner_config_;
  loss_options_.algorithm = algorithm;
  loss_options_.rho_bar = lc.importance_weight_cap;
  loss_options_.c_bar = lc.vtrace_c_bar;
  loss_options_.vtrace_lambda = lc.vtrace_lambda;
  loss_options_.discount = lc.discount;
  loss_options_.value_coef = lc.value_coef;
  loss_options_.clip_epsilon = lc.clip_epsilon;
  loss_options_.kl_coef = lc.kl_coef;
}

Trainer::~Trainer() {
  done_ = true;
  if (watcher_.joinable()) watcher_.join();
}

// A restarted learner continues its job from the newest checkpoint: same step and version
// numbering, optimiser moments, baselines and RNG state.
absl::Status Trainer::Restore() {
  absl::StatusOr<LearnerState> resumed =
      learner_->Restore(options_.checkpoint_dir, job_id_, optimiser_);
  if (resumed.ok()) {
    step_ = resumed->step;
    version_ = resumed->version;
    LogInfo("resumed from checkpoint",
            {{"job_id", job_id_}, {"step", step_}, {"version", version_}});
  } else if (!absl::IsNotFound(resumed.status())) {
    return resumed.status();
  }
  if (saves_) ContinueVersionNumbering();
  learner_->ToDevice(device_);
  return absl::OkStatus();
}

// Versions are reserved ahead of publishing: after a restart, numbering continues above all
// that the previous run may have published.
void Trainer::ContinueVersionNumbering() {
  const absl::StatusOr<int64_t> read = ReservedVersions(options_.checkpoint_dir, job_id_);
  const int64_t first = FirstVersionAfterRestart(version_, read);
  if (!read.ok()) {
    LogError(
        "reserved policy versions unknown; numbering skips ahead of the checkpoint so that no "
        "version published before the restart is published again",
        {{"error", read.status().ToString()},
         {"checkpoint_version", version_},
         {"version", first}});
  } else if (first > version_) {
    LogInfo("policy versions continue above those reserved before the restart",
            {{"job_id", job_id_},
             {"checkpoint_version", version_},
             {"reserved_through", *read},
             {"version", first}});
  }
  if (read.ok()) reserved_ = *read;
  version_ = first;
}

// Data parallelism: rank 0's state goes to every rank, then gradients are averaged each step.
absl::Status Trainer::JoinDataParallel() {
  Rendezvous* rendezvous = options_.rendezvous;
  if (rendezvous == nullptr || rendezvous->options().world_size <= 1) return absl::OkStatus();
  auto created = DataParallel::Create(*rendezvous, job_id_, device_.is_cuda());
  if (!created.ok()) return created.status();
  dp_ = std::move(*created);
  world_size_ = dp_->world_size();
  if (absl::Status s = BroadcastTrainingState(); !s.ok()) return s;
  if (auto digest = CheckIdenticalWeights(); !digest.ok()) return digest.status();
  LogInfo("data parallel", {{"job_id", job_id_},
                            {"rank", dp_->rank()},
                            {"world_size", world_size_},
                            {"backend", dp_->backend()},
                            {"step", step_}});
  return absl::OkStatus();
}

// Makes every rank start from rank 0's training state: parameters, Adam moments and step
// counts, and the learner step and policy version (rank 0 may have resumed from a checkpoint).
absl::Status Trainer::BroadcastTrainingState() {
  std::vector<torch::Tensor> tensors;
  std::vector<torch::optim::AdamParamState*> states;
  for (const torch::Tensor& p : learner_->Parameters()) {
    tensors.push_back(p.detach());
    auto& s = AdamState(optimiser_, p);
    tensors.push_back(s.exp_avg());
    tensors.push_back(s.exp_avg_sq());
    states.push_back(&s);
  }
  std::vector<int64_t> counters{step_, version_};
  for (auto* s : states) counters.push_back(s->step());
  torch::Tensor counter_tensor = torch::tensor(counters, torch::kInt64).to(tensors[0].device());
  tensors.push_back(counter_tensor);
  if (absl::Status s = dp_->Broadcast(tensors); !s.ok()) return s;
  torch::Tensor got = counter_tensor.cpu();
  step_ = got[0].item<int64_t>();
  version_ = got[1].item<int64_t>();
  for (size_t i = 0; i < states.size(); ++i) states[i]->step(got[2 + i].item<int64_t>());
  return absl::OkStatus();
}

absl::Status Trainer::Run() {
  // A target policy left by another job would pass for this one's.
  if (saves_) RemoveOtherJobsPolicy(options_.checkpoint_dir, kTargetPolicy, job_id_);
  if (rank0_) Publish();
  WaitUntilRunning();
  if (absl::Status s = OpenBatches(); !s.ok()) return s;
  return Finish(Train());
}

// Steps count only once the job is RUNNING: every part (replay, actors, the evaluator when the
// job evaluates) is at work, so none misses a job that ends within a second.
void Trainer::WaitUntilRunning() {
  while (control_.IsActive(job_id_) &&
         control_.assignment().job_state() == v1::JOB_STATE_STARTING &&
         !WaitForShutdown(std::chrono::milliseconds(20))) {
  }
}

// Opens the sample streams, and the watcher that ends them when the job ends or the process
// shuts down.
absl::Status Trainer::OpenBatches() {
  // learner.batch_episodes is the batch of the whole job: each rank samples its share.
  const int rank_batch = (learner_config_.batch_episodes + world_size_ - 1) / world_size_;
  LogInfo("training", {{"job_id", job_id_},
                       {"device", device_.str()},
                       {"batch_episodes", rank_batch},
                       {"world_size", world_size_},
                       {"learning_rate", learner_config_.learning_rate}});
  if (assignment_.endpoints().replay().empty()) {
    return absl::FailedPreconditionError("no replay endpoint in the assignment");
  }
  acting_version_ = version_;
  BatchSourceOptions source_options;
  source_options.replay_addresses.assign(assignment_.endpoints().replay().begin(),
                                         assignment_.endpoints().replay().end());
  source_options.table = learner_config_.table;
  source_options.batch_episodes = rank_batch;
  source_options.objective =
      learner_config_.objective == "win" ? Objective::kWin : Objective::kReturn;
  learner_->OpenBatches(std::move(source_options), acting_version_, &metrics_.policy_lag);
  watcher_ = std::thread(&Trainer::WatchForEnd, this);
  return absl::OkStatus();
}

void Trainer::WatchForEnd() {
  while (!done_ && control_.IsActive(job_id_) && !WaitForShutdown(std::chrono::milliseconds(100))) {
  }
  learner_->CancelBatches();
}

absl::Status Trainer::Train() {
  try {
    learner_->Begin();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("training start failed: ", e.what_without_backtrace()));
  }
  wait_start_ = Clock::now();
  while (true) {
    absl::StatusOr<bool> go_on = Step();
    if (!go_on.ok()) return go_on.status();
    if (!*go_on) return absl::OkStatus();
  }
}

absl::StatusOr<bool> Trainer::NextBatch() {
  absl::StatusOr<bool> batch = learner_->NextBatch();
  while (batch.ok() && !*batch && control_.IsActive(job_id_) && !ShutdownRequested()) {
    // The watcher may be cancelling the streams that ended: it stops before they are replaced.
    done_ = true;
    watcher_.join();
    done_ = false;
    const grpc::Status end = learner_->FinishBatches();
    LogWarning("the replay's sample stream ended while the job runs; opening it again in 1 s",
               {{"job_id", job_id_}, {"error", end.error_message()}, {"step", step_}});
    if (WaitForShutdown(std::chrono::seconds(1))) break;
    if (absl::Status s = OpenBatches(); !s.ok()) return s;
    batch = learner_->NextBatch();
  }
  return batch;
}

absl::StatusOr<bool> Trainer::Step() {
  absl::StatusOr<bool> batch = NextBatch();
  const Clock::time_point step_start = Clock::now();
  metrics_.batch_wait_seconds.Observe(
      std::chrono::duration<double>(step_start - wait_start_).count());
  // A rank that has no batch (the job ended, or a batch was bad) still joins the step's
  // gradient all-reduce with its stop flag set, so that every rank stops after this step.
  ApplySchedules();
  absl::StatusOr<TrainedBatch> trained = TrainBatch(batch.ok() && *batch);
  if (!trained.ok()) return trained.status();
  if (!batch.ok()) return batch.status();
  if (trained->stop) return false;
  if (!trained->applied) {
    wait_start_ = Clock::now();
    return true;
  }
  return CompleteStep(*trained, step_start);
}

// The learning rate, entropy and magnet coefficients of this step.
void Trainer::ApplySchedules() {
  loss_options_.entropy_coef = learner_config_.entropy_coef_schedule().At(step_);
  loss_options_.magnet_coef = learner_config_.magnet_coef_schedule().At(step_);
  const double lr = learner_config_.learning_rate_schedule().At(step_);
  for (auto& group : optimiser_.param_groups()) {
    static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
  }
}

// One learner step trains one batch with learner.epochs_per_batch optimiser updates. A batch
// whose loss or gradient is not finite is dropped at that update (on every rank).
absl::StatusOr<Trainer::TrainedBatch> Trainer::TrainBatch(bool have_batch) {
  TrainedBatch trained{.stop = !have_batch};
  try {
    if (have_batch) trained.summary = learner_->PrepareBatch();
    for (int epoch = 0; epoch < learner_config_.epochs_per_batch; ++epoch) {
      LossTerms terms;  // its loss stays undefined when this rank stops
      if (!trained.stop) terms = learner_->Loss(loss_options_);
      absl::StatusOr<GuardedOptimiser::Outcome> outcome = guard_->Update(terms.loss);
      if (!outcome.ok()) return outcome.status();
      if (*outcome == GuardedOptimiser::Outcome::kStopped) trained.stop = true;
      if (*outcome != GuardedOptimiser::Outcome::kApplied) break;
      trained.loss = std::move(terms);
      trained.applied = true;
      learner_->AfterUpdate();
    }
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("training step failed: ", e.what_without_backtrace()));
  }
  return trained;
}

// Counts a step whose batch was applied; whether to go on.
absl::StatusOr<bool> Trainer::CompleteStep(const TrainedBatch& batch,
                                           Clock::time_point step_start) {
  const LearnerConfig& lc = learner_config_;
  ++step_;
  learner_->AfterStep(step_);
  progress_.steps = step_;
  RecordMetrics(batch);
  if (step_ % lc.publish_every_steps == 0) {
    ++version_;
    acting_version_ = version_;
    progress_.version = version_;
    if (rank0_) Publish();
  }
  if (dp_ && step_ % kDigestCheckEverySteps == 0) {
    if (auto digest = CheckIdenticalWeights(); !digest.ok()) return digest.status();
  }
  if (saves_ && lc.checkpoint_every_steps > 0 && step_ % lc.checkpoint_every_steps == 0) {
    WriteCheckpoint();
  }
  metrics_.step_seconds.Observe(std::chrono::duration<double>(Clock::now() - step_start).count());
  wait_start_ = Clock::now();
  if (config_.stop.max_learner_steps > 0 && step_ >= config_.stop.max_learner_steps) {
    LogInfo("reached stop.max_learner_steps", {{"steps", step_}});
    return false;
  }
  return true;
}

void Trainer::RecordMetrics(const TrainedBatch& batch) {
  metrics_.steps_total.Increment();
  metrics_.episodes_total.Increment(static_cast<double>(batch.summary.episodes));
  metrics_.loss.Set(batch.loss.loss.item<double>());
  metrics_.value_loss.Set(batch.loss.value_loss);
  metrics_.kl.Set(batch.loss.kl);
  metrics_.magnet_kl.Set(batch.loss.magnet_kl);
  metrics_.entropy.Set(batch.loss.entropy);
  metrics_.importance_weight.Set(batch.loss.mean_importance_weight);
  metrics_.mean_return.Set(batch.summary.mean_return);
}

// Ends the streams and the watcher, checks the ranks still agree, and keeps the final policy
// (and the one that met the target); `result` is how training ended.
absl::Status Trainer::Finish(absl::Status result) {
  done_ = true;
  watcher_.join();
  learner_->CancelBatches();
  grpc::Status end = learner_->FinishBatches();
  if (result.ok() && !end.ok() && control_.IsActive(job_id_) && !ShutdownRequested()) {
    result =
        absl::UnavailableError(absl::StrCat("replay sample stream ended: ", end.error_message()));
  }
  const std::string digest_hex =
      absl::StrCat(absl::Hex(TensorsDigest(learner_->Parameters()), absl::kZeroPad16));
  if (dp_ && result.ok()) {
    if (auto digest = CheckIdenticalWeights(); !digest.ok()) result = digest.status();
  }
  // The policy the job ended with is the one users export and evaluate: checkpoint it too.
  const int64_t every = learner_config_.checkpoint_every_steps;
  if (result.ok() && saves_ && step_ > 0 && (every == 0 || step_ % every != 0)) WriteCheckpoint();
  if (result.ok() && saves_) SaveTargetPolicy();
  LogInfo("training ended", {{"job_id", job_id_},
                             {"steps", step_},
                             {"version", version_},
                             {"rank", options_.rank},
                             {"weights_digest", digest_hex}});
  return result;
}

// Publishes the current weights (on CPU: they leave the process; training is on `device_`).
void Trainer::Publish() {
  if (!guard_->WeightsFinite(GuardedOptimiser::Destination::kPublish)) return;
  if (saves_) ReserveVersionsAhead();
  grpc::Slice blob = weights_.Publish(version_, step_, learner_->EncodeWeights(version_, step_));
  if (saves_) KeepPublished(std::move(blob));
}

void Trainer::ReserveVersionsAhead() {
  if (version_ <= reserved_ || version_ < retry_reservation_at_) return;
  const int64_t through = version_ + kVersionBlock - 1;
  if (absl::Status s = ReserveVersions(options_.checkpoint_dir, job_id_, through); s.ok()) {
    reserved_ = through;
  } else {
    // Tried again a block later, not at every publish.
    retry_reservation_at_ = version_ + kVersionBlock;
    LogWarning("cannot reserve policy versions; a restart may publish these numbers again",
               {{"error", s.ToString()}});
  }
}

void Trainer::KeepPublished(grpc::Slice blob) {
  if (blob.size() > kRecentWeightsBytes) return;
  recent_bytes_ += blob.size();
  recent_.push_back({version_, step_, std::move(blob)});
  while (recent_bytes_ > kRecentWeightsBytes) {
    recent_bytes_ -= recent_.front().blob.size();
    recent_.pop_front();
  }
}

void Trainer::WriteCheckpoint() {
  if (!guard_->WeightsFinite(GuardedOptimiser::Destination::kCheckpoint)) return;
  absl::Status s = learner_->SaveCheckpoint(options_.checkpoint_dir, JobState(step_, version_),
                                            optimiser_, learner_config_.keep_checkpoints);
  if (!s.ok()) LogWarning("checkpoint failed", {{"error", s.ToString()}});
}

// Saves the published version that met the job's target, if one did, as checkpoint_dir/target.
void Trainer::SaveTargetPolicy() {
  // The job may still be running: the learner can stop at its own step limit before control
  // has heard of the last step. Ask until it has ended (within the stop grace of workers).
  v1::Job job;
  for (int attempt = 0; attempt < 30; ++attempt) {
    auto got = control_.GetJob(job_id_);
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
  auto it = std::find_if(recent_.begin(), recent_.end(),
                         [&](const Published& p) { return p.version == target; });
  if (it == recent_.end()) {
    LogWarning(
        "the version that met the target is no longer held",
        {{"version", target}, {"oldest_held", recent_.empty() ? -1 : recent_.front().version}});
    return;
  }
  LearnerState state = JobState(it->step, target);
  learner_->DescribeModel(state);
  const std::string blob(reinterpret_cast<const char*>(it->blob.begin()), it->blob.size());
  if (auto s = SavePolicy(options_.checkpoint_dir, kTargetPolicy, state, blob); !s.ok()) {
    LogWarning("cannot save the policy that met the target", {{"error", s.ToString()}});
    return;
  }
  LogInfo("saved the policy that met the target",
          {{"version", target}, {"dir", options_.checkpoint_dir + "/" + kTargetPolicy}});
}

absl::StatusOr<uint64_t> Trainer::CheckIdenticalWeights() {
  auto digests = dp_->GatherDigests(learner_->Parameters());
  if (!digests.ok()) return digests.status();
  for (size_t r = 1; r < digests->size(); ++r) {
    if ((*digests)[r] != (*digests)[0]) {
      return absl::InternalError(absl::StrCat("weights differ across ranks at step ", step_,
                                              ": rank 0 digest ", (*digests)[0], ", rank ", r,
                                              " digest ", (*digests)[r]));
    }
  }
  return (*digests)[0];
}

LearnerState Trainer::JobState(int64_t step, int64_t version) const {
  LearnerState state;
  state.job_id = job_id_;
  state.game = config_.game.name;
  state.game_params = config_.game.params;
  state.step = step;
  state.version = version;
  return state;
}

}  // namespace rally
