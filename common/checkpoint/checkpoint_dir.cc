#include "common/checkpoint/checkpoint_dir.h"

#include "absl/strings/str_cat.h"
#include "common/util/durable_file.h"

namespace rally {

namespace fs = std::filesystem;

absl::StatusOr<std::string> ReadLatestCheckpointName(const fs::path& dir) {
  absl::StatusOr<std::string> name = ReadFileBytes(dir / kLatestCheckpointFile);
  if (!name.ok()) return name.status();
  while (!name->empty() && (name->back() == '\n' || name->back() == ' ')) name->pop_back();
  if (name->empty()) {
    return absl::DataLossError(
        absl::StrCat((dir / kLatestCheckpointFile).string(), ": empty (names no checkpoint)"));
  }
  return name;
}

absl::StatusOr<std::string> ResolveCheckpoint(const std::string& path) {
  const fs::path p(path);
  std::error_code ec;
  if (fs::exists(p / kCheckpointManifestFile, ec)) return p.string();
  for (const fs::path& dir : {p / kCheckpointsSubdirectory, p}) {
    absl::StatusOr<std::string> name = ReadLatestCheckpointName(dir);
    if (!name.ok()) continue;
    const fs::path cp = dir / *name;
    if (fs::exists(cp / kCheckpointManifestFile, ec)) return cp.string();
  }
  return absl::NotFoundError(
      absl::StrCat(path,
                   ": no checkpoint here (expected a run's work directory, a checkpoints directory "
                   "with a 'latest' file, or a step-N directory with manifest.json)"));
}

absl::StatusOr<nlohmann::json> ReadCheckpointManifestJson(const fs::path& dir) {
  const fs::path path = dir / kCheckpointManifestFile;
  absl::StatusOr<std::string> bytes = ReadFileBytes(path);
  if (!bytes.ok()) return bytes.status();
  nlohmann::json manifest = nlohmann::json::parse(*bytes, nullptr, /*allow_exceptions=*/false);
  if (!manifest.is_object()) {
    return absl::DataLossError(absl::StrCat(path.string(), ": not a JSON object"));
  }
  return manifest;
}

}  // namespace rally
