#include "services/learner/token_policy_learner.h"

#include <prometheus/histogram.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/checkpoint/checkpoint_dir.h"
#include "common/games/registry.h"
#include "common/games/text_game.h"
#include "common/lm/game_tokenizer.h"
#include "common/lm/hf_checkpoint.h"
#include "common/lm/lm_checkpoint.h"
#include "common/lm/tokenizer.h"
#include "common/models/safetensors.h"
#include "common/net/server.h"
#include "common/util/durable_file.h"
#include "common/util/zstd.h"
#include "rally/v1/replay.grpc.pb.h"
#include "services/learner/checkpoint.h"

namespace rally {
namespace {

namespace fs = std::filesystem;

constexpr char kValueHeadFile[] = "value_head.safetensors";
constexpr char kValueHeadWeight[] = "value_head.weight";
constexpr char kValueHeadBias[] = "value_head.bias";

// Whether the job's loss has the uniform magnet over legal answers.
bool HasLegalMagnet(const LearnerConfig& lc) {
  return lc.magnet == "uniform" && (lc.magnet_coef > 0 || lc.magnet_coef_final > 0);
}

// OK when every canonical answer of `game` in `style` is one token of `tokenizer`, as the magnet
// over legal answers needs; INVALID_ARGUMENT naming the first answer that is not.
absl::Status CheckSingleTokenAnswers(const Game& game, PromptStyle style,
                                     const Tokenizer& tokenizer) {
  absl::StatusOr<std::vector<std::string>> answers = GameAnswerTexts(game, style);
  if (!answers.ok()) return answers.status();
  for (const std::string& answer : *answers) {
    const size_t tokens = tokenizer.Encode(answer).size();
    if (tokens != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "learner.magnet uniform needs every answer to be one token (policy.tokenizer game), "
          "but the answer ",
          absl::CEscape(answer), " is ", tokens, " tokens"));
    }
  }
  return absl::OkStatus();
}

NamedTensor ToNamed(const std::string& name, const torch::Tensor& t) {
  torch::Tensor c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  NamedTensor nt;
  nt.name = name;
  nt.shape.assign(c.sizes().begin(), c.sizes().end());
  nt.data.assign(static_cast<const char*>(c.data_ptr()), c.numel() * sizeof(float));
  return nt;
}

torch::Tensor FromNamed(const NamedTensor& nt, const torch::Tensor& like) {
  torch::Tensor t = torch::empty(nt.shape, torch::kFloat32);
  std::memcpy(t.data_ptr(), nt.data.data(), nt.data.size());
  return t.to(like.device());
}

