// FreePort on this machine's loopback: ports below the ephemeral range that can be bound.
#include "common/net/free_port.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>

namespace rally {
namespace {

TEST(FreePort, HandsOutDistinctBindablePortsBelowTheEphemeralRange) {
  const int ephemeral = EphemeralPortsStart();
  ASSERT_GT(ephemeral, 10000);
  std::set<int> seen;
  for (int i = 0; i < 50; ++i) {
    int port = FreePort();
    ASSERT_GE(port, 10000);
    ASSERT_LT(port, ephemeral);
    EXPECT_TRUE(seen.insert(port).second) << "port " << port << " handed out twice";
  }
  // The last one can be listened on.
  int port = *seen.rbegin();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0) << port;
  EXPECT_EQ(listen(fd, 1), 0);
  close(fd);
}

}  // namespace
}  // namespace rally
