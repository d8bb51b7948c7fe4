// Flags every worker process takes. Cluster settings come from flags (or the environment
// variables the Kubernetes manifests set: RALLY_CONTROL, RALLY_HOST, RALLY_ADVERTISE_HOST).
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

// Applies RALLY_* environment variables to flags left at their defaults, then parses argv.
void ParseWorkerFlags(int argc, char** argv, const char* usage);
// host:port under which other processes reach a server of this process bound to `port`.
std::string AdvertisedAddress(int port);

}  // namespace rally
