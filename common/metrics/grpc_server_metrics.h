// Per-method gRPC server metrics, recorded by a server interceptor that GrpcServer::Start
// (common/net/server.h) installs on every rally server. Names and labels follow
// go-grpc-prometheus, which operators' dashboards already read:
//   grpc_server_started_total{grpc_service,grpc_method,grpc_type}            calls started
//   grpc_server_handled_total{grpc_service,grpc_method,grpc_type,grpc_code}  calls finished,
//       by status code name (OK, CANCELLED, UNAVAILABLE, ...)
//   grpc_server_handling_seconds{grpc_service,grpc_method,grpc_type}         histogram, from the
//       call's start to its status (for a stream: the stream's lifetime)
// grpc_type is unary, client_stream, server_stream or bidi_stream. Labels stay bounded: a method
// that is not in this binary's generated protobuf descriptors (a client asking for a method no
// service has) is counted as grpc_service="unknown", grpc_method="unknown".
//
// Thread safety: the factory and its interceptors may be used from any gRPC thread.
#pragma once

#include <grpcpp/support/server_interceptor.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace rally {

// Splits "/package.Service/Method" into {"package.Service", "Method"} when the method is in the
// generated descriptor pool; {"unknown", "unknown"} otherwise.
std::pair<std::string, std::string> GrpcMethodLabels(absl::string_view path);
// The name of a status code as gRPC spells it ("OK", "DEADLINE_EXCEEDED"); "UNKNOWN" for a
// number outside the enum.
std::string GrpcCodeName(int code);

// Creates the metric families in `registry` (which must outlive the factory and every call) and
// makes one interceptor per call.
class ServerMetricsInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ServerMetricsInterceptorFactory(prometheus::Registry& registry);
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Histogram>& handling_seconds_;
};

// Buckets of grpc_server_handling_seconds: 0.5 ms to 5 min.
const prometheus::Histogram::BucketBoundaries& GrpcHandlingBuckets();

}  // namespace rally
