// Reads typed fields out of a YAML mapping and reports every problem with its place:
//   configs/job.yaml:7:3: learner.learning_rate: expected a number, got 'fast'
// A reader collects errors instead of stopping at the first, so one run shows them all.
#pragma once

#include <yaml-cpp/yaml.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace rally {

class YamlReader {
 public:
  explicit YamlReader(std::string source) : source_(std::move(source)) {}

  // Reads `map[key]` into `out` if present (leaving the default otherwise, or reporting it
  // missing if `required`). `path` is the dotted path of `map` ("" at the top).
  void Read(const YAML::Node& map, const std::string& path, const std::string& key, int* out,
            bool required = false);
  void Read(const YAML::Node& map, const std::string& path, const std::string& key, long* out,
            bool required = false);
  void Read(const YAML::Node& map, const std::string& path, const std::string& key, double* out,
            bool required = false);
  void Read(const YAML::Node& map, const std::string& path, const std::string& key, bool* out,
            bool required = false);
  void Read(const YAML::Node& map, const std::string& path, const std::string& key,
            std::string* out, bool required = false);
  void Read(const YAML::Node& map, const std::string& path, const std::string& key,
            std::vector<int>* out, bool required = false);
  void Read(const YAML::Node& map, const std::string& path, const std::string& key,
            std::vector<std::string>* out, bool required = false);

  // The mapping at `map[key]` (an empty map if absent); reports a non-mapping value.
  YAML::Node Section(const YAML::Node& map, const std::string& path, const std::string& key);
  // Reports every key of `map` not in `known`.
  void CheckKeys(const YAML::Node& map, const std::string& path,
                 const std::vector<std::string>& known);
  // Reports `message` about `map[key]` (e.g. an out-of-range value found after reading).
  void Error(const YAML::Node& map, const std::string& path, const std::string& key,
             const std::string& message);
  // Reports `message` at `node`'s position.
  void ErrorAt(const YAML::Node& node, const std::string& message);

  const std::string& source() const { return source_; }
  // OK, or INVALID_ARGUMENT with every reported problem, one per line.
  absl::Status status() const;

 private:
  template <typename T>
  void ReadScalar(const YAML::Node& map, const std::string& path, const std::string& key, T* out,
                  bool required, const char* type_name);
  std::string Where(const YAML::Node& node) const;
  static std::string Join(const std::string& path, const std::string& key);

  std::string source_;
  std::vector<std::string> errors_;
};

}  // namespace rally