// The checkpoint directories in `dir` (step-N), by step.
std::vector<std::pair<int64_t, std::string>> StepCheckpoints(const std::string& dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string n = e.path().filename().string();
    int64_t step = 0;
    if (n.rfind("step-", 0) == 0 && absl::SimpleAtoi(n.substr(5), &step)) {
      out.emplace_back(step, std::move(n));
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

// The replay's sample streams, read on the training thread: one stream per shard, responses
// taken from the shards in turn, each answered with a credit for one more.
class TokenPolicyLearner::Streams {
 public:
  Streams(const BatchSourceOptions& options, const std::atomic<int64_t>& version,
          prometheus::Histogram* policy_lag)
      : version_(version), policy_lag_(policy_lag) {
    for (const std::string& address : options.replay_addresses) {
      auto shard = std::make_unique<Shard>();
      shard->stub = v1::ReplayService::NewStub(MakeChannel(address));
      shard->stream = shard->stub->Sample(&shard->ctx);
      v1::SampleRequest req;
      req.set_table(options.table);
      req.set_batch_size(std::max(1, options.batch_episodes));
      req.set_credits(options.credits_per_shard);
      req.set_policy_version(version_);
      req.set_accept_zstd(true);
      shard->stream->Write(req);
      shards_.push_back(std::move(shard));
    }
  }
  ~Streams() {
    Cancel();
    Finish();
  }

  // The next episode; nullopt once the streams have ended or were cancelled.
  absl::StatusOr<std::optional<v1::Trajectory>> Next() {
    while (pending_.empty()) {
      if (cancelled_ || shards_.empty()) return std::nullopt;
      if (absl::Status s = Read(); !s.ok()) return s;
      if (ended_) return std::nullopt;
    }
    v1::Trajectory episode = std::move(pending_.front());
    pending_.pop_front();
    return episode;
  }
  // Puts `episode` back to be the next one Next() returns.
  void PutBack(v1::Trajectory episode) { pending_.push_front(std::move(episode)); }

  void Cancel() {
    cancelled_ = true;
    for (auto& shard : shards_) shard->ctx.TryCancel();
  }

  grpc::Status Finish() {
    if (finished_) return finish_status_;
    for (auto& shard : shards_) {
      shard->ctx.TryCancel();
      grpc::Status s = shard->stream->Finish();
      if (finish_status_.ok() && !s.ok() && s.error_code() != grpc::StatusCode::CANCELLED) {
        finish_status_ = s;
      }
    }
    finished_ = true;
    return finish_status_;
  }

 private:
  struct Shard {
    std::unique_ptr<v1::ReplayService::Stub> stub;
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReaderWriter<v1::SampleRequest, v1::SampleResponse>> stream;
  };

  // Reads one response into pending_; sets ended_ when a stream closed.
  absl::Status Read() {
    Shard& shard = *shards_[next_];
    next_ = (next_ + 1) % shards_.size();
    v1::SampleResponse response;
    if (!shard.stream->Read(&response)) {
      ended_ = true;
      return absl::OkStatus();
    }
    v1::SampleRequest more;
    more.set_credits(1);
    more.set_policy_version(version_);
    shard.stream->Write(more);
    const int64_t version = version_;
    for (v1::SampledItem& item : *response.mutable_items()) {
      v1::Trajectory episode;
      if (!item.trajectory_zstd().empty()) {
        auto raw = ZstdDecompress(item.trajectory_zstd(), kMaxMessageBytes);
        if (!raw.ok() || !episode.ParseFromString(*raw)) {
          return absl::DataLossError(
              absl::StrCat("sampled item ", item.key(), ": trajectory_zstd does not decode: ",
                           raw.ok() ? "not a Trajectory" : raw.status().message()));
        }
      } else {
        episode = std::move(*item.mutable_trajectory());
      }
      if (policy_lag_ != nullptr) {
        for (const v1::Turn& t : episode.turns()) {
          policy_lag_->Observe(static_cast<double>(version - t.policy_version()));
        }
      }
      pending_.push_back(std::move(episode));
    }
    return absl::OkStatus();
  }

  const std::atomic<int64_t>& version_;
  prometheus::Histogram* policy_lag_;
  std::vector<std::unique_ptr<Shard>> shards_;
  size_t next_ = 0;
  std::deque<v1::Trajectory> pending_;
  std::atomic<bool> cancelled_{false};
  bool ended_ = false;
  bool finished_ = false;
  grpc::Status finish_status_;
};

absl::StatusOr<std::unique_ptr<TokenPolicyLearner>> TokenPolicyLearner::Create(
    const JobConfig& config, torch::Device device) {
  absl::StatusOr<Algorithm> algorithm = ParseAlgorithm(config.learner.algorithm);
  if (!algorithm.ok()) return algorithm.status();
  if (config.learner.magnet == "ema" &&
      (config.learner.magnet_coef > 0 || config.learner.magnet_coef_final > 0)) {
    return absl::InvalidArgumentError(
        "learner.magnet ema has no token-level form: use uniform (over the legal answers)");
  }
  const PolicyConfig& policy = config.policy;
  std::optional<HfModel> hf;
  if (!policy.from.empty()) {
    absl::StatusOr<HfModel> loaded = LoadHfDirectory(policy.from);
    if (!loaded.ok()) return loaded.status();
    hf = *std::move(loaded);
  }
  const TransformerConfig shape = hf ? hf->config : policy.transformer;
  absl::StatusOr<Transformer> model =
      Transformer::Create(shape, static_cast<uint64_t>(config.seed), device);
  if (!model.ok()) return model.status();
  if (hf) {
    if (absl::Status s = model->LoadWeights(hf->weights); !s.ok()) return s;
  }
  const std::string tokenizer_reference = ResolveTokenizerReference(policy.tokenizer, policy.from);
  absl::StatusOr<PromptStyle> style = ParsePromptStyle(policy.prompt);
  if (!style.ok()) return style.status();
  absl::StatusOr<std::shared_ptr<const Game>> game = LoadGame(config.game.name, config.game.params);
  if (!game.ok()) return game.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> opened =
      OpenTokenizer(tokenizer_reference, **game, *style);
  if (!opened.ok()) return opened.status();
  std::unique_ptr<Tokenizer> tokenizer = *std::move(opened);
  absl::StatusOr<std::string> tokenizer_json =
      TokenizerJsonBytes(tokenizer_reference, **game, *style);
  if (!tokenizer_json.ok()) return tokenizer_json.status();
  if (tokenizer->VocabSize() > shape.vocab) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy.tokenizer ", tokenizer_reference, " has ", tokenizer->VocabSize(),
                     " ids, more than the model's vocabulary of ", shape.vocab));
  }
  if (HasLegalMagnet(config.learner)) {
    if (absl::Status s = CheckSingleTokenAnswers(**game, *style, *tokenizer); !s.ok()) return s;
  }
  TokenBatchOptions batch_options;
  batch_options.objective =
      config.learner.objective == "win" ? Objective::kWin : Objective::kReturn;
  // An answer ended when the actor stopped at the style's end: its end token (when the end is
  // one token) or its end string in the decoded answer, as the actor's generation stops. Without
  // masking, no answer counts as cut.
  const std::string answer_end(AnswerEnd(*style));
  const std::vector<int32_t> end = tokenizer->Encode(answer_end);
  std::shared_ptr<const Tokenizer> shared_tokenizer = std::move(tokenizer);
  if (config.learner.mask_cut_answers) {
    batch_options.answer_ended = [shared_tokenizer, answer_end,
                                  end_token = end.size() == 1 ? end[0] : -1](const v1::Turn& t) {
      if (t.action_tokens_size() == 0) return false;
      if (end_token >= 0 &&
          t.action_tokens(t.action_tokens_size() - 1) == static_cast<uint32_t>(end_token)) {
        return true;
      }
      const std::vector<int32_t> ids(t.action_tokens().begin(), t.action_tokens().end());
      return shared_tokenizer->Decode(ids).find(answer_end) != std::string::npos;
    };
  }
  batch_options.vocab = shape.vocab;
  batch_options.max_seq_len = shape.max_seq_len;
  batch_options.legal_answers = HasLegalMagnet(config.learner);
  auto learner = std::unique_ptr<TokenPolicyLearner>(
      new TokenPolicyLearner(config, std::make_unique<Transformer>(*std::move(model)),
                             *std::move(tokenizer_json), batch_options));
  if (*algorithm == Algorithm::kVtrace) {
    try {
      torch::NoGradGuard no_grad;
      learner->value_head_ = torch::nn::Linear(shape.d_model, 1);
      learner->value_head_->weight.zero_();
      learner->value_head_->bias.zero_();
      learner->value_head_->to(device);
    } catch (const c10::Error& e) {
      return absl::ResourceExhaustedError(absl::StrCat("cannot build the value head: ", e.msg()));
    }
  }
  return learner;
}

