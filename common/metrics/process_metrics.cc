#include "common/metrics/process_metrics.h"

#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

#ifndef RALLY_VERSION
#define RALLY_VERSION "unknown"
#endif
#ifndef RALLY_REVISION
#define RALLY_REVISION "unknown"
#endif

namespace rally {
namespace {

std::optional<std::string> ReadWhole(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

prometheus::MetricFamily OneSeries(const std::string& name, const std::string& help,
                                   prometheus::MetricType type, double value) {
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return prometheus::MetricFamily{name, help, type, {metric}};
}

// Open descriptors: the entries of <proc_dir>/fd, less the one this listing holds open.
std::optional<double> OpenFds(const std::string& proc_dir) {
  std::error_code error;
  std::filesystem::directory_iterator it(proc_dir + "/fd", error);
  if (error) return std::nullopt;
  double n = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(error)) {
    if (error) return std::nullopt;
    ++n;
  }
  return proc_dir == "/proc/self" && n > 0 ? n - 1 : n;
}

std::string Compiler() {
#if defined(__clang__)
  return absl::StrCat("clang ", __clang_major__, ".", __clang_minor__, ".", __clang_patchlevel__);
#elif defined(__GNUC__)
  return absl::StrCat("gcc ", __GNUC__, ".", __GNUC_MINOR__, ".", __GNUC_PATCHLEVEL__);
#else
  return "unknown";
#endif
}

}  // namespace

absl::StatusOr<ProcStat> ParseProcStat(absl::string_view stat, double ticks_per_second,
                                       double page_bytes) {
  const size_t close = stat.rfind(')');
  if (close == absl::string_view::npos) {
    return absl::InvalidArgumentError("stat: no ')' after the command name");
  }
  // Field 3 (state) onwards; fields[i] is proc(5)'s field i + 3.
  std::vector<absl::string_view> fields =
      absl::StrSplit(stat.substr(close + 1), ' ', absl::SkipWhitespace());
  constexpr int kUtime = 14 - 3, kStime = 15 - 3, kThreads = 20 - 3, kStart = 22 - 3,
                kVsize = 23 - 3, kRss = 24 - 3;
  if (fields.size() <= kRss) {
    return absl::InvalidArgumentError(
        absl::StrCat("stat: ", fields.size() + 2, " fields, expected at least ", kRss + 3));
  }
  double utime, stime, start, vsize, rss;
  int64_t threads;
  if (!absl::SimpleAtod(fields[kUtime], &utime) || !absl::SimpleAtod(fields[kStime], &stime) ||
      !absl::SimpleAtoi(fields[kThreads], &threads) || !absl::SimpleAtod(fields[kStart], &start) ||
      !absl::SimpleAtod(fields[kVsize], &vsize) || !absl::SimpleAtod(fields[kRss], &rss)) {
    return absl::InvalidArgumentError(
        "stat: a field of utime, stime, num_threads, starttime, "
        "vsize or rss is not a number");
  }
  return ProcStat{.cpu_seconds = (utime + stime) / ticks_per_second,
                  .start_seconds_after_boot = start / ticks_per_second,
                  .virtual_memory_bytes = vsize,
                  .resident_memory_bytes = rss * page_bytes,
                  .threads = threads};
}

absl::StatusOr<double> ParseBootTime(absl::string_view proc_stat) {
  for (absl::string_view line : absl::StrSplit(proc_stat, '\n')) {
    if (absl::ConsumePrefix(&line, "btime ")) {
      double btime;
      if (absl::SimpleAtod(line, &btime)) return btime;
      return absl::InvalidArgumentError(
          absl::StrCat("/proc/stat: btime '", line, "' is not a number"));
    }
  }
  return absl::NotFoundError("/proc/stat: no btime line");
}

absl::StatusOr<std::optional<double>> ParseMaxOpenFiles(absl::string_view limits) {
  for (absl::string_view line : absl::StrSplit(limits, '\n')) {
    if (!absl::ConsumePrefix(&line, "Max open files")) continue;
    std::vector<absl::string_view> values = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (values.empty()) break;
    if (values[0] == "unlimited") return std::nullopt;
    double soft;
    if (absl::SimpleAtod(values[0], &soft)) return soft;
    return absl::InvalidArgumentError(
        absl::StrCat("limits: Max open files '", values[0], "' is not a number"));
  }
  return absl::NotFoundError("limits: no 'Max open files' line");
}

ProcessCollector::ProcessCollector(std::string proc_dir, std::string proc_stat)
    : proc_dir_(std::move(proc_dir)), proc_stat_(std::move(proc_stat)) {}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  const std::optional<std::string> stat_text = ReadWhole(proc_dir_ + "/stat");
  const absl::StatusOr<ProcStat> stat =
      stat_text ? ParseProcStat(*stat_text, static_cast<double>(sysconf(_SC_CLK_TCK)),
                                static_cast<double>(sysconf(_SC_PAGESIZE)))
                : absl::NotFoundError("no stat");
  if (stat.ok()) {
    out.push_back(OneSeries("process_cpu_seconds_total",
                            "Total user and system CPU time spent in seconds.", MetricType::Counter,
                            stat->cpu_seconds));
    out.push_back(OneSeries("process_resident_memory_bytes", "Resident memory size in bytes.",
                            MetricType::Gauge, stat->resident_memory_bytes));
    out.push_back(OneSeries("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                            MetricType::Gauge, stat->virtual_memory_bytes));
    out.push_back(OneSeries("process_threads", "Number of OS threads in the process.",
                            MetricType::Gauge, static_cast<double>(stat->threads)));
    const std::optional<std::string> boot_text = ReadWhole(proc_stat_);
    const absl::StatusOr<double> boot =
        boot_text ? ParseBootTime(*boot_text) : absl::NotFoundError("no /proc/stat");
    if (boot.ok()) {
      out.push_back(OneSeries("process_start_time_seconds",
                              "Start time of the process since unix epoch in seconds.",
                              MetricType::Gauge, *boot + stat->start_seconds_after_boot));
    }
  }
  if (std::optional<double> fds = OpenFds(proc_dir_)) {
    out.push_back(
        OneSeries("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, *fds));
  }
  const std::optional<std::string> limits_text = ReadWhole(proc_dir_ + "/limits");
  if (limits_text) {
    absl::StatusOr<std::optional<double>> max_fds = ParseMaxOpenFiles(*limits_text);
    if (max_fds.ok() && max_fds->has_value()) {
      out.push_back(OneSeries("process_max_fds", "Maximum number of open file descriptors.",
                              MetricType::Gauge, **max_fds));
    }
  }
  return out;
}

BuildInfo CurrentBuildInfo() {
  return BuildInfo{.version = RALLY_VERSION,
                   .revision = RALLY_REVISION,
                   .compiler = Compiler(),
                   .binary = program_invocation_short_name};
}

std::shared_ptr<prometheus::Registry> ProcessRegistry() {
  static auto* const registry = [] {
    auto* r = new std::shared_ptr<prometheus::Registry>(std::make_shared<prometheus::Registry>());
    const BuildInfo info = CurrentBuildInfo();
    prometheus::BuildGauge()
        .Name("rally_build_info")
        .Help("Always 1; the labels say which build of which rally binary runs.")
        .Register(**r)
        .Add({{"version", info.version},
              {"revision", info.revision},
              {"compiler", info.compiler},
              {"binary", info.binary}})
        .Set(1);
    return r;
  }();
  return *registry;
}

}  // namespace rally
