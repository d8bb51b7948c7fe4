// `rally certs init` (services/cli/certs_command.h) checked with OpenSSL's own verification, and
// the TLS settings every process derives from its flags (common/net/tls.h).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "common/net/tls.h"
#include "services/cli/certs_command.h"

namespace rally {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test.
class Certs : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("rally-certs-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string Dir(const std::string& name) const { return (root_ / name).string(); }

  fs::path root_;
};

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The first certificate of a PEM file, read with OpenSSL's file API (not rally's helpers).
X509* LoadCert(const fs::path& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return nullptr;
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  return cert;
}

EVP_PKEY* LoadKey(const fs::path& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return nullptr;
  EVP_PKEY* key = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  return key;
}

// OpenSSL's verdict on `cert` against the single trusted `ca`, for TLS purpose `purpose`.
int Verify(X509* ca, X509* cert, int purpose) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, cert, nullptr);
  X509_STORE_CTX_set_purpose(ctx, purpose);
  const int ok = X509_verify_cert(ctx);
  const int error = ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return error;
}

std::string SubjectCn(X509* cert) {
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
  return cn;
}

// "DNS:name" and "IP:address" for every subjectAltName.
std::set<std::string> AltNames(X509* cert) {
  std::set<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type == GEN_DNS) {
      const ASN1_STRING* s = name->d.dNSName;
      out.insert("DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                      ASN1_STRING_length(s)));
    } else if (name->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = name->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {};
      inet_ntop(ASN1_STRING_length(ip) == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(ip), text,
                sizeof(text));
      out.insert(std::string("IP:") + text);
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

// Seconds from now to `t` (negative: in the past).
long SecondsFromNow(const ASN1_TIME* t) {
  int days = 0, seconds = 0;
  ASN1_TIME_diff(&days, &seconds, nullptr, t);
  return days * 86400L + seconds;
}

int FileMode(const fs::path& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

TEST_F(Certs, InitWritesACaAndOneCertificatePerComponentThatTheCaVerifies) {
  const fs::path dir = Dir("certs");
  ASSERT_TRUE(InitCerts({dir.string(), {"rally-control.rally.svc", "10.0.0.7"}, 30, false}).ok());
  X509* ca = LoadCert(dir / "ca.crt");
  ASSERT_NE(ca, nullptr);
  EXPECT_EQ(SubjectCn(ca), "rally CA");
  EXPECT_EQ(X509_check_ca(ca), 1);  // a v3 CA: basicConstraints CA:TRUE, keyCertSign
  EXPECT_EQ(Verify(ca, ca, X509_PURPOSE_ANY), X509_V_OK);
  EXPECT_EQ(FileMode(dir / "ca.key"), 0600);
  EVP_PKEY* ca_key = LoadKey(dir / "ca.key");
  ASSERT_NE(ca_key, nullptr);
  EXPECT_EQ(X509_check_private_key(ca, ca_key), 1);
  const std::vector<std::string> components = {"control", "replay",    "learner",
                                               "actor",   "evaluator", "client"};
  for (const std::string& c : components) {
    SCOPED_TRACE(c);
    X509* cert = LoadCert(dir / (c + ".crt"));
    ASSERT_NE(cert, nullptr);
    EXPECT_EQ(Verify(ca, cert, X509_PURPOSE_SSL_SERVER), X509_V_OK);
    EXPECT_EQ(Verify(ca, cert, X509_PURPOSE_SSL_CLIENT), X509_V_OK);
    EXPECT_EQ(SubjectCn(cert), c);
    EXPECT_EQ(AltNames(cert),
              (std::set<std::string>{"DNS:localhost", "DNS:rally-" + c, "IP:127.0.0.1", "IP:::1",
                                     "DNS:rally-control.rally.svc", "IP:10.0.0.7"}));
    const uint32_t eku = X509_get_extended_key_usage(cert);
    EXPECT_TRUE(eku & XKU_SSL_SERVER);
    EXPECT_TRUE(eku & XKU_SSL_CLIENT);
    EXPECT_EQ(X509_check_ca(cert), 0);  // cannot sign other certificates
    // Valid from 5 minutes ago (clock skew) for 30 days.
    EXPECT_NEAR(SecondsFromNow(X509_get0_notBefore(cert)), -300, 60);
    EXPECT_NEAR(SecondsFromNow(X509_get0_notAfter(cert)), 30 * 86400L, 60);
    EVP_PKEY* key = LoadKey(dir / (c + ".key"));
    ASSERT_NE(key, nullptr);
    EXPECT_EQ(X509_check_private_key(cert, key), 1);
    EXPECT_EQ(EVP_PKEY_get_base_id(key), EVP_PKEY_EC);
    EXPECT_EQ(FileMode(dir / (c + ".key")), 0600);
    EXPECT_EQ(FileMode(dir / (c + ".crt")), 0644);
    EVP_PKEY_free(key);
    X509_free(cert);
  }
  // Exactly those files: no temporary file left behind.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()),
            2 * (1 + static_cast<long>(components.size())));
  EVP_PKEY_free(ca_key);
  X509_free(ca);
}

TEST_F(Certs, InitRefusesToReplaceAnExistingCaUnlessForced) {
  const fs::path dir = Dir("certs");
  ASSERT_TRUE(InitCerts({dir.string(), {}, 10, false}).ok());
  const std::string ca_key = ReadAll(dir / "ca.key");
  const std::string replay_crt = ReadAll(dir / "replay.crt");
  absl::Status again = InitCerts({dir.string(), {}, 10, false});
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(again.message().find((dir / "ca.key").string() + " exists"), std::string::npos)
      << again;
  EXPECT_NE(again.message().find("--force"), std::string::npos) << again;
  EXPECT_EQ(ReadAll(dir / "ca.key"), ca_key);
  EXPECT_EQ(ReadAll(dir / "replay.crt"), replay_crt);

  X509* old_replay = LoadCert(dir / "replay.crt");
  ASSERT_TRUE(InitCerts({dir.string(), {}, 10, true}).ok());
  EXPECT_NE(ReadAll(dir / "ca.key"), ca_key);
  X509* new_ca = LoadCert(dir / "ca.crt");
  X509* new_replay = LoadCert(dir / "replay.crt");
  EXPECT_EQ(Verify(new_ca, new_replay, X509_PURPOSE_SSL_SERVER), X509_V_OK);
  // The new CA does not vouch for what the old one signed.
  EXPECT_NE(Verify(new_ca, old_replay, X509_PURPOSE_SSL_SERVER), X509_V_OK);
  X509_free(old_replay);
  X509_free(new_ca);
  X509_free(new_replay);
}

TEST_F(Certs, InitRefusesBadHostsAndDays) {
  absl::Status host = InitCerts({Dir("a"), {"bad host"}, 10, false});
  EXPECT_EQ(host.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(host.message().find("'bad host'"), std::string::npos) << host;
  EXPECT_FALSE(fs::exists(Dir("a") + "/ca.key"));
  absl::Status days = InitCerts({Dir("b"), {}, 0, false});
  EXPECT_EQ(days.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(days.message().find("--days"), std::string::npos) << days;
}

TEST_F(Certs, MutualTlsAcceptsAComponentsFilesAndNamesItsComponent) {
  const std::string dir = Dir("certs");
  ASSERT_TRUE(InitCerts({dir, {}, 10, false}).ok());
  auto security =
      TransportSecurity::MutualTls({dir + "/replay.crt", dir + "/replay.key", dir + "/ca.crt"});
  ASSERT_TRUE(security.ok()) << security.status();
  EXPECT_TRUE(security->tls());
  EXPECT_EQ(security->component(), "replay");
  EXPECT_EQ(security->Description(), "mutual TLS as replay");
  EXPECT_TRUE(security->allows_beyond_loopback());
  EXPECT_NE(security->ServerCredentials(), nullptr);
  EXPECT_NE(security->ChannelCredentials(), nullptr);
}

// Each unusable setting is refused with a message that names the flag and the file.
TEST_F(Certs, MutualTlsRefusesUnusableFilesNamingFlagAndFile) {
  const std::string a = Dir("a");
  const std::string b = Dir("b");
  ASSERT_TRUE(InitCerts({a, {}, 10, false}).ok());
  ASSERT_TRUE(InitCerts({b, {}, 10, false}).ok());
  { std::ofstream(a + "/junk.pem") << "not a certificate\n"; }
  struct Case {
    TlsFiles files;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{a + "/replay.crt", a + "/replay.key", ""},
       "mutual TLS needs --tls_cert, --tls_key and --tls_ca together; missing --tls_ca"},
      {{a + "/replay.crt", a + "/nothing.key", a + "/ca.crt"},
       "--tls_key " + a + "/nothing.key: cannot read it: No such file or directory"},
      {{a + "/junk.pem", a + "/replay.key", a + "/ca.crt"},
       "--tls_cert " + a + "/junk.pem: no PEM certificate in it"},
      {{a + "/replay.crt", a + "/junk.pem", a + "/ca.crt"},
       "--tls_key " + a + "/junk.pem: no unencrypted PEM private key in it"},
      {{a + "/replay.crt", a + "/replay.key", a + "/junk.pem"},
       "--tls_ca " + a + "/junk.pem: no PEM certificate in it"},
      {{a + "/replay.crt", a + "/actor.key", a + "/ca.crt"},
       "--tls_key " + a + "/actor.key is not the key of --tls_cert " + a + "/replay.crt"},
      {{b + "/replay.crt", b + "/replay.key", a + "/ca.crt"},
       "--tls_cert " + b + "/replay.crt is not a valid certificate of --tls_ca " + a +
           "/ca.crt: unable to get local issuer certificate"},
  };
  for (const Case& c : cases) {
    auto security = TransportSecurity::MutualTls(c.files);
    ASSERT_FALSE(security.ok()) << c.message;
    EXPECT_EQ(security.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(security.status().message(), c.message);
  }
}

TEST(ListenHost, PlainTextStaysOnLoopbackUnlessInsecure) {
  for (const char* host : {"127.0.0.1", "::1", "[::1]", "localhost"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
    EXPECT_TRUE(CheckListenHost(host, TransportSecurity::PlainText()).ok()) << host;
  }
  for (const char* host : {"0.0.0.0", "::", "10.1.2.3", "rally-control", "127.0.0.1.example"}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
    absl::Status s = CheckListenHost(host, TransportSecurity::PlainText());
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << host;
    EXPECT_NE(s.message().find(std::string("refusing to listen on ") + host + " in plain text"),
              std::string::npos)
        << s;
    EXPECT_NE(s.message().find("--insecure"), std::string::npos) << s;
    EXPECT_TRUE(CheckListenHost(host, TransportSecurity::PlainText(true)).ok()) << host;
  }
}

}  // namespace
}  // namespace rally
