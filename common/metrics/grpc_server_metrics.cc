#include "common/metrics/grpc_server_metrics.h"

#include <google/protobuf/descriptor.h>

#include <array>
#include <atomic>
#include <chrono>

#include "absl/strings/str_cat.h"

namespace rally {
namespace {

using grpc::experimental::InterceptionHookPoints;
using grpc::experimental::ServerRpcInfo;

std::string TypeName(ServerRpcInfo::Type type) {
  switch (type) {
    case ServerRpcInfo::Type::UNARY:
      return "unary";
    case ServerRpcInfo::Type::CLIENT_STREAMING:
      return "client_stream";
    case ServerRpcInfo::Type::SERVER_STREAMING:
      return "server_stream";
    case ServerRpcInfo::Type::BIDI_STREAMING:
      return "bidi_stream";
  }
  return "unknown";
}

// One call: counted as started when made, as handled (with its code and duration) when the server
// sends its status, or as CANCELLED if it ends without one.
class ServerMetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  ServerMetricsInterceptor(prometheus::Labels labels,
                           prometheus::Family<prometheus::Counter>& handled,
                           prometheus::Histogram& handling_seconds)
      : labels_(std::move(labels)), handled_(handled), handling_seconds_(handling_seconds) {}

  ~ServerMetricsInterceptor() override { Record(grpc::StatusCode::CANCELLED); }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Record(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  // Records the call once: the first of its status and its end. gRPC may run a call's hooks and
  // destroy the interceptor on different threads, hence the atomic.
  void Record(grpc::StatusCode code) {
    if (recorded_.exchange(true, std::memory_order_acq_rel)) return;
    prometheus::Labels labels = labels_;
    labels["grpc_code"] = GrpcCodeName(code);
    handled_.Add(labels).Increment();
    handling_seconds_.Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count());
  }

  const prometheus::Labels labels_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Histogram& handling_seconds_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::atomic<bool> recorded_{false};
};

}  // namespace

std::pair<std::string, std::string> GrpcMethodLabels(absl::string_view path) {
  // "/package.Service/Method"
  const size_t slash = path.rfind('/');
  if (path.size() < 4 || path[0] != '/' || slash == 0 || slash + 1 == path.size()) {
    return {"unknown", "unknown"};
  }
  std::string service(path.substr(1, slash - 1));
  std::string method(path.substr(slash + 1));
  const google::protobuf::MethodDescriptor* found =
      google::protobuf::DescriptorPool::generated_pool()->FindMethodByName(
          absl::StrCat(service, ".", method));
  if (found == nullptr || found->service()->full_name() != service) return {"unknown", "unknown"};
  return {service, method};
}

std::string GrpcCodeName(int code) {
  static constexpr std::array<const char*, 17> kNames = {"OK",
                                                         "CANCELLED",
                                                         "UNKNOWN",
                                                         "INVALID_ARGUMENT",
                                                         "DEADLINE_EXCEEDED",
                                                         "NOT_FOUND",
                                                         "ALREADY_EXISTS",
                                                         "PERMISSION_DENIED",
                                                         "RESOURCE_EXHAUSTED",
                                                         "FAILED_PRECONDITION",
                                                         "ABORTED",
                                                         "OUT_OF_RANGE",
                                                         "UNIMPLEMENTED",
                                                         "INTERNAL",
                                                         "UNAVAILABLE",
                                                         "DATA_LOSS",
                                                         "UNAUTHENTICATED"};
  if (code < 0 || code >= static_cast<int>(kNames.size())) return "UNKNOWN";
  return kNames[code];
}

const prometheus::Histogram::BucketBoundaries& GrpcHandlingBuckets() {
  static const auto* const buckets = new prometheus::Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
  return *buckets;
}

ServerMetricsInterceptorFactory::ServerMetricsInterceptorFactory(prometheus::Registry& registry)
    : started_(prometheus::BuildCounter()
                   .Name("grpc_server_started_total")
                   .Help("gRPC calls started on the server, by method.")
                   .Register(registry)),
      handled_(prometheus::BuildCounter()
                   .Name("grpc_server_handled_total")
                   .Help("gRPC calls finished on the server, by method and status code.")
                   .Register(registry)),
      handling_seconds_(prometheus::BuildHistogram()
                            .Name("grpc_server_handling_seconds")
                            .Help("Time from a gRPC call's start to its status (a stream's "
                                  "lifetime), by method.")
                            .Register(registry)) {}

grpc::experimental::Interceptor* ServerMetricsInterceptorFactory::CreateServerInterceptor(
    ServerRpcInfo* info) {
  auto [service, method] = GrpcMethodLabels(info->method());
  prometheus::Labels labels = {
      {"grpc_service", service}, {"grpc_method", method}, {"grpc_type", TypeName(info->type())}};
  started_.Add(labels).Increment();
  prometheus::Histogram& seconds = handling_seconds_.Add(labels, GrpcHandlingBuckets());
  return new ServerMetricsInterceptor(std::move(labels), handled_, seconds);
}

}  // namespace rally
