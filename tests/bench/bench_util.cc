#include "tests/bench/bench_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>
#include <utility>

#include "common/net/free_port.h"
#include "common/net/server.h"
#include "rally/v1/control.grpc.pb.h"
#include "rally/v1/replay.grpc.pb.h"

namespace rally::bench {

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

namespace {

// A connected pair of loopback TCP sockets: {sending end, receiving end}.
std::pair<int, int> ConnectedPair() {
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  listen(listener, 1);
  int out = socket(AF_INET, SOCK_STREAM, 0);
  connect(out, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int in = accept(listener, nullptr, nullptr);
  close(listener);
  return {out, in};
}

// One transfer of `bytes` from a writer thread to this thread over a fresh connection. The
// receiver reads into one 1 MiB buffer, or with `ring` into successive places of that buffer,
// wrapping at its end.
double TransferSeconds(size_t bytes, std::vector<char>* ring = nullptr) {
  auto [out, in] = ConnectedPair();
  std::thread writer([&, fd = out] {
    std::vector<char> chunk(1 << 20, 'x');
    size_t sent = 0;
    while (sent < bytes) {
      ssize_t n = send(fd, chunk.data(), std::min(chunk.size(), bytes - sent), 0);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    close(fd);
  });
  std::vector<char> buf(ring == nullptr ? 1 << 20 : 0);
  std::vector<char>& into = ring == nullptr ? buf : *ring;
  size_t got = 0;
  size_t at = 0;
  auto start = std::chrono::steady_clock::now();
  while (got < bytes) {
    const size_t room = std::min<size_t>(1 << 20, into.size() - at);
    ssize_t n = recv(in, into.data() + at, room, 0);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
    at = ring == nullptr ? 0 : (at + static_cast<size_t>(n)) % into.size();
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  writer.join();
  close(in);
  return secs;
}

// One fan-out of `source` to `receivers` connections at once.
double FanOutSeconds(const std::vector<char>& source, int receivers) {
  const size_t bytes = source.size();
  std::vector<std::pair<int, int>> pairs;
  for (int r = 0; r < receivers; ++r) pairs.push_back(ConnectedPair());
  std::vector<std::thread> threads;
  auto start = std::chrono::steady_clock::now();
  for (const auto& pair : pairs) {
    const int out = pair.first;
    const int in = pair.second;
    threads.emplace_back([&source, bytes, out] {
      size_t sent = 0;
      while (sent < bytes) {
        ssize_t n = send(out, source.data() + sent, std::min<size_t>(1 << 20, bytes - sent), 0);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
      }
    });
    threads.emplace_back([bytes, in] {
      std::unique_ptr<char[]> blob(new char[bytes]);  // fresh, as an assembled blob is
      size_t got = 0;
      while (got < bytes) {
        ssize_t n = recv(in, blob.get() + got, bytes - got, 0);
        if (n <= 0) break;
        got += static_cast<size_t>(n);
      }
    });
  }
  for (auto& t : threads) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (auto [out, in] : pairs) {
    close(out);
    close(in);
  }
  return secs;
}

}  // namespace

double LoopbackTcpFanOutSeconds(size_t bytes, int receivers, int runs) {
  std::vector<char> source(bytes, 'x');
  std::vector<double> times;
  for (int i = 0; i < runs; ++i) times.push_back(FanOutSeconds(source, receivers));
  return Median(times);
}

double ProcessCpuSeconds(pid_t pid) {
  std::ifstream in(pid == 0 ? std::string("/proc/self/stat")
                            : "/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  // Fields after the command name (which may hold spaces, so it is skipped to its ')'): the
  // state is field 3, utime and stime fields 14 and 15.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i >= 14) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

MachineCpu MachineCpuSeconds() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  in >> cpu;  // the "cpu" line sums every core: user nice system idle iowait irq softirq steal
  MachineCpu out;
  double v = 0;
  for (int i = 0; i < 8 && in >> v; ++i) {
    out.total += v;
    if (i != 3 && i != 4) out.busy += v;
  }
  const auto tck = static_cast<double>(sysconf(_SC_CLK_TCK));
  out.busy /= tck;
  out.total /= tck;
  return out;
}

double LoopbackTcpMegabytesPerSecond(size_t bytes, int runs) {
  std::vector<double> rates;
  for (int i = 0; i < runs; ++i) rates.push_back(bytes / 1e6 / TransferSeconds(bytes));
  return Median(rates);
}

double LoopbackTcpIntoRingMegabytesPerSecond(size_t bytes, size_t ring_bytes, int runs) {
  std::vector<char> ring(ring_bytes, 'r');  // touched: its pages exist before the clock starts
  std::vector<double> rates;
  for (int i = 0; i < runs; ++i) rates.push_back(bytes / 1e6 / TransferSeconds(bytes, &ring));
  return Median(rates);
}

double LoopbackTcpSeconds(size_t bytes, int receivers, int runs) {
  std::vector<double> times;
  for (int i = 0; i < runs; ++i) {
    double total = 0;
    for (int r = 0; r < receivers; ++r) total += TransferSeconds(bytes);
    times.push_back(total);
  }
  return Median(times);
}

ReplayCluster StartReplayCluster(const std::string& name, const std::string& spec_yaml, bool wal) {
  using namespace std::chrono_literals;
  ReplayCluster c;
  c.dir = testing::TempDir("bench-" + name);
  c.control = std::make_unique<testing::Process>(
      "rally-control",
      std::vector<std::string>{"--port=0", "--port_file=" + c.dir + "/control.port",
                               "--db=" + c.dir + "/control.sqlite"},
      c.dir + "/control.log");
  std::string control = "127.0.0.1:" + testing::WaitForPortFile(c.dir + "/control.port", 30s);
  int port = FreePort();
  c.replay_address = "127.0.0.1:" + std::to_string(port);
  std::vector<std::string> args = {"--control=" + control, "--port=" + std::to_string(port)};
  if (wal) args.push_back("--data_dir=" + c.dir + "/replay");
  c.replay = std::make_unique<testing::Process>("rally-replay", args, c.dir + "/replay.log");
  if (!WaitForServing(c.replay_address, 30s).ok()) std::abort();
  auto jobs = v1::JobService::NewStub(MakeChannel(control));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(10s));
  v1::SubmitJobRequest req;
  req.set_spec_yaml(spec_yaml);
  v1::Job job;
  if (!jobs->SubmitJob(&ctx, req, &job).ok()) std::abort();
  auto replay = v1::ReplayService::NewStub(MakeChannel(c.replay_address));
  for (int i = 0; i < 600; ++i) {
    grpc::ClientContext ic;
    ic.set_deadline(DeadlineIn(2s));
    v1::InfoResponse info;
    if (replay->Info(&ic, v1::InfoRequest(), &info).ok() && info.job_id() == job.id()) break;
    std::this_thread::sleep_for(50ms);
  }
  return c;
}

std::string JsonPath(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) return argv[i + 1];
    if (a.rfind("--json=", 0) == 0) return a.substr(7);
  }
  return "";
}

void WriteJson(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return;
  std::ofstream out(path);
  out << j.dump(2) << "\n";
}

}  // namespace rally::bench
