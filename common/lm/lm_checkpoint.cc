#include "common/lm/lm_checkpoint.h"

#include <filesystem>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/lm/hf_checkpoint.h"
#include "common/util/durable_file.h"

namespace rally {

namespace fs = std::filesystem;

std::string ResolveTokenizerReference(const std::string& tokenizer, const std::string& from) {
  if (!tokenizer.empty()) return tokenizer;
  if (!from.empty()) {
    const fs::path candidate = fs::path(from) / "tokenizer.json";
    if (fs::exists(candidate)) return candidate.string();
  }
  return kByteTokenizerName;
}

nlohmann::json LmManifestFields(const TransformerConfig& config,
                                const std::string& tokenizer_json) {
  return {{"policy_kind", kTransformerPolicyKind},
          {"transformer", HfConfigJson(config)},
          {"tokenizer", tokenizer_json.empty() ? kByteTokenizerName : "tokenizer.json"}};
}

absl::Status WriteLmCheckpointDirectory(const std::string& dir, const std::string& name,
                                        nlohmann::json manifest,
                                        std::vector<std::pair<std::string, std::string>> files,
                                        const std::string& tokenizer_json) {
  if (!tokenizer_json.empty()) files.emplace_back("tokenizer.json", tokenizer_json);
  nlohmann::json& checksums = manifest["checksums"] = nlohmann::json::object();
  for (const auto& [file, bytes] : files) checksums[file] = FileChecksum(bytes);
  files.emplace_back("manifest.json", manifest.dump(2) + "\n");
  std::error_code ec;
  const fs::path tmp = fs::path(dir) / (name + ".tmp");
  const fs::path final_path = fs::path(dir) / name;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) {
    return absl::InternalError(absl::StrCat("cannot create ", tmp.string(), ": ", ec.message()));
  }
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

absl::StatusOr<LmCheckpoint> ReadLmCheckpoint(const std::string& dir) {
  LmCheckpoint cp;
  cp.dir = dir;
  const fs::path root(dir);
  const std::string manifest_path = (root / "manifest.json").string();
  absl::StatusOr<std::string> manifest_bytes = ReadFileBytes(manifest_path);
  if (!manifest_bytes.ok()) return manifest_bytes.status();
  cp.manifest = nlohmann::json::parse(*manifest_bytes, nullptr, false);
  if (!cp.manifest.is_object()) {
    return absl::DataLossError(absl::StrCat(manifest_path, ": not a JSON object"));
  }
  const nlohmann::json& m = cp.manifest;
  if (m.value("policy_kind", "") != kTransformerPolicyKind) {
    return absl::FailedPreconditionError(absl::StrCat(
        manifest_path, ": not a transformer policy's checkpoint (no \"policy_kind\": \"",
        kTransformerPolicyKind, "\")"));
  }
  const auto transformer = m.find("transformer");
  if (transformer == m.end() || !transformer->is_object()) {
    return absl::DataLossError(absl::StrCat(manifest_path, ": missing \"transformer\" object"));
  }
  absl::StatusOr<TransformerConfig> config =
      ParseHfConfig(*transformer, manifest_path + " \"transformer\"");
  if (!config.ok()) return absl::DataLossError(config.status().message());
  cp.config = *config;
  const auto tokenizer = m.find("tokenizer");
  if (tokenizer == m.end() || !tokenizer->is_string()) {
    return absl::DataLossError(absl::StrCat(manifest_path, ": missing \"tokenizer\" string"));
  }
  if (tokenizer->get<std::string>() != kByteTokenizerName) {
    const fs::path path = root / tokenizer->get<std::string>();
    absl::StatusOr<std::string> bytes = ReadFileBytes(path);
    if (!bytes.ok()) {
      return absl::NotFoundError(
          absl::StrCat(path.string(), " (the manifest's tokenizer) is missing"));
    }
    const std::string file = tokenizer->get<std::string>();
    if (auto s = VerifyFileChecksum(m, file, *bytes, path.string()); !s.ok()) return s;
    cp.tokenizer_path = path.string();
  }
  const std::string weights_file = m.value("weights", "weights.safetensors");
  const fs::path weights_path = root / weights_file;
  absl::StatusOr<std::string> weights_bytes = ReadFileBytes(weights_path);
  if (!weights_bytes.ok()) return weights_bytes.status();
  if (auto s = VerifyFileChecksum(m, weights_file, *weights_bytes, weights_path.string());
      !s.ok()) {
    return s;
  }
  absl::StatusOr<TensorSet> weights = DecodeSafetensors(*weights_bytes);
  if (!weights.ok()) {
    return absl::DataLossError(
        absl::StrCat(weights_path.string(), ": ", weights.status().message()));
  }
  // Exactly the tensors of the recorded shape, F32.
  std::map<std::string, const NamedTensor*> by_name;
  for (const NamedTensor& t : weights->tensors) by_name[t.name] = &t;
  for (const ExpectedTensor& e : ExpectedTensors(cp.config)) {
    auto it = by_name.find(e.name);
    if (it == by_name.end()) {
      return absl::DataLossError(
          absl::StrCat(weights_path.string(), ": missing tensor '", e.name, "'"));
    }
    if (it->second->dtype != "F32" || it->second->shape != e.shape) {
      return absl::DataLossError(absl::StrCat(weights_path.string(), ": tensor '", e.name,
                                              "' is not F32 of the recorded shape"));
    }
    by_name.erase(it);
  }
  if (!by_name.empty()) {
    return absl::DataLossError(
        absl::StrCat(weights_path.string(), ": unexpected tensor '", by_name.begin()->first, "'"));
  }
  cp.weights = *std::move(weights);
  for (auto [key, out] : {std::pair{"policy_version", &cp.policy_version},
                          std::pair{"learner_step", &cp.learner_step}}) {
    const auto f = m.find(key);
    if (f != m.end() && f->is_number_integer()) *out = f->get<int64_t>();
  }
  return cp;
}

absl::Status ExportLmCheckpointToHf(const std::string& checkpoint_dir, const std::string& out_dir,
                                    const std::string& dtype) {
  if (dtype != "fp32" && dtype != "bf16" && dtype != "fp16") {
    return absl::InvalidArgumentError(
        absl::StrCat("--dtype ", dtype, ": expected fp32, bf16 or fp16"));
  }
  absl::StatusOr<LmCheckpoint> cp = ReadLmCheckpoint(checkpoint_dir);
  if (!cp.ok()) return cp.status();
  return WriteHfDirectory(out_dir, cp->config, cp->weights, dtype, cp->tokenizer_path);
}

}  // namespace rally
