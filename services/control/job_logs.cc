#include "services/control/job_logs.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace rally {
namespace fs = std::filesystem;

namespace {

std::string ProcessOf(const std::string& file) {
  return std::string(absl::StripSuffix(fs::path(file).filename().string(), ".log"));
}

// The last `lines` complete lines of `path` and the offset where the last of them ends.
std::vector<std::string> LastLines(const std::string& path, int lines, int64_t* end) {
  std::ifstream in(path, std::ios::binary);
  in.seekg(0, std::ios::end);
  const int64_t size = in.tellg();
  // Read backwards in blocks until the tail holds more than `lines` line ends.
  constexpr int64_t kBlock = 64 << 10;
  std::string tail;
  int64_t from = size;
  while (from > 0 && std::count(tail.begin(), tail.end(), '\n') <= lines) {
    const int64_t n = std::min(kBlock, from);
    from -= n;
    std::string block(n, '\0');
    in.seekg(from);
    in.read(block.data(), n);
    tail = block + tail;
  }
  // Only complete lines: a line still being written is read by Follow once it ends.
  const size_t last_end = tail.rfind('\n');
  *end = last_end == std::string::npos ? from : from + static_cast<int64_t>(last_end) + 1;
  if (last_end == std::string::npos) return {};
  tail.resize(last_end);
  std::vector<std::string> out;
  size_t pos = tail.size();
  while (static_cast<int>(out.size()) < lines) {
    const size_t nl = pos == 0 ? std::string::npos : tail.rfind('\n', pos - 1);
    const size_t begin = nl == std::string::npos ? 0 : nl + 1;
    // The first line of a block that did not reach the file's start may be partial.
    if (nl == std::string::npos && from > 0) break;
    out.push_back(tail.substr(begin, pos - begin));
    if (nl == std::string::npos) break;
    pos = nl;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace

LogTail::LogTail(std::string dir, std::string job_id, std::string process)
    : dir_(std::move(dir)), job_id_(std::move(job_id)), process_(std::move(process)) {}

std::vector<std::string> LogTail::Files() const {
  std::vector<std::string> files;
  std::error_code ec;
  if (!process_.empty()) {
    const std::string path = (fs::path(dir_) / (process_ + ".log")).string();
    if (fs::is_regular_file(path, ec)) files.push_back(path);
    return files;
  }
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    if (entry.is_regular_file() && entry.path().extension() == ".log") {
      files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

bool LogTail::Keep(const std::string& line) const {
  if (!absl::StrContains(line, "\"job_id\"")) return true;
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("job_id") || !j["job_id"].is_string()) return true;
  const std::string id = j["job_id"].get<std::string>();
  return id.empty() || id == job_id_;
}

absl::StatusOr<std::vector<v1::LogLine>> LogTail::Tail(int lines) {
  std::error_code ec;
  if (!fs::is_directory(dir_, ec)) {
    return absl::NotFoundError(absl::StrCat("log directory ", dir_, " does not exist here"));
  }
  const std::vector<std::string> files = Files();
  if (!process_.empty() && files.empty()) {
    return absl::NotFoundError(absl::StrCat("no log ", process_, ".log in ", dir_));
  }
  std::vector<v1::LogLine> out;
  for (const std::string& file : files) {
    int64_t end = 0;
    for (std::string& line : LastLines(file, lines, &end)) {
      if (!Keep(line)) continue;
      v1::LogLine& l = out.emplace_back();
      l.set_process(ProcessOf(file));
      l.set_line(std::move(line));
    }
    offsets_[file] = end;
  }
  return out;
}

std::vector<v1::LogLine> LogTail::Follow() {
  std::vector<v1::LogLine> out;
  for (const std::string& file : Files()) {
    int64_t& offset = offsets_[file];
    std::ifstream in(file, std::ios::binary);
    in.seekg(0, std::ios::end);
    const int64_t size = in.tellg();
    if (size < offset) offset = 0;  // truncated or replaced: read it again
    if (size == offset) continue;
    std::string chunk(size - offset, '\0');
    in.seekg(offset);
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    size_t begin = 0;
    for (size_t nl = chunk.find('\n'); nl != std::string::npos; nl = chunk.find('\n', begin)) {
      std::string line = chunk.substr(begin, nl - begin);
      begin = nl + 1;
      if (!Keep(line)) continue;
      v1::LogLine& l = out.emplace_back();
      l.set_process(ProcessOf(file));
      l.set_line(std::move(line));
    }
    offset += static_cast<int64_t>(begin);
  }
  return out;
}

}  // namespace rally
