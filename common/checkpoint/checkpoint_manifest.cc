#include "common/checkpoint/checkpoint_manifest.h"

#include <limits>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace rally {
namespace {

// `j` as a T: an integer in T's range, else an error naming `what`. (nlohmann's own conversion
// casts a float or a number out of range without a check: for a float that is undefined.)
template <typename T>
absl::StatusOr<T> ToInteger(const nlohmann::json& j, const std::string& what) {
  if (j.is_number_unsigned()) {
    const uint64_t v = j.get<uint64_t>();
    if (v <= static_cast<uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(v);
  } else if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v >= std::numeric_limits<T>::min() && v <= std::numeric_limits<T>::max()) {
      return static_cast<T>(v);
    }
  }
  return absl::DataLossError(absl::StrCat(what, " is not an integer from ",
                                          std::numeric_limits<T>::min(), " to ",
                                          std::numeric_limits<T>::max(), ": ", j.dump()));
}

// The integer at `key` of `manifest`, `fallback` when there is none.
template <typename T>
absl::StatusOr<T> IntegerField(const nlohmann::json& manifest, const char* key, T fallback) {
  const auto it = manifest.find(key);
  return it == manifest.end() ? fallback : ToInteger<T>(*it, key);
}

// The fields of `manifest` (an object) that loading reads, into `m`.
absl::Status ReadFields(const nlohmann::json& manifest, CheckpointManifest& m) {
  LearnerState& state = m.state;
  auto step = IntegerField<int64_t>(manifest, "learner_step", 0);
  if (!step.ok()) return step.status();
  auto version = IntegerField<int64_t>(manifest, "policy_version", 0);
  if (!version.ok()) return version.status();
  auto observation_size = IntegerField<int>(manifest, "observation_size", 0);
  if (!observation_size.ok()) return observation_size.status();
  auto num_actions = IntegerField<int>(manifest, "num_actions", 0);
  if (!num_actions.ok()) return num_actions.status();
  state.step = *step;
  state.version = *version;
  state.observation_size = *observation_size;
  state.num_actions = *num_actions;
  state.game = manifest.value("game", "");
  state.game_params = manifest.value("game_params", GameParameters{});
  if (const auto hidden = manifest.find("hidden"); hidden != manifest.end()) {
    for (const nlohmann::json& width : hidden->get_ref<const nlohmann::json::array_t&>()) {
      auto w = ToInteger<int>(width, "a hidden layer's width");
      if (!w.ok()) return w.status();
      state.hidden.push_back(*w);
    }
  }
  for (const auto& b : manifest.value("baselines", nlohmann::json::array())) {
    state.baselines[{b.at("game").get<std::string>(), b.at("role").get<std::string>()}] =
        b.at("value").get<double>();
  }
  if (const auto steps = manifest.find("adam_steps"); steps != manifest.end()) {
    for (const auto& [name, count] : steps->get_ref<const nlohmann::json::object_t&>()) {
      auto n = ToInteger<int64_t>(count, absl::StrCat("adam_steps of '", name, "'"));
      if (!n.ok()) return n.status();
      m.adam_steps[name] = *n;
    }
  }
  m.rng_bytes = absl::HexStringToBytes(manifest.value("cpu_rng_state_hex", ""));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CheckpointManifest> ParseCheckpointManifest(std::string_view bytes,
                                                           const std::string& job_id,
                                                           const std::string& path) {
  CheckpointManifest m;
  m.document = nlohmann::json::parse(bytes, nullptr, false);
  const nlohmann::json& manifest = m.document;
  if (manifest.is_discarded() || !manifest.is_object()) {
    return absl::DataLossError(absl::StrCat(path, " does not parse"));
  }
  const auto owner = manifest.find("job_id");
  if (owner == manifest.end() || !owner->is_string()) {
    return absl::DataLossError(absl::StrCat(path, " has no job_id string"));
  }
  if (owner->get<std::string>() != job_id) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint ", path, " belongs to job '", owner->get<std::string>(), "'"));
  }
  m.state.job_id = job_id;
  absl::Status read;
  try {
    read = ReadFields(manifest, m);
  } catch (const nlohmann::json::exception& e) {
    read = absl::DataLossError(e.what());
  }
  if (!read.ok()) return absl::DataLossError(absl::StrCat(path, " is damaged: ", read.message()));
  return m;
}

}  // namespace rally
