#include "services/cli/certs_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/net/openssl.h"
#include "common/net/tls.h"

ABSL_FLAG(std::vector<std::string>, hosts, {},
          "certs init: extra host names or IP addresses of every component's certificate, "
          "comma-separated (e.g. Kubernetes Service names)");
ABSL_FLAG(int, days, 365, "certs init: how many days the CA and the certificates are valid");
ABSL_FLAG(bool, force, false, "certs init: replace an existing CA (DIR/ca.key)");

namespace rally {
namespace {

namespace fs = std::filesystem;

// How far back a certificate's validity starts, for clocks of other machines that lag.
constexpr long kClockSkewSeconds = 300;

// One subjectAltName: an IP address if `host` parses as one, else a DNS name.
absl::StatusOr<GENERAL_NAME*> AltName(const std::string& host) {
  if (ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str())) {
    GENERAL_NAME* name = GENERAL_NAME_new();
    GENERAL_NAME_set0_value(name, GEN_IPADD, ip);
    return name;
  }
  TakeOpenSslError();
  const bool dns =
      !host.empty() && host.size() <= 253 && std::all_of(host.begin(), host.end(), [](char c) {
        return absl::ascii_isalnum(c) || c == '.' || c == '-' || c == '*';
      });
  if (!dns) {
    return absl::InvalidArgumentError(
        absl::StrCat("--hosts: '", host, "' is neither an IP address nor a DNS name"));
  }
  ASN1_IA5STRING* text = ASN1_IA5STRING_new();
  ASN1_STRING_set(text, host.data(), static_cast<int>(host.size()));
  GENERAL_NAME* name = GENERAL_NAME_new();
  GENERAL_NAME_set0_value(name, GEN_DNS, text);
  return name;
}

absl::Status AddAltNames(X509* cert, const std::vector<std::string>& hosts) {
  GeneralNamesPtr names(GENERAL_NAMES_new());
  for (const std::string& host : hosts) {
    auto name = AltName(host);
    if (!name.ok()) return name.status();
    sk_GENERAL_NAME_push(names.get(), *name);
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return absl::InternalError(absl::StrCat("subjectAltName: ", TakeOpenSslError()));
  }
  return absl::OkStatus();
}

// Adds extensions written as OpenSSL's configuration values ("critical,CA:TRUE"), each computed
// with `issuer` (for the authority key identifier).
absl::Status AddExtensions(X509* cert, X509* issuer,
                           const std::vector<std::pair<int, const char*>>& extensions) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  for (const auto& [nid, value] : extensions) {
    X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    if (ext == nullptr || X509_add_ext(cert, ext.get(), -1) != 1) {
      return absl::InternalError(
          absl::StrCat(OBJ_nid2sn(nid), "=", value, ": ", TakeOpenSslError()));
    }
  }
  return absl::OkStatus();
}

// A certificate for `key` with subject CN `cn`, valid for `days`, not yet signed. Its issuer is
// `issuer`'s subject, or its own for a self-signed one (`issuer` null).
absl::StatusOr<X509Ptr> NewCertificate(const std::string& cn, EVP_PKEY* key, X509* issuer,
                                       int days) {
  X509Ptr cert(X509_new());
  BignumPtr serial(BN_new());
  if (cert == nullptr || serial == nullptr ||
      BN_rand(serial.get(), 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr ||
      X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kClockSkewSeconds) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), days, 0, nullptr) == nullptr ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return absl::InternalError(absl::StrCat("certificate ", cn, ": ", TakeOpenSslError()));
  }
  X509_NAME* subject = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer) : subject);
  return cert;
}

absl::Status Sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) {
    return absl::InternalError(absl::StrCat("signing: ", TakeOpenSslError()));
  }
  return absl::OkStatus();
}

// Writes `data` to `path` through a new file of mode `mode` renamed over it, so that the file is
// never readable beyond `mode`, not even while it is written.
absl::Status WriteFile(const fs::path& path, const std::string& data, mode_t mode) {
  const std::string tmp = path.string() + ".tmp";
  unlink(tmp.c_str());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  bool ok = fd >= 0 && fchmod(fd, mode) == 0;
  for (size_t done = 0; ok && done < data.size();) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  const int error = errno;
  if (fd >= 0) ok = close(fd) == 0 && ok;
  if (ok && rename(tmp.c_str(), path.c_str()) == 0) return absl::OkStatus();
  unlink(tmp.c_str());
  return absl::UnavailableError(
      absl::StrCat("cannot write ", path.string(), ": ", std::strerror(ok ? errno : error)));
}

