#include "services/learner/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <type_traits>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/checkpoint/checkpoint_dir.h"
#include "common/models/safetensors.h"
#include "common/util/durable_file.h"
#include "common/util/log.h"
#include "nlohmann/json.hpp"

namespace rally {
namespace {

namespace fs = std::filesystem;

// The optimiser keys its per-parameter state by the parameter's TensorImpl: as a string in
// LibTorch 1.x, as a pointer in 2.x.
template <typename Optimizer>
auto StateKey(Optimizer& optimizer, const torch::Tensor& p) {
  using Key = typename std::remove_reference_t<decltype(optimizer.state())>::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream os;
    os << p.unsafeGetTensorImpl();
    return os.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
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

// The checkpoint directories in `dir` (step-N; not step-N.tmp, still being written), by step.
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

// The bytes of a file a checkpoint's manifest lists (or the manifest itself): one that is
// missing or cannot be read is damage, DATA_LOSS naming it.
absl::StatusOr<std::string> ReadCheckpointFile(const fs::path& path) {
  absl::StatusOr<std::string> bytes = ReadFileBytes(path);
  if (!bytes.ok()) return absl::DataLossError(bytes.status().message());
  return bytes;
}

// The manifest fields of every saved policy: its format, job, game, model shape, learner step
// and policy version, and the weights file.
nlohmann::json PolicyManifest(const std::string& format, const LearnerState& state) {
  return {{"format", format},
          {"job_id", state.job_id},
          {"game", state.game},
          {"game_params", state.game_params},
          {"observation_size", state.observation_size},
          {"hidden", state.hidden},
          {"num_actions", state.num_actions},
          {"learner_step", state.step},
          {"policy_version", state.version},
          {"weights", "weights.safetensors"}};
}

// Writes `files` (name, bytes) and manifest.json, `manifest` with the files' checksums added,
// into `dir`/`name`.tmp and renames that to `dir`/`name`, replacing what was there: a reader
// never sees a half-written directory, and one that reads a changed file can tell.
absl::Status WriteDirectory(const std::string& dir, const std::string& name,
                            nlohmann::json manifest,
                            std::vector<std::pair<std::string, std::string>> files) {
  nlohmann::json& checksums = manifest["checksums"] = nlohmann::json::object();
  for (const auto& [file, bytes] : files) checksums[file] = FileChecksum(bytes);
  files.emplace_back(kCheckpointManifestFile, manifest.dump(2) + "\n");
  std::error_code ec;
  const fs::path tmp = fs::path(dir) / (name + ".tmp");
  const fs::path final_path = fs::path(dir) / name;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create ", tmp.string(), ": ", ec.message()));
  }
  // Every file and the directory itself reach the disk before the directory gets its name, and
  // the name before the caller points at it: a crash of the machine leaves no named directory
  // with empty files.
  absl::Status written = absl::OkStatus();
  for (const auto& [file, bytes] : files) {
    if (written = WriteFileSynced(tmp / file, bytes); !written.ok()) break;
  }
  if (written.ok()) written = SyncDirectory(tmp);
  if (!written.ok()) {
    fs::remove_all(tmp, ec);
    return written;
  }
  fs::remove_all(final_path, ec);
  fs::rename(tmp, final_path, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot rename ", tmp.string(), ": ", ec.message()));
  }
  return SyncDirectory(dir);
}

}  // namespace

torch::optim::AdamParamState& AdamState(torch::optim::Adam& optimizer, const torch::Tensor& p) {
  auto& slot = optimizer.state()[StateKey(optimizer, p)];
  if (!slot) {
    auto s = std::make_unique<torch::optim::AdamParamState>();
    s->step(0);
    s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
    slot = std::move(s);
  }
  return static_cast<torch::optim::AdamParamState&>(*slot);
}

absl::Status SaveCheckpoint(const std::string& dir, const LearnerState& state, PolicyNet& net,
                            torch::optim::Adam& optimizer, int keep) {
  std::error_code ec;
  const std::string name = absl::StrCat("step-", state.step);

  TensorSet weights;
  weights.tensors = ExportParameters(net);
  weights.metadata = {{"policy_version", absl::StrCat(state.version)},
                      {"learner_step", absl::StrCat(state.step)}};
  TensorSet adam;
  nlohmann::json adam_steps = nlohmann::json::object();
  for (const auto& item : net->named_parameters()) {
    auto it = optimizer.state().find(StateKey(optimizer, item.value()));
    if (it == optimizer.state().end()) continue;
    auto& s = static_cast<torch::optim::AdamParamState&>(*it->second);
    adam.tensors.push_back(ToNamed(item.key() + ".exp_avg", s.exp_avg()));
    adam.tensors.push_back(ToNamed(item.key() + ".exp_avg_sq", s.exp_avg_sq()));
    adam_steps[item.key()] = s.step();
  }
  nlohmann::json baselines = nlohmann::json::array();
  for (const auto& [key, value] : state.baselines) {
    baselines.push_back({{"game", key.first}, {"role", key.second}, {"value", value}});
  }
  torch::Tensor rng = at::detail::getDefaultCPUGenerator().get_state();
  std::string rng_bytes(static_cast<const char*>(rng.data_ptr()), rng.numel());
  nlohmann::json manifest = PolicyManifest("rally-learner-checkpoint/1", state);
  manifest["optimizer"] = "optimizer.safetensors";
  manifest["adam_steps"] = adam_steps;
  manifest["baselines"] = baselines;
  manifest["cpu_rng_state_hex"] = absl::BytesToHexString(rng_bytes);
  if (auto s = WriteDirectory(dir, name, std::move(manifest),
                              {{"weights.safetensors", EncodeSafetensors(weights)},
                               {"optimizer.safetensors", EncodeSafetensors(adam)}});
      !s.ok()) {
    return s;
  }
  if (auto s = ReplaceFileDurably(fs::path(dir) / kLatestCheckpointFile, name + "\n"); !s.ok()) {
    return s;
  }
  // Retention: the newest `keep` checkpoints up to this one stay. Ones numbered above it (a
  // damaged one a resumed run fell back from) are left alone: this one must not be the one to go.
  std::vector<std::pair<int64_t, std::string>> all = StepCheckpoints(dir);
  std::erase_if(all, [&](const auto& c) { return c.first > state.step; });
  for (size_t i = 0; keep > 0 && i + static_cast<size_t>(keep) < all.size(); ++i) {
    fs::remove_all(fs::path(dir) / all[i].second, ec);
  }
  return absl::OkStatus();
}

absl::Status SavePolicy(const std::string& dir, const std::string& name, const LearnerState& state,
                        const std::string& weights) {
  return WriteDirectory(dir, name, PolicyManifest("rally-policy/1", state),
                        {{"weights.safetensors", weights}});
}

void RemoveOtherJobsPolicy(const std::string& dir, const std::string& name,
                           const std::string& job_id) {
  const fs::path policy = fs::path(dir) / name;
  if (!fs::exists(policy)) return;
  absl::StatusOr<nlohmann::json> manifest = ReadCheckpointManifestJson(policy);
  if (manifest.ok() && manifest->value("job_id", "") == job_id) return;
  std::error_code ec;
  fs::remove_all(policy, ec);
}

absl::StatusOr<int64_t> ReservedVersions(const std::string& dir, const std::string& job_id) {
  const fs::path path = fs::path(dir) / "versions.json";
  if (dir.empty() || !fs::exists(path)) return -1;
  absl::StatusOr<std::string> bytes = ReadCheckpointFile(path);
  if (!bytes.ok()) return bytes.status();
  nlohmann::json j = nlohmann::json::parse(*bytes, nullptr, false);
  const auto through = j.is_object() ? j.find("reserved_through") : j.end();
  if (!j.is_object() || !j.contains("job_id") || through == j.end() ||
      !through->is_number_integer()) {
    return absl::DataLossError(
        absl::StrCat(path.string(), " is not {\"job_id\": ..., \"reserved_through\": N}"));
  }
  return j.value("job_id", "") == job_id ? through->get<int64_t>() : -1;
}

int64_t FirstVersionAfterRestart(int64_t checkpoint_version,
                                 const absl::StatusOr<int64_t>& reserved) {
  if (!reserved.ok()) return checkpoint_version + kVersionsSkippedWhenReservationsAreLost;
  return std::max(checkpoint_version, *reserved + 1);
}

absl::Status ReserveVersions(const std::string& dir, const std::string& job_id, int64_t through) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  const nlohmann::json j = {{"job_id", job_id}, {"reserved_through", through}};
  return ReplaceFileDurably(fs::path(dir) / "versions.json", j.dump() + "\n");
}

