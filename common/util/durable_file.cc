#include "common/util/durable_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace rally {
namespace {

absl::Status Failed(const std::string& what, const std::filesystem::path& path) {
  const int error = errno;
  return absl::InternalError(absl::StrCat(what, " ", path.string(), ": ", std::strerror(error)));
}

absl::Status ReadFailed(const std::string& what, const std::filesystem::path& path) {
  const int error = errno;
  return absl::DataLossError(absl::StrCat(path.string(), ": ", what, ": ", std::strerror(error)));
}

}  // namespace

absl::StatusOr<std::string> ReadFileBytes(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path.string(), ": no such file"));
  }
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ReadFailed("cannot be opened", path);
  std::string bytes;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status failed = ReadFailed("cannot be read", path);
      close(fd);
      return failed;
    }
    if (n == 0) break;
    bytes.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  return bytes;
}

absl::Status WriteFileSynced(const std::filesystem::path& path, std::string_view data) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Failed("cannot create", path);
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;  // nothing written and no error reported
      absl::Status failed = Failed("cannot write", path);
      close(fd);
      return failed;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  if (fsync(fd) != 0) {
    absl::Status failed = Failed("cannot fsync", path);
    close(fd);
    return failed;
  }
  if (close(fd) != 0) return Failed("cannot close", path);
  return absl::OkStatus();
}

absl::Status SyncDirectory(const std::filesystem::path& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Failed("cannot open directory", dir);
  const bool ok = fsync(fd) == 0;
  absl::Status status = ok ? absl::OkStatus() : Failed("cannot fsync directory", dir);
  close(fd);
  return status;
}

absl::Status ReplaceFileDurably(const std::filesystem::path& path, std::string_view data) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  std::error_code ec;
  if (absl::Status s = WriteFileSynced(tmp, data); !s.ok()) {
    std::filesystem::remove(tmp, ec);
    return s;
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    absl::Status failed = absl::InternalError(
        absl::StrCat("cannot rename ", tmp.string(), " to ", path.string(), ": ", ec.message()));
    std::filesystem::remove(tmp, ec);
    return failed;
  }
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  return SyncDirectory(dir);
}

}  // namespace rally
