#include "common/net/tls.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/net/openssl.h"

ABSL_FLAG(std::string, tls_cert, "",
          "mutual TLS: this process's certificate, PEM (env RALLY_TLS_CERT); with --tls_key and "
          "--tls_ca. `rally certs init DIR` makes one per component");
ABSL_FLAG(std::string, tls_key, "",
          "mutual TLS: the private key of --tls_cert, PEM, unencrypted (env RALLY_TLS_KEY)");
ABSL_FLAG(std::string, tls_ca, "",
          "mutual TLS: the CA certificate that every peer's certificate must chain to "
          "(env RALLY_TLS_CA)");
ABSL_FLAG(bool, insecure, false,
          "listen beyond loopback (e.g. --host=0.0.0.0) in plain text, without TLS: anyone who "
          "reaches the port can call every API");

namespace rally {
namespace {

absl::StatusOr<std::string> ReadFlagFile(absl::string_view flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " ", path, ": cannot read it: ", std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// OK if `chain` (a leaf, then any intermediates) chains to one of `roots` and is valid now.
absl::Status VerifyChain(const std::vector<X509Ptr>& chain, const std::vector<X509Ptr>& roots,
                         const TlsFiles& files) {
  X509StorePtr store(X509_STORE_new());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  STACK_OF(X509)* intermediates = sk_X509_new_null();
  if (store == nullptr || ctx == nullptr || intermediates == nullptr) {
    sk_X509_free(intermediates);
    return absl::ResourceExhaustedError("out of memory while checking the TLS certificate");
  }
  for (const X509Ptr& root : roots) X509_STORE_add_cert(store.get(), root.get());
  for (size_t i = 1; i < chain.size(); ++i) sk_X509_push(intermediates, chain[i].get());
  int ok = X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), intermediates);
  if (ok == 1) ok = X509_verify_cert(ctx.get());
  const int error = X509_STORE_CTX_get_error(ctx.get());
  sk_X509_free(intermediates);  // the certificates stay owned by `chain`
  TakeOpenSslError();
  if (ok == 1) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--tls_cert ", files.cert, " is not a valid certificate of --tls_ca ", files.ca,
                   ": ", X509_verify_cert_error_string(error)));
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const std::string& cert_pem,
                                                               const std::string& key_pem,
                                                               const std::string& ca_pem) {
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = ca_pem;
  options.pem_key_cert_pairs.push_back({key_pem, cert_pem});
  return grpc::SslServerCredentials(options);
}

// Verifies the server's chain against the CA, not its name (see the header).
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const std::string& cert_pem,
                                                                 const std::string& key_pem,
                                                                 const std::string& ca_pem) {
  using namespace grpc::experimental;
  auto provider = std::make_shared<StaticDataCertificateProvider>(
      ca_pem, std::vector<IdentityKeyCertPair>{{key_pem, cert_pem}});
  TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_root_certs();
  options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(true);
  options.set_certificate_verifier(std::make_shared<NoOpCertificateVerifier>());
  options.set_check_call_host(false);
  return grpc::experimental::TlsCredentials(options);
}

ABSL_CONST_INIT absl::Mutex current_mu(absl::kConstInit);
TransportSecurity* current ABSL_GUARDED_BY(current_mu) = nullptr;

}  // namespace

TransportSecurity TransportSecurity::PlainText(bool allow_beyond_loopback) {
  auto state = std::make_shared<State>();
  state->allow_beyond_loopback = allow_beyond_loopback;
  return TransportSecurity(std::move(state));
}

