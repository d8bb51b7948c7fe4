// The Prometheus endpoint of a rally process: one registry, served at http://host:port/metrics.
// Metric names follow rally_<component>_<quantity>_<unit>; labels stay bounded (game, role,
// table, opponent kind; never ids). docs/metrics.md lists every metric a rally process exports.
//
// Besides its own registry, every MetricsServer serves the process's (common/metrics/
// process_metrics.h): the standard process_* metrics, rally_build_info and the gRPC server
// metrics (common/metrics/grpc_server_metrics.h), so no service registers those itself.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace rally {

class MetricsServer {
 public:
  // Serves the registry on host:port (port 0 = any free port).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& host, int port);

  prometheus::Registry& registry() { return *registry_; }
  int port() const { return port_; }
  std::string address() const { return address_; }

 private:
  MetricsServer() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<prometheus::Registry> process_registry_;
  std::shared_ptr<prometheus::Collectable> process_collector_;
  int port_ = 0;
  std::string address_;
};

// Shorthands for the common "one metric, one series" case.
prometheus::Counter& AddCounter(prometheus::Registry& registry, const std::string& name,
                                const std::string& help, const prometheus::Labels& labels = {});
prometheus::Gauge& AddGauge(prometheus::Registry& registry, const std::string& name,
                            const std::string& help, const prometheus::Labels& labels = {});
prometheus::Histogram& AddHistogram(prometheus::Registry& registry, const std::string& name,
                                    const std::string& help,
                                    const prometheus::Histogram::BucketBoundaries& buckets,
                                    const prometheus::Labels& labels = {});

}  // namespace rally
