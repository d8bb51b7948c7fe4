#include "common/metrics/metrics.h"

#include <dlfcn.h>

#include <exception>

#include "absl/strings/str_cat.h"
#include "common/metrics/process_metrics.h"

namespace rally {
namespace {

// Why the HTTP server may have failed to start, when it can be told.
std::string Hint() {
  // civetweb starts its threads with 100 KB stacks, and glibc takes the process's static TLS out
  // of each: OpenBLAS's 60 KB, with what LibTorch loads besides, leaves too little.
  if (dlsym(RTLD_DEFAULT, "openblas_get_config") != nullptr) {
    return " (OpenBLAS is loaded: its thread-local storage leaves the HTTP server's 100 KB thread "
           "stacks too small; let BLIS provide libblas.so.3 instead, see "
           "deploy/local/install-deps.sh)";
  }
  return "";
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& host,
                                                                    int port) {
  std::unique_ptr<MetricsServer> server(new MetricsServer());
  try {
    server->exposer_ = std::make_unique<prometheus::Exposer>(absl::StrCat(host, ":", port));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", host, ":", port, ": ", e.what(), Hint()));
  }
  server->registry_ = std::make_shared<prometheus::Registry>();
  server->exposer_->RegisterCollectable(server->registry_);
  server->process_registry_ = ProcessRegistry();
  server->exposer_->RegisterCollectable(server->process_registry_);
  server->process_collector_ = std::make_shared<ProcessCollector>();
  server->exposer_->RegisterCollectable(server->process_collector_);
  auto ports = server->exposer_->GetListeningPorts();
  if (ports.empty()) return absl::UnavailableError("metrics exposer has no listening port");
  server->port_ = ports.front();
  server->address_ = absl::StrCat(host == "0.0.0.0" ? "127.0.0.1" : host, ":", server->port_);
  return server;
}

prometheus::Counter& AddCounter(prometheus::Registry& registry, const std::string& name,
                                const std::string& help, const prometheus::Labels& labels) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add(labels);
}

prometheus::Gauge& AddGauge(prometheus::Registry& registry, const std::string& name,
                            const std::string& help, const prometheus::Labels& labels) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add(labels);
}

prometheus::Histogram& AddHistogram(prometheus::Registry& registry, const std::string& name,
                                    const std::string& help,
                                    const prometheus::Histogram::BucketBoundaries& buckets,
                                    const prometheus::Labels& labels) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry).Add(labels, buckets);
}

}  // namespace rally
