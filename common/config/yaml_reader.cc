#include "common/config/yaml_reader.h"

#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace rally {
namespace {

bool ParseValue(const std::string& s, int* out) { return absl::SimpleAtoi(s, out); }
bool ParseValue(const std::string& s, long* out) { return absl::SimpleAtoi(s, out); }
bool ParseValue(const std::string& s, double* out) {
  return absl::SimpleAtod(s, out) && std::isfinite(*out);
}
bool ParseValue(const std::string& s, bool* out) {
  if (s == "true" || s == "True" || s == "yes") {
    *out = true;
    return true;
  }
  if (s == "false" || s == "False" || s == "no") {
    *out = false;
    return true;
  }
  return false;
}
bool ParseValue(const std::string& s, std::string* out) {
  *out = s;
  return true;
}

}  // namespace

std::string YamlReader::Join(const std::string& path, const std::string& key) {
  return path.empty() ? key : absl::StrCat(path, ".", key);
}

std::string YamlReader::Where(const YAML::Node& node) const {
  YAML::Mark mark = node.Mark();
  if (mark.line < 0) return source_;
  return absl::StrCat(source_, ":", mark.line + 1, ":", mark.column + 1);
}

void YamlReader::ErrorAt(const YAML::Node& node, const std::string& message) {
  errors_.push_back(absl::StrCat(Where(node), ": ", message));
}

void YamlReader::Error(const YAML::Node& map, const std::string& path, const std::string& key,
                       const std::string& message) {
  YAML::Node node = map[key];
  errors_.push_back(absl::StrCat(Where(node ? node : map), ": ", Join(path, key), ": ", message));
}

template <typename T>
void YamlReader::ReadScalar(const YAML::Node& map, const std::string& path, const std::string& key,
                            T* out, bool required, const char* type_name) {
  if (!map.IsMap()) return;
  YAML::Node node = map[key];
  if (!node || node.IsNull()) {
    if (required) {
      errors_.push_back(absl::StrCat(Where(map), ": ", Join(path, key), ": required key missing"));
    }
    return;
  }
  if (!node.IsScalar() || !ParseValue(node.Scalar(), out)) {
    std::string got = node.IsScalar()     ? absl::StrCat("'", node.Scalar(), "'")
                      : node.IsSequence() ? "a list"
                                          : "a mapping";
    errors_.push_back(
        absl::StrCat(Where(node), ": ", Join(path, key), ": expected ", type_name, ", got ", got));
  }
}

void YamlReader::Read(const YAML::Node& map, const std::string& path, const std::string& key,
                      int* out, bool required) {
  ReadScalar(map, path, key, out, required, "an integer");
}
void YamlReader::Read(const YAML::Node& map, const std::string& path, const std::string& key,
                      long* out, bool required) {
  ReadScalar(map, path, key, out, required, "an integer");
}
void YamlReader::Read(const YAML::Node& map, const std::string& path, const std::string& key,
                      double* out, bool required) {
  ReadScalar(map, path, key, out, required, "a number");
}
void YamlReader::Read(const YAML::Node& map, const std::string& path, const std::string& key,
                      bool* out, bool required) {
  ReadScalar(map, path, key, out, required, "true or false");
}
void YamlReader::Read(const YAML::Node& map, const std::string& path, const std::string& key,
                      std::string* out, bool required) {
  ReadScalar(map, path, key, out, required, "a string");
}

void YamlReader::Read(const YAML::Node& map, const std::string& path, const std::string& key,
                      std::vector<int>* out, bool required) {
  if (!map.IsMap()) return;
  YAML::Node node = map[key];
  if (!node) {
    if (required) Error(map, path, key, "required key missing");
    return;
  }
  if (!node.IsSequence()) {
    errors_.push_back(
        absl::StrCat(Where(node), ": ", Join(path, key), ": expected a list of integers"));
    return;
  }
  out->clear();
  for (size_t i = 0; i < node.size(); ++i) {
    int v = 0;
    if (!node[i].IsScalar() || !ParseValue(node[i].Scalar(), &v)) {
      errors_.push_back(
          absl::StrCat(Where(node[i]), ": ", Join(path, key), "[", i, "]: expected an integer"));
      continue;
    }
    out->push_back(v);
  }
}

void YamlReader::Read(const YAML::Node& map, const std::string& path, const std::string& key,
                      std::vector<std::string>* out, bool required) {
  if (!map.IsMap()) return;
  YAML::Node node = map[key];
  if (!node) {
    if (required) Error(map, path, key, "required key missing");
    return;
  }
  if (!node.IsSequence()) {
    errors_.push_back(
        absl::StrCat(Where(node), ": ", Join(path, key), ": expected a list of strings"));
    return;
  }
  out->clear();
  for (size_t i = 0; i < node.size(); ++i) {
    if (!node[i].IsScalar()) {
      errors_.push_back(
          absl::StrCat(Where(node[i]), ": ", Join(path, key), "[", i, "]: expected a string"));
      continue;
    }
    out->push_back(node[i].Scalar());
  }
}

YAML::Node YamlReader::Section(const YAML::Node& map, const std::string& path,
                               const std::string& key) {
  if (!map.IsMap()) return YAML::Node(YAML::NodeType::Map);
  YAML::Node node = map[key];
  if (!node || node.IsNull()) return YAML::Node(YAML::NodeType::Map);
  if (!node.IsMap()) {
    errors_.push_back(absl::StrCat(Where(node), ": ", Join(path, key), ": expected a mapping"));
    return YAML::Node(YAML::NodeType::Map);
  }
  return node;
}

void YamlReader::CheckKeys(const YAML::Node& map, const std::string& path,
                           const std::vector<std::string>& known) {
  if (!map.IsMap()) return;
  for (auto it = map.begin(); it != map.end(); ++it) {
    std::string key = it->first.Scalar();
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    errors_.push_back(absl::StrCat(Where(it->first), ": unknown key '", Join(path, key),
                                   "' (known keys", path.empty() ? "" : " in '", path,
                                   path.empty() ? "" : "'", ": ", absl::StrJoin(known, ", "), ")"));
  }
}

absl::Status YamlReader::status() const {
  if (errors_.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrJoin(errors_, "\n"));
}

}  // namespace rally
