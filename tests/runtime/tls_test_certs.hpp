// Certificates for TLS tests, generated at test time (EC P-256, OpenSSL 3) so that none
// expires in the repository and no private key is committed.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace tether::tls::testing {

/// PEM files in a fresh directory under /tmp, removed by the destructor:
///   ca            the test CA, trusted by the tests' clients and by the mutual-TLS server
///   server        signed by ca, SANs DNS:localhost and IP:127.0.0.1 (key: server_key)
///   expired       as server, but expired yesterday (key: server_key)
///   client        signed by ca, for mutual TLS (key: client_key)
///   other_ca      an unrelated CA, signs other_client (key: other_client_key)
class TestCerts {
 public:
  std::string dir;
  std::string ca, server, server_key, expired, client, client_key, other_ca, other_client,
      other_client_key;

  TestCerts() {
    char tmpl[] = "/tmp/tether-tls-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    constexpr long day = 24 * 60 * 60;

    Key ca_key = new_key();
    Cert ca_cert = make_cert(ca_key.get(), "Tether Test CA", nullptr, ca_key.get(), 1, -day,
                             365 * day, ca_extensions());
    Key other_ca_key = new_key();
    Cert other_ca_cert = make_cert(other_ca_key.get(), "Unrelated Test CA", nullptr,
                                   other_ca_key.get(), 1, -day, 365 * day, ca_extensions());

    Key srv_key = new_key();
    const char* server_san = "DNS:localhost,IP:127.0.0.1";
    Cert srv = make_cert(srv_key.get(), "localhost", ca_cert.get(), ca_key.get(), 2, -day, 30 * day,
                         leaf_extensions(server_san, "serverAuth"));
    Cert old = make_cert(srv_key.get(), "localhost", ca_cert.get(), ca_key.get(), 3, -30 * day,
                         -day, leaf_extensions(server_san, "serverAuth"));
    Key cli_key = new_key();
    Cert cli = make_cert(cli_key.get(), "test client", ca_cert.get(), ca_key.get(), 4, -day,
                         30 * day, leaf_extensions(nullptr, "clientAuth"));
    Key rogue_key = new_key();
    Cert rogue = make_cert(rogue_key.get(), "rogue client", other_ca_cert.get(), other_ca_key.get(),
                           2, -day, 30 * day, leaf_extensions(nullptr, "clientAuth"));

    ca = write_cert("ca.pem", ca_cert.get());
    other_ca = write_cert("other_ca.pem", other_ca_cert.get());
    server = write_cert("server.pem", srv.get());
    server_key = write_key("server.key", srv_key.get());
    expired = write_cert("expired.pem", old.get());
    client = write_cert("client.pem", cli.get());
    client_key = write_key("client.key", cli_key.get());
    other_client = write_cert("other_client.pem", rogue.get());
    other_client_key = write_key("other_client.key", rogue_key.get());
  }
  ~TestCerts() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  TestCerts(const TestCerts&) = delete;
  TestCerts& operator=(const TestCerts&) = delete;

 private:
  struct KeyFree {
    void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
  };
  struct CertFree {
    void operator()(X509* x) const noexcept { X509_free(x); }
  };
  using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
  using Cert = std::unique_ptr<X509, CertFree>;
  using Extensions = std::vector<std::pair<int, std::string>>;

  static void check(bool ok, const char* what) {
    if (!ok) throw std::runtime_error(std::string("test certificate generation: ") + what);
  }

  static Key new_key() {
    // P-256 rather than RSA: key generation stays in the milliseconds under sanitizers.
    Key key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    check(key != nullptr, "EVP_PKEY_Q_keygen");
    return key;
  }

  static Extensions ca_extensions() {
    return {{NID_basic_constraints, "critical,CA:TRUE"},
            {NID_key_usage, "critical,keyCertSign,cRLSign"},
            {NID_subject_key_identifier, "hash"},
            {NID_authority_key_identifier, "keyid:always"}};
  }

  static Extensions leaf_extensions(const char* san, const char* eku) {
    Extensions e{{NID_basic_constraints, "critical,CA:FALSE"},
                 {NID_key_usage, "critical,digitalSignature"},
                 {NID_ext_key_usage, eku},
                 {NID_subject_key_identifier, "hash"},
                 {NID_authority_key_identifier, "keyid:always"}};
    if (san) e.emplace_back(NID_subject_alt_name, san);
    return e;
  }

  // `issuer` null: self-signed. Validity is relative to now, in seconds.
  static Cert make_cert(EVP_PKEY* key, const char* common_name, X509* issuer, EVP_PKEY* issuer_key,
                        long serial, long not_before, long not_after,
                        const Extensions& extensions) {
    Cert cert(X509_new());
    check(cert != nullptr, "X509_new");
    X509* x = cert.get();
    check(X509_set_version(x, 2) == 1, "X509_set_version");  // 2 means v3
    check(ASN1_INTEGER_set(X509_get_serialNumber(x), serial) == 1, "serial");
    check(X509_gmtime_adj(X509_getm_notBefore(x), not_before) != nullptr, "notBefore");
    check(X509_gmtime_adj(X509_getm_notAfter(x), not_after) != nullptr, "notAfter");
    check(X509_set_pubkey(x, key) == 1, "X509_set_pubkey");
    X509_NAME* name = X509_get_subject_name(x);
    check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>(common_name), -1, -1,
                                     0) == 1,
          "subject");
    check(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) == 1, "issuer");
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, issuer ? issuer : x, x, nullptr, nullptr, 0);
    for (const auto& [nid, value] : extensions) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
      check(ext != nullptr, "X509V3_EXT_conf_nid");
      bool added = X509_add_ext(x, ext, -1) == 1;
      X509_EXTENSION_free(ext);
      check(added, "X509_add_ext");
    }
    check(X509_sign(x, issuer_key, EVP_sha256()) > 0, "X509_sign");
    return cert;
  }

  std::string write_cert(const char* file, X509* cert) const {
    std::string path = dir + "/" + file;
    BIO* bio = BIO_new_file(path.c_str(), "w");
    check(bio != nullptr, "BIO_new_file");
    bool ok = PEM_write_bio_X509(bio, cert) == 1;
    BIO_free(bio);
    check(ok, "PEM_write_bio_X509");
    return path;
  }

  std::string write_key(const char* file, EVP_PKEY* key) const {
    std::string path = dir + "/" + file;
    BIO* bio = BIO_new_file(path.c_str(), "w");
    check(bio != nullptr, "BIO_new_file");
    bool ok = PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
    BIO_free(bio);
    check(ok, "PEM_write_bio_PrivateKey");
    return path;
  }
};

/// One set per test program: generated on first use, removed at exit.
inline const TestCerts& test_certs() {
  static const TestCerts certs;
  return certs;
}

}  // namespace tether::tls::testing
