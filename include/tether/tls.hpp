// TLS settings of wss:// clients and servers. The runtime encrypts with OpenSSL 3 (TLS 1.2
// minimum, ALPN "http/1.1", session resumption on both ends).
#pragma once

#include <string>

namespace tether {

/// TLS settings of a client. The defaults verify the server against the system trust store,
/// as a browser does; set only what differs.
///
/// Certificate and key files are read once, when the client's TLS context is created; a
/// missing or unreadable file makes connect() fail with one line naming the file and OpenSSL's
/// reason. Sessions are cached per host and port, so a reconnection resumes the previous TLS
/// session (an abbreviated handshake) when the server allows it.
struct TlsClientOptions {
  /// Verify the server's certificate chain and that it is valid for `server_name` (or the
  /// URL's host): RFC 6125 names, or IP address SANs when the host is an IP literal.
  /// `false` accepts any certificate, which lets anyone on the path read and alter the
  /// traffic; meant for local tests only. The runtime logs a warning on every connection
  /// made this way, so that it cannot go unnoticed into production.
  bool verify = true;
  /// PEM file of the CAs to trust. Empty: the system trust store
  /// (SSL_CTX_set_default_verify_paths; /etc/ssl/certs on Debian).
  std::string ca_file{};
  /// Client certificate (PEM, may include the chain) for mutual TLS; optional.
  std::string cert_file{};
  /// Private key of `cert_file` (PEM). Empty while `cert_file` is set: the key is read from
  /// `cert_file`.
  std::string key_file{};
  /// Name sent as SNI and verified in the certificate. Empty: the URL's host. SNI is sent
  /// only for DNS names, never for IP literals (RFC 6066 §3).
  std::string server_name{};
};

/// TLS settings of a server. Read once by listen(); a missing file, an unreadable key or a key
/// that does not match the certificate makes listen() fail with one line naming the file.
struct TlsServerOptions {
  /// Server certificate (PEM), followed by the intermediate CAs the clients need.
  std::string cert_file{};
  /// Private key of `cert_file` (PEM). Empty: the key is read from `cert_file`.
  std::string key_file{};
  /// PEM file of the CAs that issue client certificates. When set, every client must present a
  /// certificate verified against it (mutual TLS); handshakes without one fail. Empty: client
  /// certificates are neither requested nor checked.
  std::string client_ca_file{};
};

}  // namespace tether
