#include "common/net/worker_flags.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "common/net/tls.h"

ABSL_FLAG(std::string, control, "127.0.0.1:7070", "host:port of rally-control (env RALLY_CONTROL)");
ABSL_FLAG(std::string, host, "127.0.0.1",
          "address the gRPC and metrics servers bind to (env RALLY_HOST)");
ABSL_FLAG(std::string, advertise_host, "",
          "host other processes use to reach this one; default: --host (env "
          "RALLY_ADVERTISE_HOST, e.g. the pod IP)");
ABSL_FLAG(int, port, 0, "gRPC port; 0 picks a free port");
ABSL_FLAG(int, metrics_port, 0, "Prometheus /metrics port; 0 picks a free port");
ABSL_FLAG(std::string, name, "", "worker name in logs and in control");

namespace rally {

void ParseWorkerFlags(int argc, char** argv, const char* usage) {
  absl::SetProgramUsageMessage(usage);
  if (const char* v = std::getenv("RALLY_CONTROL")) absl::SetFlag(&FLAGS_control, v);
  if (const char* v = std::getenv("RALLY_HOST")) absl::SetFlag(&FLAGS_host, v);
  if (const char* v = std::getenv("RALLY_ADVERTISE_HOST")) absl::SetFlag(&FLAGS_advertise_host, v);
  SetTlsFlagsFromEnvironment();
  absl::ParseCommandLine(argc, argv);
  if (absl::Status s = InstallTransportSecurityFromFlags(absl::GetFlag(FLAGS_host)); !s.ok()) {
    const char* slash = argc > 0 ? std::strrchr(argv[0], '/') : nullptr;
    const char* program = slash != nullptr ? slash + 1 : (argc > 0 ? argv[0] : "rally");
    std::fprintf(stderr, "%s: %s\n", program, std::string(s.message()).c_str());
    std::exit(1);
  }
}

std::string AdvertisedAddress(int port) {
  std::string host = absl::GetFlag(FLAGS_advertise_host);
  if (host.empty()) host = absl::GetFlag(FLAGS_host);
  if (host == "0.0.0.0") host = "127.0.0.1";
  return absl::StrCat(host, ":", port);
}

}  // namespace rally
