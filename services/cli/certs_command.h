// `rally certs init DIR [--hosts h1,h2,...] [--days N] [--force]`: a private certificate
// authority and one certificate per rally component, for mutual TLS between a cluster's
// processes (common/net/tls.h).
//
// DIR receives ca.crt and ca.key, and for each component of kRallyComponents (control, replay,
// learner, actor, evaluator, client) <component>.crt and <component>.key. Keys are EC P-256,
// unencrypted PKCS #8 PEM, created with mode 0600 (never readable by others, not even while being
// written); certificates are PEM, mode 0644. The CA: subject CN "rally CA", basicConstraints
// CA:TRUE (critical), keyUsage keyCertSign and cRLSign. Each component's certificate, signed by
// the CA with SHA-256: subject CN = the component; subjectAltName DNS:localhost,
// DNS:rally-<component>, IP:127.0.0.1, IP:::1 and each of `hosts` (an IP address as an IP name,
// anything else as a DNS name, e.g. a Kubernetes Service's rally-control.rally.svc);
// extendedKeyUsage serverAuth and clientAuth; keyUsage digitalSignature (critical);
// basicConstraints CA:FALSE. Every certificate is valid from 5 minutes ago (clock skew between
// machines) for `days` days and has a random 128-bit serial number.
//
// An existing DIR/ca.key is never replaced unless `force`: the certificates it signed would stop
// being trusted by processes given the new CA.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace rally {

struct CertsOptions {
  std::string dir;
  std::vector<std::string> hosts;  // extra subjectAltNames of every component's certificate
  int days = 365;
  bool force = false;  // replace an existing CA
};

// Writes the files above. FAILED_PRECONDITION if DIR/ca.key exists and !force; INVALID_ARGUMENT
// for days < 1 or an empty host name; the error names the file that could not be written.
absl::Status InitCerts(const CertsOptions& options);

// `rally certs SUBCOMMAND ...` with `args` the words after "certs"; reads --hosts, --days and
// --force. Returns the exit status: 0, 1 with the error on stderr, 2 for bad usage.
int CertsCommand(const std::vector<std::string>& args);

}  // namespace rally
