// Owners of OpenSSL libcrypto objects and the few PEM and name helpers that rally's TLS setup
// (common/net/tls.cc), `rally certs init` (services/cli/certs_command.cc) and their tests share.
// Each pointer type frees its object with the matching OpenSSL function.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace rally {

template <auto Free>
struct OpenSslFree {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};
using BioPtr = std::unique_ptr<BIO, OpenSslFree<BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpenSslFree<BN_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OpenSslFree<EVP_PKEY_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, OpenSslFree<GENERAL_NAMES_free>>;
using X509Ptr = std::unique_ptr<X509, OpenSslFree<X509_free>>;
using X509ExtensionPtr = std::unique_ptr<X509_EXTENSION, OpenSslFree<X509_EXTENSION_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, OpenSslFree<X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, OpenSslFree<X509_STORE_CTX_free>>;

// Every certificate in the PEM text `pem`, in order; empty if it holds none.
std::vector<X509Ptr> ParseCertificates(std::string_view pem);
// The first private key in the PEM text `pem`; null if there is none or it is encrypted.
EvpPkeyPtr ParsePrivateKey(std::string_view pem);
// PEM text of a certificate, and of a private key (unencrypted PKCS #8).
std::string CertificatePem(X509* cert);
std::string PrivateKeyPem(EVP_PKEY* key);
// The subject's common name (CN); "" if it has none.
std::string CommonName(X509* cert);
// Drains OpenSSL's error queue of this thread; its last entry as text, or "" if it was empty.
std::string TakeOpenSslError();

}  // namespace rally
