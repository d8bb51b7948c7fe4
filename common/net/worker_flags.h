// Flags every worker process takes. Cluster settings come from flags (or the environment
// variables the Kubernetes manifests set: RALLY_CONTROL, RALLY_HOST, RALLY_ADVERTISE_HOST,
// RALLY_TLS_CERT, RALLY_TLS_KEY, RALLY_TLS_CA), transport security from --tls_cert, --tls_key,
// --tls_ca and --insecure (common/net/tls.h).
#pragma once

#include <string>

#include "absl/flags/declare.h"

ABSL_DECLARE_FLAG(std::string, control);
ABSL_DECLARE_FLAG(std::string, host);
ABSL_DECLARE_FLAG(std::string, advertise_host);
ABSL_DECLARE_FLAG(int, port);
ABSL_DECLARE_FLAG(int, metrics_port);
ABSL_DECLARE_FLAG(std::string, name);

namespace rally {

// Applies RALLY_* environment variables to flags left at their defaults, parses argv, and
// installs the process's transport security for servers on --host. Like absl's parser on a bad
// flag, prints why and exits (status 1) when the TLS files cannot be used or --host is beyond
// loopback without TLS or --insecure.
void ParseWorkerFlags(int argc, char** argv, const char* usage);
// host:port under which other processes reach a server of this process bound to `port`.
std::string AdvertisedAddress(int port);

}  // namespace rally