TokenPolicyLearner::TokenPolicyLearner(const JobConfig& config, std::unique_ptr<Transformer> model,
                                       std::string tokenizer_json, TokenBatchOptions batch_options)
    : config_(config),
      model_(std::move(model)),
      tokenizer_json_(std::move(tokenizer_json)),
      batch_options_(batch_options),
      baselines_(config.learner.baseline_decay) {}

TokenPolicyLearner::~TokenPolicyLearner() = default;

std::vector<torch::Tensor> TokenPolicyLearner::Parameters() {
  std::vector<torch::Tensor> params = model_->parameters();
  if (value_head_) {
    params.push_back(value_head_->weight);
    params.push_back(value_head_->bias);
  }
  return params;
}

std::vector<std::string> TokenPolicyLearner::ParameterNames() const {
  std::vector<std::string> names;
  for (const ExpectedTensor& e : ExpectedTensors(model_->config())) names.push_back(e.name);
  if (value_head_) {
    names.push_back(kValueHeadWeight);
    names.push_back(kValueHeadBias);
  }
  return names;
}

std::string TokenPolicyLearner::EncodeValueHead() const {
  TensorSet set;
  set.tensors.push_back(ToNamed(kValueHeadWeight, value_head_->weight));
  set.tensors.push_back(ToNamed(kValueHeadBias, value_head_->bias));
  return EncodeSafetensors(set);
}

