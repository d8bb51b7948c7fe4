// Starting and stopping a gRPC server the way every rally process does: the standard health
// service on, one listening address (port 0 picks a free port), and a graceful shutdown that
// lets in-flight calls finish for a bounded time. Servers and channels use the process's transport
// security (plain text or mutual TLS, common/net/tls.h).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace rally {

class GrpcServer {
 public:
  // Binds `host:port` (port 0 = any free port) and starts serving `services`, which must outlive
  // the server. FAILED_PRECONDITION for a host beyond loopback in plain text without --insecure
  // (CheckListenHost).
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Start(
      const std::string& host, int port, const std::vector<grpc::Service*>& services);
  ~GrpcServer();

  int port() const { return port_; }
  // host:port that clients use to reach this server.
  std::string address() const { return address_; }
  // Sets the standard health service's status of `service` (a name of the process's choosing;
  // "" is the whole server, SERVING from the start).
  void SetServing(const std::string& service, bool serving);
  // Marks the server NOT_SERVING, then shuts down: calls still running after `grace` are
  // cancelled. Idempotent.
  void Shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));

 private:
  GrpcServer() = default;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string address_;
  bool shut_down_ = false;
};

// A channel to `address` with the settings rally uses everywhere (large messages, keepalive).
// Channels to one address share a TCP connection unless `own_connection`: bulk streams (an
// actor's inserts) take their own, so that they neither queue behind nor slow the small calls
// on the shared one, and the server reads them on a poller of their own.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, bool own_connection = false);

// Deadline `timeout` from now, for ClientContext::set_deadline.
std::chrono::system_clock::time_point DeadlineIn(std::chrono::milliseconds timeout);

// Polls the standard health service at `address` until it answers SERVING or `timeout` passes.
absl::Status WaitForServing(const std::string& address, std::chrono::milliseconds timeout);

// Converts between grpc::Status and absl::Status (same code numbers).
absl::Status FromGrpc(const grpc::Status& status);
grpc::Status ToGrpc(const absl::Status& status);

// Largest message any rally server or client accepts.
inline constexpr int kMaxMessageBytes = 64 << 20;

}  // namespace rally
