// Structured logging: one JSON object per line on stderr, e.g.
//   {"ts":"2026-11-27T09:41:02.123Z","level":"info","component":"replay","msg":"listening",
//    "address":"127.0.0.1:4301"}
// Thread safe. The component name is set once per process by SetLogComponent().
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace rally {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// A structured field: a key and a string, integer, float or boolean value.
struct LogField {
  using Value = std::variant<std::string, long long, double, bool>;
  LogField(std::string_view k, std::string_view v) : key(k), value(std::string(v)) {}
  LogField(std::string_view k, const std::string& v) : key(k), value(v) {}
  LogField(std::string_view k, const char* v) : key(k), value(std::string(v)) {}
  LogField(std::string_view k, int v) : key(k), value(static_cast<long long>(v)) {}
  LogField(std::string_view k, long v) : key(k), value(static_cast<long long>(v)) {}
  LogField(std::string_view k, long long v) : key(k), value(v) {}
  LogField(std::string_view k, unsigned long v) : key(k), value(static_cast<long long>(v)) {}
  LogField(std::string_view k, unsigned long long v) : key(k), value(static_cast<long long>(v)) {}
  LogField(std::string_view k, double v) : key(k), value(v) {}
  LogField(std::string_view k, float v) : key(k), value(static_cast<double>(v)) {}
  LogField(std::string_view k, bool v) : key(k), value(v) {}
  std::string key;
  Value value;
};

void SetLogComponent(std::string_view component);
void SetMinLogLevel(LogLevel level);
void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});

inline void LogInfo(std::string_view msg, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kInfo, msg, fields);
}
inline void LogWarning(std::string_view msg, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kWarning, msg, fields);
}
inline void LogError(std::string_view msg, std::initializer_list<LogField> fields = {}) {
  Log(LogLevel::kError, msg, fields);
}

}  // namespace rally