absl::Status TokenPolicyLearner::RestoreValueHead(const std::string& checkpoint_dir,
                                                  const nlohmann::json& manifest) {
  const fs::path path = fs::path(checkpoint_dir) / kValueHeadFile;
  if (!value_head_ || !fs::exists(path)) return absl::OkStatus();
  absl::StatusOr<std::string> bytes = ReadFileBytes(path.string());
  if (!bytes.ok()) return absl::DataLossError(bytes.status().message());
  if (absl::Status s = VerifyFileChecksum(manifest, kValueHeadFile, *bytes, path.string());
      !s.ok()) {
    return s;
  }
  absl::StatusOr<TensorSet> set = DecodeSafetensors(*bytes);
  if (!set.ok()) {
    return absl::DataLossError(absl::StrCat(path.string(), ": ", set.status().message()));
  }
  std::map<std::string, const NamedTensor*> by_name;
  for (const NamedTensor& t : set->tensors) by_name[t.name] = &t;
  torch::NoGradGuard no_grad;
  for (const auto& [name, param] : {std::pair{kValueHeadWeight, value_head_->weight},
                                    std::pair{kValueHeadBias, value_head_->bias}}) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      return absl::DataLossError(absl::StrCat(path.string(), ": no tensor '", name, "'"));
    }
    if (it->second->dtype != "F32" || it->second->shape != param.sizes().vec()) {
      return absl::DataLossError(absl::StrCat(path.string(), ": '", name,
                                              "' is not float32 of shape [",
                                              absl::StrJoin(param.sizes(), ", "), "]"));
    }
  }
  for (const auto& [name, param] : {std::pair{kValueHeadWeight, value_head_->weight},
                                    std::pair{kValueHeadBias, value_head_->bias}}) {
    param.copy_(FromNamed(*by_name.at(name), param));
  }
  return absl::OkStatus();
}

void TokenPolicyLearner::ToDevice(const torch::Device& device) {
  TORCH_CHECK(device == model_->device(), "the transformer was built on ", model_->device().str(),
              ", not ", device.str());
}

std::string TokenPolicyLearner::EncodeWeights(int64_t version, int64_t step) {
  TensorSet set = model_->ExportWeights();
  set.metadata = {{"policy_version", absl::StrCat(version)}, {"learner_step", absl::StrCat(step)}};
  return EncodeSafetensors(set);
}

void TokenPolicyLearner::DescribeModel(LearnerState& state) {
  state.baselines = baselines_.values();
  state.observation_size = 0;
  state.hidden.clear();
  state.num_actions = 0;
}