namespace {

// Loads the checkpoint in directory `cp` into `net` and `optimizer`. NOT_FOUND when it is
// another job's; DATA_LOSS, naming the file, when one is missing or damaged (found before
// anything is loaded); the import's error when the model does not have the checkpoint's shape.
absl::StatusOr<LearnerState> LoadCheckpoint(const fs::path& cp, const std::string& job_id,
                                            PolicyNet& net, torch::optim::Adam& optimizer) {
  const fs::path manifest_path = cp / kCheckpointManifestFile;
  absl::StatusOr<std::string> manifest_bytes = ReadCheckpointFile(manifest_path);
  if (!manifest_bytes.ok()) return manifest_bytes.status();
  auto parsed = ParseCheckpointManifest(*manifest_bytes, job_id, manifest_path.string());
  if (!parsed.ok()) return parsed.status();
  const nlohmann::json& manifest = parsed->document;
  auto decode = [&](const char* file) -> absl::StatusOr<TensorSet> {
    absl::StatusOr<std::string> bytes = ReadCheckpointFile(cp / file);
    if (!bytes.ok()) return bytes.status();
    if (auto s = VerifyFileChecksum(manifest, file, *bytes, (cp / file).string()); !s.ok()) {
      return s;
    }
    auto set = DecodeSafetensors(*bytes);
    if (!set.ok()) {
      return absl::DataLossError(absl::StrCat((cp / file).string(), ": ", set.status().message()));
    }
    return set;
  };
  auto weights = decode("weights.safetensors");
  if (!weights.ok()) return weights.status();
  auto adam = decode("optimizer.safetensors");
  if (!adam.ok()) return adam.status();
  LearnerState state = std::move(parsed->state);
  const std::map<std::string, int64_t>& adam_steps = parsed->adam_steps;
  const std::string& rng_bytes = parsed->rng_bytes;
  // The RNG state is checked before anything is loaded, as the files were.
  auto gen = at::detail::getDefaultCPUGenerator();
  if (!rng_bytes.empty() && static_cast<int64_t>(rng_bytes.size()) != gen.get_state().numel()) {
    return absl::DataLossError(absl::StrCat(manifest_path.string(), ": cpu_rng_state_hex has ",
                                            rng_bytes.size(), " bytes, not ",
                                            gen.get_state().numel()));
  }
  if (auto s = ImportParameters(net, weights->tensors); !s.ok()) return s;
  // The moments must be float32 and shaped as their parameters (checked only now: a model of
  // another shape is the import's error above, not damage). A damaged set loads no moment.
  std::map<std::string, const NamedTensor*> by_name;
  for (const NamedTensor& t : adam->tensors) by_name[t.name] = &t;
  for (const auto& item : net->named_parameters()) {
    for (const char* suffix : {".exp_avg", ".exp_avg_sq"}) {
      auto t = by_name.find(item.key() + suffix);
      if (t == by_name.end()) continue;
      if (t->second->dtype != "F32" || t->second->shape != item.value().sizes().vec()) {
        return absl::DataLossError(absl::StrCat((cp / "optimizer.safetensors").string(), ": '",
                                                t->first,
                                                "' is not float32 of its parameter's shape"));
      }
    }
  }
  for (const auto& item : net->named_parameters()) {
    auto avg = by_name.find(item.key() + ".exp_avg");
    auto sq = by_name.find(item.key() + ".exp_avg_sq");
    if (avg == by_name.end() || sq == by_name.end()) continue;
    auto s = std::make_unique<torch::optim::AdamParamState>();
    auto steps = adam_steps.find(item.key());
    s->step(steps == adam_steps.end() ? 0 : steps->second);
    s->exp_avg(FromNamed(*avg->second, item.value()));
    s->exp_avg_sq(FromNamed(*sq->second, item.value()));
    optimizer.state()[StateKey(optimizer, item.value())] = std::move(s);
  }
  if (!rng_bytes.empty()) {
    torch::Tensor rng = torch::empty({static_cast<int64_t>(rng_bytes.size())}, torch::kUInt8);
    std::memcpy(rng.data_ptr(), rng_bytes.data(), rng_bytes.size());
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng);
  }
  return state;
}

}  // namespace

