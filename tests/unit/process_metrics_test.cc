// The standard process metrics read from /proc and rally_build_info (common/metrics/
// process_metrics.h).
#include "common/metrics/process_metrics.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>

namespace rally {
namespace {

// The value of each single-series family `collector` returns, by name.
std::map<std::string, double> Values(const prometheus::Collectable& collector) {
  std::map<std::string, double> out;
  for (const auto& family : collector.Collect()) {
    EXPECT_EQ(family.metric.size(), 1u) << family.name;
    if (family.metric.empty()) continue;
    const auto& m = family.metric[0];
    out[family.name] =
        family.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
  }
  return out;
}

// A /proc/<pid>/stat line: pid 4242, a command name with spaces and parentheses, utime 250 and
// stime 150 ticks, 7 threads, started 12345 ticks after boot, 1000000 bytes of virtual memory,
// 300 resident pages.
constexpr char kStat[] =
    "4242 (rally (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 7 0 12345 "
    "1000000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n";

TEST(ProcStat, ParsesFieldsCountedFromTheLastParenthesis) {
  auto stat = ParseProcStat(kStat, /*ticks_per_second=*/100, /*page_bytes=*/4096);
  ASSERT_TRUE(stat.ok()) << stat.status();
  EXPECT_DOUBLE_EQ(stat->cpu_seconds, 4.0);  // (250 + 150) / 100
  EXPECT_DOUBLE_EQ(stat->start_seconds_after_boot, 123.45);
  EXPECT_DOUBLE_EQ(stat->virtual_memory_bytes, 1000000);
  EXPECT_DOUBLE_EQ(stat->resident_memory_bytes, 300 * 4096);
  EXPECT_EQ(stat->threads, 7);
}

TEST(ProcStat, RefusesATruncatedOrMalformedLine) {
  EXPECT_FALSE(ParseProcStat("4242 rally S 1", 100, 4096).ok());
  auto short_line = ParseProcStat("4242 (rally) S 1 2 3", 100, 4096);
  ASSERT_FALSE(short_line.ok());
  EXPECT_NE(short_line.status().message().find("expected at least 24"), std::string::npos)
      << short_line.status();
  std::string bad = kStat;
  bad.replace(bad.find(" 250 "), 5, " x50 ");
  EXPECT_FALSE(ParseProcStat(bad, 100, 4096).ok());
}

TEST(ProcStat, BootTimeAndOpenFileLimit) {
  auto boot = ParseBootTime("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n");
  ASSERT_TRUE(boot.ok()) << boot.status();
  EXPECT_DOUBLE_EQ(*boot, 1700000000);
  EXPECT_FALSE(ParseBootTime("cpu  1 2 3\n").ok());

  const std::string limits =
      "Limit                     Soft Limit           Hard Limit           Units     \n"
      "Max processes             63704                63704                processes \n"
      "Max open files            1024                 524288               files     \n";
  auto max_fds = ParseMaxOpenFiles(limits);
  ASSERT_TRUE(max_fds.ok()) << max_fds.status();
  ASSERT_TRUE(max_fds->has_value());
  EXPECT_DOUBLE_EQ(**max_fds, 1024);  // the soft limit
  auto unlimited =
      ParseMaxOpenFiles("Max open files            unlimited            unlimited  files\n");
  ASSERT_TRUE(unlimited.ok());
  EXPECT_FALSE(unlimited->has_value());
  EXPECT_FALSE(ParseMaxOpenFiles("Max processes 1 1 processes\n").ok());
}

TEST(ProcessCollector, ReadsAProcDirectory) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / "process_collector_proc";
  fs::remove_all(dir);
  fs::create_directories(dir / "fd");
  for (const char* fd : {"0", "1", "2"}) std::ofstream(dir / "fd" / fd) << "";
  std::ofstream(dir / "stat") << kStat;
  std::ofstream(dir / "limits") << "Max open files            2048                 4096    files\n";
  std::ofstream(dir / "proc_stat") << "btime 1700000000\n";
  const ProcessCollector collector(dir.string(), (dir / "proc_stat").string());
  const std::map<std::string, double> v = Values(collector);
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  EXPECT_DOUBLE_EQ(v.at("process_cpu_seconds_total"), 400 / ticks);
  EXPECT_DOUBLE_EQ(v.at("process_start_time_seconds"), 1700000000 + 12345 / ticks);
  EXPECT_DOUBLE_EQ(v.at("process_resident_memory_bytes"),
                   300 * static_cast<double>(sysconf(_SC_PAGESIZE)));
  EXPECT_DOUBLE_EQ(v.at("process_virtual_memory_bytes"), 1000000);
  EXPECT_DOUBLE_EQ(v.at("process_threads"), 7);
  EXPECT_DOUBLE_EQ(v.at("process_open_fds"), 3);  // another directory's fds: none held open
  EXPECT_DOUBLE_EQ(v.at("process_max_fds"), 2048);
}

TEST(ProcessCollector, LeavesOutWhatItCannotRead) {
  const ProcessCollector collector("/nonexistent/proc", "/nonexistent/stat");
  EXPECT_TRUE(collector.Collect().empty());
}

TEST(ProcessCollector, ThisProcess) {
  const ProcessCollector collector;
  const std::map<std::string, double> before = Values(collector);
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_LE(before.at("process_start_time_seconds"), now);
  EXPECT_GT(before.at("process_start_time_seconds"), now - 24 * 3600);
  EXPECT_GT(before.at("process_resident_memory_bytes"), 1 << 20);
  EXPECT_GE(before.at("process_threads"), 1);
  int fd = open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(Values(collector).at("process_open_fds"), before.at("process_open_fds") + 1);
  close(fd);
  EXPECT_EQ(Values(collector).at("process_open_fds"), before.at("process_open_fds"));
  // CPU time only grows.
  volatile double x = 0;
  for (int i = 0; i < 20'000'000; ++i) x = x + i;
  EXPECT_GT(Values(collector).at("process_cpu_seconds_total"),
            before.at("process_cpu_seconds_total"));
}

TEST(BuildInfo, OneSeriesOfValueOneNamingTheBinary) {
  const auto families = ProcessRegistry()->Collect();
  const auto it = std::find_if(families.begin(), families.end(),
                               [](const auto& f) { return f.name == "rally_build_info"; });
  ASSERT_NE(it, families.end());
  ASSERT_EQ(it->metric.size(), 1u);
  EXPECT_EQ(it->metric[0].gauge.value, 1);
  std::map<std::string, std::string> labels;
  for (const auto& l : it->metric[0].label) labels[l.name] = l.value;
  EXPECT_EQ(labels.at("binary"), "unit_tests");
  EXPECT_FALSE(labels.at("version").empty());
  EXPECT_FALSE(labels.at("revision").empty());
  EXPECT_EQ(labels.at("compiler").rfind("gcc ", 0), 0u) << labels.at("compiler");
}

}  // namespace
}  // namespace rally
