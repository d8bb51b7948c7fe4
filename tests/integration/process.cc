#include "tests/integration/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/net/free_port.h"
#include "common/net/server.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "rally/v1/control.grpc.pb.h"

namespace rally::testing {

std::string BinPath(const std::string& name) {
  return name.rfind('/', 0) == 0 ? name : std::string(RALLY_BIN_DIR) + "/" + name;
}

std::string SourcePath(const std::string& relative) {
  return std::string(RALLY_SOURCE_DIR) + "/" + relative;
}

std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::filesystem::path dir = std::filesystem::path(base ? base : "/tmp") /
                              ("rally-test-" + std::to_string(getpid()) + "-" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

Process::Process(const std::string& binary, const std::vector<std::string>& args,
                 const std::string& log_path, const std::string& netns) {
  std::string path = BinPath(binary);
  std::vector<std::string> argv_s = {path};
  if (!netns.empty()) {
    argv_s = {"ip", "netns", "exec", netns, BinPath(binary)};
    path = "/bin/ip";
  }
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      close(fd);
    }
    std::vector<char*> argv;
    for (std::string& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(path.c_str(), argv.data());
    _exit(127);
  }
}

Process::~Process() { Stop(std::chrono::seconds(5)); }

int Process::Wait(std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (!exited_) {
    if (waitpid(pid_, &status_, WNOHANG) == pid_) {
      exited_ = true;
      break;
    }
    if (std::chrono::steady_clock::now() >= end) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status_;
}

int Process::Stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  if (!exited_) kill(pid_, SIGTERM);
  if (Wait(grace) == -1) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
    exited_ = true;
  }
  return status_;
}

int RunToCompletion(const std::string& binary, const std::vector<std::string>& args,
                    const std::string& log_path, std::chrono::milliseconds timeout,
                    const std::string& netns) {
  Process p(binary, args, log_path, netns);
  int status = p.Wait(timeout);
  if (status == -1) {
    p.Stop(std::chrono::seconds(15));
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<nlohmann::json> LogLines(const std::string& log_path, const std::string& msg) {
  std::vector<nlohmann::json> out;
  std::istringstream lines(ReadFile(log_path));
  std::string line;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object() && j.value("msg", "") == msg) out.push_back(std::move(j));
  }
  return out;
}

std::string WaitForLogField(const std::string& log_path, const std::string& msg,
                            const std::string& key, std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    for (const nlohmann::json& j : LogLines(log_path, msg)) {
      if (j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return "";
}

v1::Trajectory TicTacToeTrajectory(uint64_t sequence, int action) {
  v1::Trajectory t;
  t.set_game("tictactoe");
  if (sequence != 0) {  // keyed: one producer, "test" in incarnation 1; 0: keyless
    t.set_actor_id("test");
    t.set_incarnation(1);
    t.set_sequence(sequence);
  }
  t.add_learning_seats(0);
  t.add_learning_seats(1);
  t.add_returns(0);
  t.add_returns(0);
  v1::Turn* turn = t.add_turns();
  for (int i = 0; i < 27; ++i) turn->add_observation(i >= 18 ? 1.f : 0.f);
  for (int a = 0; a < 9; ++a) turn->add_legal_actions(a);
  turn->set_action(action);
  turn->add_behaviour_log_probs(-2.2f);
  return t;
}

std::string WaitForPortFile(const std::string& file, std::chrono::milliseconds timeout) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    std::string p = ReadFile(file);
    if (!p.empty() && p.back() == '\n') return p.substr(0, p.size() - 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return "";
}

std::string HttpGet(const std::string& address, const std::string& path) {
  size_t colon = address.rfind(':');
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &addr.sin_addr);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + address + "\r\n\r\n";
  send(fd, req.data(), req.size(), 0);
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  size_t body = resp.find("\r\n\r\n");
  return body == std::string::npos ? "" : resp.substr(body + 4);
}

std::optional<v1::SampleResponse> SampleOnce(v1::ReplayService::Stub& stub,
                                             const std::string& table, int batch_size,
                                             bool accept_zstd, std::chrono::milliseconds timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  auto stream = stub.Sample(&ctx);
  v1::SampleRequest req;
  req.set_table(table);
  req.set_batch_size(batch_size);
  req.set_credits(1);
  req.set_accept_zstd(accept_zstd);
  v1::SampleResponse batch;
  bool got = stream->Write(req) && stream->Read(&batch);
  stream->WritesDone();
  stream->Finish();
  if (!got) return std::nullopt;
  return batch;
}

}  // namespace rally::testing

namespace rally::testing {

double MetricValue(const std::string& exposition, const std::string& series) {
  const std::string line = "\n" + series + " ";
  const size_t at = ("\n" + exposition).find(line);
  if (at == std::string::npos) return -1;
  return std::strtod(exposition.c_str() + at + series.size() + 1, nullptr);
}

bool HealthServing(const std::string& address, const std::string& service) {
  auto health = grpc::health::v1::Health::NewStub(MakeChannel(address));
  grpc::ClientContext ctx;
  ctx.set_deadline(DeadlineIn(std::chrono::seconds(5)));
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  return health->Check(&ctx, req, &resp).ok() &&
         resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

}  // namespace rally::testing