absl::StatusOr<LearnerState> LoadLatestCheckpoint(const std::string& dir, const std::string& job_id,
                                                  PolicyNet& net, torch::optim::Adam& optimizer) {
  const fs::path latest = fs::path(dir) / kLatestCheckpointFile;
  if (dir.empty() || !fs::exists(latest)) return absl::NotFoundError("no checkpoint");
  // An empty or unreadable `latest` names nothing: every step-N directory is a candidate.
  const std::string name = ReadLatestCheckpointName(dir).value_or("");
  // The one `latest` names, then the others, newest first: a damaged checkpoint (a disk error,
  // a copy cut short) costs the steps since the one before it, not the whole run.
  std::vector<std::string> candidates;
  if (!name.empty()) candidates.push_back(name);
  const auto steps = StepCheckpoints(dir);
  for (auto it = steps.rbegin(); it != steps.rend(); ++it) {
    if (it->second != name) candidates.push_back(it->second);
  }
  absl::Status damaged = absl::DataLossError(absl::StrCat(latest.string(), " names no checkpoint"));
  for (size_t i = 0; i < candidates.size(); ++i) {
    const bool named = i == 0 && !name.empty();  // the one `latest` names
    auto state = LoadCheckpoint(fs::path(dir) / candidates[i], job_id, net, optimizer);
    if (state.ok()) {
      if (!named) {
        LogWarning("the latest checkpoint is damaged; resumed from an older one",
                   {{"damaged", name}, {"error", damaged.ToString()}, {"resumed", candidates[i]}});
      }
      return state;
    }
    // The latest being another job's: this directory is that job's now (a new job replaces
    // `latest` with its first checkpoint), and this one starts afresh.
    if (named && absl::IsNotFound(state.status())) return state.status();
    // A model that does not fit is not damage: an older checkpoint would not fit either.
    if (!absl::IsDataLoss(state.status()) && !absl::IsNotFound(state.status())) {
      return state.status();
    }
    if (named) damaged = state.status();
  }
  return damaged;
}

}  // namespace rally