absl::Status TokenPolicyLearner::SaveCheckpoint(const std::string& dir, LearnerState state,
                                                torch::optim::Adam& optimiser, int keep) {
  DescribeModel(state);
  const std::string name = absl::StrCat("step-", state.step);
  TensorSet weights = model_->ExportWeights();
  weights.metadata = {{"policy_version", absl::StrCat(state.version)},
                      {"learner_step", absl::StrCat(state.step)}};
  TensorSet adam;
  nlohmann::json adam_steps = nlohmann::json::object();
  const std::vector<std::string> names = ParameterNames();
  const std::vector<torch::Tensor> params = Parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    torch::optim::AdamParamState& s = AdamState(optimiser, params[i]);
    adam.tensors.push_back(ToNamed(names[i] + ".exp_avg", s.exp_avg()));
    adam.tensors.push_back(ToNamed(names[i] + ".exp_avg_sq", s.exp_avg_sq()));
    adam_steps[names[i]] = s.step();
  }
  nlohmann::json baselines = nlohmann::json::array();
  for (const auto& [key, value] : state.baselines) {
    baselines.push_back({{"game", key.first}, {"role", key.second}, {"value", value}});
  }
  torch::Tensor rng = at::detail::getDefaultCPUGenerator().get_state();
  std::string rng_bytes(static_cast<const char*>(rng.data_ptr()), rng.numel());
  nlohmann::json manifest = {{"format", "rally-learner-checkpoint/1"},
                             {"job_id", state.job_id},
                             {"game", state.game},
                             {"game_params", state.game_params},
                             {"observation_size", 0},
                             {"hidden", nlohmann::json::array()},
                             {"num_actions", 0},
                             {"learner_step", state.step},
                             {"policy_version", state.version},
                             {"weights", "weights.safetensors"},
                             {"optimizer", "optimizer.safetensors"},
                             {"adam_steps", adam_steps},
                             {"baselines", baselines},
                             {"cpu_rng_state_hex", absl::BytesToHexString(rng_bytes)}};
  manifest.update(LmManifestFields(model_->config(), tokenizer_json_));
  manifest["prompt"] = config_.policy.prompt;  // the style the policy was trained to read
  // The sampling its actors drew from: export-policy scores moves under it (lm_policy.h).
  manifest["temperature"] = config_.policy.temperature;
  manifest["top_p"] = config_.policy.top_p;
  manifest["top_k"] = config_.policy.top_k;
  std::vector<std::pair<std::string, std::string>> files = {
      {"weights.safetensors", EncodeSafetensors(weights)},
      {"optimizer.safetensors", EncodeSafetensors(adam)}};
  if (value_head_) files.emplace_back(kValueHeadFile, EncodeValueHead());
  if (absl::Status s = WriteLmCheckpointDirectory(dir, name, std::move(manifest), std::move(files),
                                                  tokenizer_json_);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ReplaceFileDurably(fs::path(dir) / kLatestCheckpointFile, name + "\n");
      !s.ok()) {
    return s;
  }
  // Retention as checkpoint.h says: the newest `keep` up to this one.
  std::vector<std::pair<int64_t, std::string>> all = StepCheckpoints(dir);
  std::erase_if(all, [&](const auto& c) { return c.first > state.step; });
  std::error_code ec;
  for (size_t i = 0; keep > 0 && i + static_cast<size_t>(keep) < all.size(); ++i) {
    fs::remove_all(fs::path(dir) / all[i].second, ec);
  }
  return absl::OkStatus();
}