absl::Status WriteKeyAndCertificate(const fs::path& dir, const std::string& name, EVP_PKEY* key,
                                    X509* cert) {
  const std::string key_pem = PrivateKeyPem(key);
  const std::string cert_pem = CertificatePem(cert);
  if (key_pem.empty() || cert_pem.empty()) {
    return absl::InternalError(absl::StrCat("PEM encoding of ", name, ": ", TakeOpenSslError()));
  }
  if (auto s = WriteFile(dir / (name + ".crt"), cert_pem, 0644); !s.ok()) return s;
  return WriteFile(dir / (name + ".key"), key_pem, 0600);
}

EvpPkeyPtr NewKey() { return EvpPkeyPtr(EVP_EC_gen("P-256")); }

// The certificate of `component`, signed by the CA.
absl::StatusOr<X509Ptr> ComponentCertificate(const std::string& component, EVP_PKEY* key, X509* ca,
                                             EVP_PKEY* ca_key, const CertsOptions& options) {
  auto cert = NewCertificate(component, key, ca, options.days);
  if (!cert.ok()) return cert.status();
  std::vector<std::string> hosts = {"localhost", "rally-" + component, "127.0.0.1", "::1"};
  hosts.insert(hosts.end(), options.hosts.begin(), options.hosts.end());
  if (auto s = AddAltNames(cert->get(), hosts); !s.ok()) return s;
  if (auto s = AddExtensions(cert->get(), ca,
                             {{NID_basic_constraints, "critical,CA:FALSE"},
                              {NID_key_usage, "critical,digitalSignature"},
                              {NID_ext_key_usage, "serverAuth,clientAuth"},
                              {NID_subject_key_identifier, "hash"},
                              {NID_authority_key_identifier, "keyid:always"}});
      !s.ok()) {
    return s;
  }
  if (auto s = Sign(cert->get(), ca_key); !s.ok()) return s;
  return cert;
}

}  // namespace

absl::Status InitCerts(const CertsOptions& options) {
  if (options.days < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--days must be at least 1, not ", options.days));
  }
  const fs::path dir(options.dir);
  std::error_code ec;
  if (fs::exists(dir / "ca.key", ec) && !options.force) {
    return absl::FailedPreconditionError(
        absl::StrCat((dir / "ca.key").string(),
                     " exists: the certificates it signed would stop being trusted; give --force "
                     "to replace the CA and every certificate"));
  }
  fs::create_directories(dir, ec);
  if (ec)
    return absl::UnavailableError(absl::StrCat("cannot create ", options.dir, ": ", ec.message()));
  EvpPkeyPtr ca_key = NewKey();
  if (ca_key == nullptr) return absl::InternalError("EC key generation: " + TakeOpenSslError());
  auto ca = NewCertificate("rally CA", ca_key.get(), nullptr, options.days);
  if (!ca.ok()) return ca.status();
  if (auto s = AddExtensions(ca->get(), ca->get(),
                             {{NID_basic_constraints, "critical,CA:TRUE"},
                              {NID_key_usage, "critical,keyCertSign,cRLSign"},
                              {NID_subject_key_identifier, "hash"}});
      !s.ok()) {
    return s;
  }
  if (auto s = Sign(ca->get(), ca_key.get()); !s.ok()) return s;
  for (absl::string_view component : kRallyComponents) {
    EvpPkeyPtr key = NewKey();
    if (key == nullptr) return absl::InternalError("EC key generation: " + TakeOpenSslError());
    auto cert =
        ComponentCertificate(std::string(component), key.get(), ca->get(), ca_key.get(), options);
    if (!cert.ok()) return cert.status();
    if (auto s = WriteKeyAndCertificate(dir, std::string(component), key.get(), cert->get());
        !s.ok()) {
      return s;
    }
  }
  // The CA's key last: a run cut short leaves no ca.key, and the next one needs no --force.
  return WriteKeyAndCertificate(dir, "ca", ca_key.get(), ca->get());
}

int CertsCommand(const std::vector<std::string>& args) {
  if (args.size() != 2 || args[0] != "init") {
    std::fprintf(stderr, "usage: rally certs init DIR [--hosts h1,h2,...] [--days N] [--force]\n");
    return 2;
  }
  CertsOptions options{args[1], absl::GetFlag(FLAGS_hosts), absl::GetFlag(FLAGS_days),
                       absl::GetFlag(FLAGS_force)};
  if (absl::Status s = InitCerts(options); !s.ok()) {
    std::fprintf(stderr, "rally certs init: %s\n", std::string(s.message()).c_str());
    return s.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  std::printf(
      "%s: ca.crt, ca.key and a certificate and key for each of %s, valid %d days.\n"
      "Give each process --tls_cert DIR/<component>.crt --tls_key DIR/<component>.key "
      "--tls_ca DIR/ca.crt; keep ca.key away from the cluster.\n",
      options.dir.c_str(), absl::StrJoin(kRallyComponents, ", ").c_str(), options.days);
  return 0;
}

}  // namespace rally
