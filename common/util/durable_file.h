// Reading files whole, and writing files so that they outlive a crash of the machine (power
// loss, kernel panic, a killed VM), not only of the process: data reaches the disk before a name
// points at it, and the names themselves are synced with their directory.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rally {

// The whole content of the file at `path`. NotFound naming the path when no regular file is
// there; DataLoss naming the path and the system's reason when it cannot be opened or read.
absl::StatusOr<std::string> ReadFileBytes(const std::filesystem::path& path);

// Writes `data` to `path` (created, or truncated) and fsyncs it. Errors name the path.
absl::Status WriteFileSynced(const std::filesystem::path& path, std::string_view data);

// fsyncs directory `dir`, making the entries created, renamed or removed in it durable.
absl::Status SyncDirectory(const std::filesystem::path& dir);

// Replaces `path` with `data` atomically and durably: writes and fsyncs `path`.tmp, renames it
// over `path`, fsyncs the directory. A crash leaves either the old file or the new one.
absl::Status ReplaceFileDurably(const std::filesystem::path& path, std::string_view data);

}  // namespace rally