absl::StatusOr<LearnerState> TokenPolicyLearner::Restore(const std::string& dir,
                                                         const std::string& job_id,
                                                         torch::optim::Adam& optimiser) {
  const fs::path latest = fs::path(dir) / kLatestCheckpointFile;
  if (dir.empty() || !fs::exists(latest)) return absl::NotFoundError("no checkpoint");
  absl::StatusOr<std::string> name = ReadLatestCheckpointName(dir);
  if (!name.ok()) return absl::DataLossError(name.status().message());
  const fs::path cp = fs::path(dir) / *name;
  const std::string manifest_path = (cp / kCheckpointManifestFile).string();
  absl::StatusOr<std::string> manifest_bytes = ReadFileBytes(manifest_path);
  if (!manifest_bytes.ok()) return absl::DataLossError(manifest_bytes.status().message());
  absl::StatusOr<CheckpointManifest> parsed =
      ParseCheckpointManifest(*manifest_bytes, job_id, manifest_path);
  if (!parsed.ok()) return parsed.status();
  absl::StatusOr<LmCheckpoint> lm = ReadLmCheckpoint(cp.string());
  if (!lm.ok()) return lm.status();
  if (HfConfigJson(lm->config) != HfConfigJson(model_->config())) {
    return absl::FailedPreconditionError(absl::StrCat(
        manifest_path, ": the checkpoint's transformer ", HfConfigJson(lm->config).dump(),
        " is not the job's ", HfConfigJson(model_->config()).dump()));
  }
  const fs::path optimizer_path = cp / "optimizer.safetensors";
  absl::StatusOr<std::string> read_optimizer = ReadFileBytes(optimizer_path);
  if (!read_optimizer.ok()) return absl::DataLossError(read_optimizer.status().message());
  const std::string& optimizer_bytes = *read_optimizer;
  if (auto s = VerifyFileChecksum(parsed->document, "optimizer.safetensors", optimizer_bytes,
                                  optimizer_path.string());
      !s.ok()) {
    return s;
  }
  absl::StatusOr<TensorSet> adam = DecodeSafetensors(optimizer_bytes);
  if (!adam.ok()) {
    return absl::DataLossError(
        absl::StrCat(optimizer_path.string(), ": ", adam.status().message()));
  }
  std::map<std::string, const NamedTensor*> by_name;
  for (const NamedTensor& t : adam->tensors) by_name[t.name] = &t;
  const std::vector<std::string> names = ParameterNames();
  const std::vector<torch::Tensor> params = Parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    for (const char* suffix : {".exp_avg", ".exp_avg_sq"}) {
      auto t = by_name.find(names[i] + suffix);
      if (t == by_name.end()) continue;
      if (t->second->dtype != "F32" || t->second->shape != params[i].sizes().vec()) {
        return absl::DataLossError(absl::StrCat(optimizer_path.string(), ": '", t->first,
                                                "' is not float32 of its parameter's shape"));
      }
    }
  }
  auto gen = at::detail::getDefaultCPUGenerator();
  const std::string& rng_bytes = parsed->rng_bytes;
  if (!rng_bytes.empty() && static_cast<int64_t>(rng_bytes.size()) != gen.get_state().numel()) {
    return absl::DataLossError(
        absl::StrCat(manifest_path, ": cpu_rng_state_hex has ", rng_bytes.size(), " bytes"));
  }
  if (absl::Status s = model_->LoadWeights(lm->weights); !s.ok()) return s;
  if (absl::Status s = RestoreValueHead(cp.string(), parsed->document); !s.ok()) return s;
  for (size_t i = 0; i < params.size(); ++i) {
    auto avg = by_name.find(names[i] + ".exp_avg");
    auto sq = by_name.find(names[i] + ".exp_avg_sq");
    if (avg == by_name.end() || sq == by_name.end()) continue;
    torch::optim::AdamParamState& s = AdamState(optimiser, params[i]);
    auto steps = parsed->adam_steps.find(names[i]);
    s.step(steps == parsed->adam_steps.end() ? 0 : steps->second);
    s.exp_avg(FromNamed(*avg->second, params[i]));
    s.exp_avg_sq(FromNamed(*sq->second, params[i]));
  }
  if (!rng_bytes.empty()) {
    torch::Tensor rng = torch::empty({static_cast<int64_t>(rng_bytes.size())}, torch::kUInt8);
    std::memcpy(rng.data_ptr(), rng_bytes.data(), rng_bytes.size());
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng);
  }
  baselines_.set_values(parsed->state.baselines);
  return parsed->state;
}

std::unique_ptr<Transformer> TokenPolicyLearner::FrozenCopy() const {
  absl::StatusOr<Transformer> copy = Transformer::Create(model_->config(), 0, model_->device());
  TORCH_CHECK(copy.ok(), std::string(copy.status().message()));
  absl::Status loaded = copy->LoadWeights(model_->ExportWeights());
  TORCH_CHECK(loaded.ok(), std::string(loaded.message()));
  for (torch::Tensor& p : copy->parameters()) p.set_requires_grad(false);
  return std::make_unique<Transformer>(*std::move(copy));
}

