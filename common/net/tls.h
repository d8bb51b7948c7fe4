// Transport security of every rally gRPC server and channel: plain text, or mutual TLS in which
// every process presents a certificate signed by the cluster's CA and checks its peer's against
// the same CA (`rally certs init DIR` makes the CA and one certificate per component).
//
// One setting per process (SetTransportSecurity), read by GrpcServer::Start and MakeChannel
// (common/net/server.h), so that no call site names credentials:
// - Servers (grpc::SslServerCredentials) require a client certificate and verify it against the
//   CA: a client without one, with one from another CA, or in plain text is refused during the
//   handshake (the client sees UNAVAILABLE).
// - Channels (TlsCredentials) present this process's certificate and verify the server's chain
//   against the CA. They do not match the server's certificate to the address dialled: workers
//   advertise addresses (Kubernetes pod IPs) that no certificate can name in advance. Any holder
//   of a certificate from the CA is therefore trusted as a server: the CA must sign rally's
//   certificates only (never use a company-wide or public CA).
// - A certificate's subject CN names its component (kRallyComponents); PeerComponent() reads the
//   caller's on the server side, for checks of who may call what.
//
// Plain text is the default only on loopback: a process whose servers listen beyond it needs TLS
// or an explicit --insecure (CheckListenHost, enforced at flag parsing and in GrpcServer::Start).
//
// Flags (every rally binary): --tls_cert, --tls_key, --tls_ca (env RALLY_TLS_CERT, RALLY_TLS_KEY,
// RALLY_TLS_CA; all three or none) and --insecure. Files are read once, at start: rotating a
// certificate means restarting the process.
//
// Thread safety: every function may be called from any thread; a process sets its security once in
// main, before it starts a server or makes a channel. Making a TransportSecurity starts no thread
// (gRPC's credentials, which start gRPC's threads, are made at their first use), so a process may
// set it before InstallShutdownHandlers (common/util/shutdown.h).
#pragma once

#include <grpcpp/grpcpp.h>

#include <array>
#include <memory>
#include <string>

#include "absl/flags/declare.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);
ABSL_DECLARE_FLAG(std::string, tls_ca);
ABSL_DECLARE_FLAG(bool, insecure);

namespace rally {

// The subject CNs of rally's certificates: one per kind of process, and "client" for the CLI.
inline constexpr std::array<absl::string_view, 6> kRallyComponents = {
    "control", "replay", "learner", "actor", "evaluator", "client"};

// The PEM files of a process's TLS identity.
struct TlsFiles {
  std::string cert;  // this process's certificate (a chain is allowed: leaf first)
  std::string key;   // its private key, unencrypted
  std::string ca;    // the CA certificate(s) that every peer's certificate must chain to

  bool empty() const { return cert.empty() && key.empty() && ca.empty(); }
};

// A process's transport security: plain text (the default) or mutual TLS. Cheap to copy; each
// kind of credentials is made once, at first use, and shared by the copies, so that channels to one
// address share a connection.
class TransportSecurity {
 public:
  // Plain text. `allow_beyond_loopback`: --insecure, servers may listen on any address.
  static TransportSecurity PlainText(bool allow_beyond_loopback = false);
  // Reads and checks `files`: each readable PEM, the key belongs to the certificate, the
  // certificate chains to the CA and is valid now. Errors name the flag and the file
  // ("--tls_key /etc/rally/replay.key: ...").
  static absl::StatusOr<TransportSecurity> MutualTls(const TlsFiles& files);

  bool tls() const { return state_->tls; }
  // Whether servers may listen beyond loopback: with TLS, or plain text under --insecure.
  bool allows_beyond_loopback() const { return state_->tls || state_->allow_beyond_loopback; }
  // The subject CN of this process's certificate; "" in plain text.
  const std::string& component() const { return state_->component; }
  // "mutual TLS as replay" or "plain text", for logs.
  std::string Description() const;

  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() const;
  std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials() const;

 private:
  struct State {
    bool tls = false;
    bool allow_beyond_loopback = false;
    std::string component;
    std::string cert_pem, key_pem, ca_pem;  // with TLS
    mutable absl::Mutex mu;
    mutable std::shared_ptr<grpc::ServerCredentials> server ABSL_GUARDED_BY(mu);
    mutable std::shared_ptr<grpc::ChannelCredentials> channel ABSL_GUARDED_BY(mu);
  };
  explicit TransportSecurity(std::shared_ptr<const State> state) : state_(std::move(state)) {}
  std::shared_ptr<const State> state_;
};

// The process-wide setting (plain text, loopback only, until set).
void SetTransportSecurity(TransportSecurity security);
TransportSecurity CurrentTransportSecurity();

// Whether `host` (an address to bind) is loopback: 127.0.0.1, ::1 ([::1]) or localhost.
bool IsLoopbackHost(absl::string_view host);
// OK if servers of a process with `security` may listen on `host`; otherwise
// FAILED_PRECONDITION saying that a plain-text listener beyond loopback needs TLS or --insecure.
absl::Status CheckListenHost(absl::string_view host, const TransportSecurity& security);

// Sets --tls_cert, --tls_key and --tls_ca from RALLY_TLS_CERT, RALLY_TLS_KEY and RALLY_TLS_CA
// where those are set. Call before absl::ParseCommandLine, so that the command line wins.
void SetTlsFlagsFromEnvironment();
// After flag parsing: makes the process's TransportSecurity from --tls_cert, --tls_key, --tls_ca
// and --insecure, checks that its servers may listen on `listen_host` ("" for a process that
// listens nowhere, e.g. the CLI), and installs it. On error nothing is installed and the process
// should exit non-zero with the message.
absl::Status InstallTransportSecurityFromFlags(absl::string_view listen_host);

// The subject CN of the certificate the caller of `context` presented ("control", "actor", ...);
// "" in plain text.
std::string PeerComponent(const grpc::ServerContextBase& context);

}  // namespace rally
