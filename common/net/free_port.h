// Picking a TCP port for a server that is started later by another process.
//
// A port that the kernel hands out for port 0 is in the ephemeral range
// (net.ipv4.ip_local_port_range), where the kernel may hand it again, to another server binding
// port 0 or to an outgoing connection, before the process it was picked for binds it. FreePort
// picks below that range, where the kernel never hands ports out by itself.
#pragma once

#include <string>

namespace rally {

// A port on which `host` (an IPv4 address) had nothing bound a moment ago, from [10000, the
// start of the ephemeral range), picked at random and never the same twice in one process.
// Returns 0 when none was found.
int FreePort(const std::string& host = "127.0.0.1");

// The first port of the kernel's ephemeral range (32768 when it cannot be read).
int EphemeralPortsStart();

}  // namespace rally