void TokenPolicyLearner::Begin() {
  if (config_.learner.kl_coef > 0) reference_ = FrozenCopy();
}

torch::Tensor TokenPolicyLearner::Logits(const Transformer& model) const {
  absl::StatusOr<torch::Tensor> logits = model.Forward(batch_->tokens, batch_->lengths);
  TORCH_CHECK(logits.ok(), std::string(logits.status().message()));
  return *std::move(logits);
}

LossTerms TokenPolicyLearner::Loss(const LossOptions& options) {
  torch::Tensor reference_logits;
  if (reference_) {
    torch::NoGradGuard no_grad;
    reference_logits = Logits(*reference_);
  }
  absl::StatusOr<torch::Tensor> hidden = model_->ForwardHidden(batch_->tokens, batch_->lengths);
  TORCH_CHECK(hidden.ok(), std::string(hidden.status().message()));
  torch::Tensor values;
  if (value_head_) {
    // V(x) at each row's state, its last prompt token.
    const torch::Tensor rows = torch::arange(hidden->size(0), batch_->prompt_lengths.options());
    values = value_head_->forward(hidden->index({rows, batch_->prompt_lengths - 1})).squeeze(-1);
  }
  return TokenLoss(model_->LogitsFromHidden(*hidden), *batch_, options, reference_logits, values);
}

void TokenPolicyLearner::AfterUpdate() {}

void TokenPolicyLearner::AfterStep(int64_t step) {
  const int64_t every = config_.learner.kl_reference_update_steps;
  if (reference_ && every > 0 && step % every == 0) {
    absl::Status loaded = reference_->LoadWeights(model_->ExportWeights());
    TORCH_CHECK(loaded.ok(), std::string(loaded.message()));
  }
}

void TokenPolicyLearner::OpenBatches(BatchSourceOptions options,
                                     const std::atomic<int64_t>& version,
                                     prometheus::Histogram* policy_lag) {
  streams_ = std::make_unique<Streams>(options, version, policy_lag);
}

absl::StatusOr<bool> TokenPolicyLearner::NextBatch() {
  batch_.reset();
  TokenBudget budget(config_.learner.batch_tokens);
  std::vector<v1::Trajectory> episodes;
  while (!budget.full()) {
    absl::StatusOr<std::optional<v1::Trajectory>> next = streams_->Next();
    if (!next.ok()) return next.status();
    if (!next->has_value()) break;
    if (!budget.Take(EpisodeTokens(**next))) {
      streams_->PutBack(**std::move(next));
      break;
    }
    episodes.push_back(**std::move(next));
  }
  if (episodes.empty()) return false;
  std::vector<const v1::Trajectory*> pointers;
  for (const v1::Trajectory& e : episodes) pointers.push_back(&e);
  if (absl::Status s = SetBatch(pointers); !s.ok()) return s;
  return true;
}

absl::Status TokenPolicyLearner::SetBatch(const std::vector<const v1::Trajectory*>& episodes) {
  batch_.reset();
  absl::StatusOr<TokenBatch> batch = BuildTokenBatch(episodes, baselines_, batch_options_);
  if (!batch.ok()) return batch.status();
  batch_ = *std::move(batch);
  return absl::OkStatus();
}

BatchSummary TokenPolicyLearner::PrepareBatch() {
  const torch::Device device = model_->device();
  for (torch::Tensor* t :
       {&batch_->tokens, &batch_->lengths, &batch_->prompt_lengths, &batch_->action_mask,
        &batch_->advantages, &batch_->returns, &batch_->behaviour_log_probs,
        &batch_->sequence_order, &batch_->sequence_dones, &batch_->legal_answers}) {
    if (t->defined()) *t = t->to(device);
  }
  return {.episodes = batch_->episodes, .mean_return = batch_->mean_return};
}

void TokenPolicyLearner::CancelBatches() {
  if (streams_ != nullptr) streams_->Cancel();
}

grpc::Status TokenPolicyLearner::FinishBatches() {
  return streams_ != nullptr ? streams_->Finish() : grpc::Status::OK;
}

}  // namespace rally
