#include "common/net/free_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <random>
#include <set>

namespace rally {
namespace {

constexpr int kLowestPort = 10000;
constexpr int kTries = 200;

bool CanBind(const std::string& host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = inet_pton(AF_INET, host.c_str(), &addr.sin_addr) == 1 &&
            bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

}  // namespace

int EphemeralPortsStart() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  if (in >> low && low > kLowestPort) return low;
  return 32768;
}

int FreePort(const std::string& host) {
  static std::mutex mu;
  static std::set<int>* handed_out = new std::set<int>;
  static std::mt19937 rng{std::random_device{}()};
  std::lock_guard lock(mu);
  std::uniform_int_distribution<int> pick(kLowestPort, EphemeralPortsStart() - 1);
  for (int i = 0; i < kTries; ++i) {
    int port = pick(rng);
    if (handed_out->contains(port) || !CanBind(host, port)) continue;
    handed_out->insert(port);
    return port;
  }
  return 0;
}

}  // namespace rally