absl::StatusOr<TransportSecurity> TransportSecurity::MutualTls(const TlsFiles& files) {
  std::vector<std::string> missing;
  if (files.cert.empty()) missing.push_back("--tls_cert");
  if (files.key.empty()) missing.push_back("--tls_key");
  if (files.ca.empty()) missing.push_back("--tls_ca");
  if (!missing.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("mutual TLS needs --tls_cert, --tls_key and --tls_ca together; missing ",
                     absl::StrJoin(missing, ", ")));
  }
  auto cert_pem = ReadFlagFile("tls_cert", files.cert);
  if (!cert_pem.ok()) return cert_pem.status();
  auto key_pem = ReadFlagFile("tls_key", files.key);
  if (!key_pem.ok()) return key_pem.status();
  auto ca_pem = ReadFlagFile("tls_ca", files.ca);
  if (!ca_pem.ok()) return ca_pem.status();
  std::vector<X509Ptr> chain = ParseCertificates(*cert_pem);
  if (chain.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_cert ", files.cert, ": no PEM certificate in it"));
  }
  EvpPkeyPtr key = ParsePrivateKey(*key_pem);
  TakeOpenSslError();
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_key ", files.key, ": no unencrypted PEM private key in it"));
  }
  std::vector<X509Ptr> roots = ParseCertificates(*ca_pem);
  if (roots.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_ca ", files.ca, ": no PEM certificate in it"));
  }
  if (X509_check_private_key(chain[0].get(), key.get()) != 1) {
    TakeOpenSslError();
    return absl::InvalidArgumentError(
        absl::StrCat("--tls_key ", files.key, " is not the key of --tls_cert ", files.cert));
  }
  if (absl::Status s = VerifyChain(chain, roots, files); !s.ok()) return s;
  auto state = std::make_shared<State>();
  state->tls = true;
  state->component = CommonName(chain[0].get());
  state->cert_pem = *std::move(cert_pem);
  state->key_pem = *std::move(key_pem);
  state->ca_pem = *std::move(ca_pem);
  return TransportSecurity(std::move(state));
}

std::string TransportSecurity::Description() const {
  if (!tls()) return "plain text";
  return absl::StrCat("mutual TLS as ", component().empty() ? "(no CN)" : component());
}

std::shared_ptr<grpc::ServerCredentials> TransportSecurity::ServerCredentials() const {
  const State& s = *state_;
  absl::MutexLock lock(&s.mu);
  if (s.server == nullptr) {
    s.server = s.tls ? MakeServerCredentials(s.cert_pem, s.key_pem, s.ca_pem)
                     : grpc::InsecureServerCredentials();
  }
  return s.server;
}

std::shared_ptr<grpc::ChannelCredentials> TransportSecurity::ChannelCredentials() const {
  const State& s = *state_;
  absl::MutexLock lock(&s.mu);
  if (s.channel == nullptr) {
    s.channel = s.tls ? MakeChannelCredentials(s.cert_pem, s.key_pem, s.ca_pem)
                      : grpc::InsecureChannelCredentials();
  }
  return s.channel;
}

void SetTransportSecurity(TransportSecurity security) {
  absl::MutexLock lock(&current_mu);
  delete current;
  current = new TransportSecurity(std::move(security));
}

TransportSecurity CurrentTransportSecurity() {
  absl::MutexLock lock(&current_mu);
  if (current == nullptr) current = new TransportSecurity(TransportSecurity::PlainText());
  return *current;
}

bool IsLoopbackHost(absl::string_view host) {
  return host == "127.0.0.1" || host == "::1" || host == "[::1]" ||
         absl::EqualsIgnoreCase(host, "localhost");
}

absl::Status CheckListenHost(absl::string_view host, const TransportSecurity& security) {
  if (IsLoopbackHost(host) || security.allows_beyond_loopback()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "refusing to listen on ", host,
      " in plain text: anyone who reaches the port could call every rally API. Give "
      "--tls_cert, --tls_key and --tls_ca for mutual TLS (`rally certs init DIR` makes them), "
      "or --insecure to listen in plain text anyway"));
}

void SetTlsFlagsFromEnvironment() {
  if (const char* v = std::getenv("RALLY_TLS_CERT")) absl::SetFlag(&FLAGS_tls_cert, v);
  if (const char* v = std::getenv("RALLY_TLS_KEY")) absl::SetFlag(&FLAGS_tls_key, v);
  if (const char* v = std::getenv("RALLY_TLS_CA")) absl::SetFlag(&FLAGS_tls_ca, v);
}

absl::Status InstallTransportSecurityFromFlags(absl::string_view listen_host) {
  const TlsFiles files{absl::GetFlag(FLAGS_tls_cert), absl::GetFlag(FLAGS_tls_key),
                       absl::GetFlag(FLAGS_tls_ca)};
  absl::StatusOr<TransportSecurity> security =
      files.empty() ? TransportSecurity::PlainText(absl::GetFlag(FLAGS_insecure))
                    : TransportSecurity::MutualTls(files);
  if (!security.ok()) return security.status();
  if (!listen_host.empty()) {
    if (absl::Status s = CheckListenHost(listen_host, *security); !s.ok()) return s;
  }
  SetTransportSecurity(*std::move(security));
  return absl::OkStatus();
}

std::string PeerComponent(const grpc::ServerContextBase& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return "";
  std::vector<grpc::string_ref> names = auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
  if (names.empty()) return "";
  return std::string(names.front().data(), names.front().size());
}

}  // namespace rally
