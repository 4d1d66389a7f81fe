// Sans-I/O TLS over OpenSSL 3 memory BIOs: ciphertext in and out as bytes, so the runtime's
// socket loop (and its fault injection: short writes, EAGAIN, EINTR) is the same for ws://
// and wss://, and TLS can be tested without sockets.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "tether/byte_buffer.hpp"
#include "tether/protocol.hpp"
#include "tether/tls.hpp"

namespace tether::tls {

/// Configuration shared by the connections of one client or server: an SSL_CTX with TLS 1.2
/// as the minimum, ALPN "http/1.1", renegotiation off, and session resumption (client: one
/// cached session per host and port; server: OpenSSL's session cache and tickets).
/// Always held by shared_ptr; every channel keeps its context alive. Thread-safe: channels on
/// different threads may share one context.
class TlsContext {
 public:
  /// Sessions the client keeps (one per host and port); beyond it the oldest key goes.
  static constexpr std::size_t max_cached_sessions = 256;

  /// Builds a client context. nullptr on failure, with `error` set to one line naming the
  /// file and OpenSSL's reason (e.g. "TLS: cannot load CA file '/x.pem': No such file or
  /// directory").
  static std::shared_ptr<TlsContext> client(const TlsClientOptions& options, std::string& error);
  /// Builds a server context; nullptr with `error` as for client(). The key must match the
  /// certificate.
  static std::shared_ptr<TlsContext> server(const TlsServerOptions& options, std::string& error);

  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  Role role() const noexcept { return role_; }
  /// Client: whether the server's certificate is verified (false means TlsClientOptions::verify
  /// was turned off, which the runtime reports on every connection). Server: whether client
  /// certificates are required.
  bool verifies() const noexcept { return verify_; }
  /// Client: TlsClientOptions::server_name (empty: each channel verifies its own host).
  const std::string& server_name() const noexcept { return server_name_; }
  /// Client: sessions currently cached. Thread-safe.
  std::size_t cached_sessions() const;
  /// The SSL_CTX, for tests and for settings this class does not cover (e.g. a maximum
  /// protocol version). Change it only before the first channel is created.
  SSL_CTX* native_handle() const noexcept { return ctx_; }

 private:
  friend class TlsChannel;
  TlsContext(SSL_CTX* ctx, Role role) noexcept : ctx_(ctx), role_(role) {}

  // The client's session cache, keyed by TlsChannel's session key. take_session() returns a
  // reference the caller frees; store_session() adopts the caller's reference.
  SSL_SESSION* take_session(const std::string& key);
  void store_session(const std::string& key, SSL_SESSION* session);
  static int on_new_session(SSL* ssl, SSL_SESSION* session);

  SSL_CTX* ctx_;
  Role role_;
  bool verify_ = false;
  std::string server_name_;
  struct CachedSession {
    SSL_SESSION* session;
    std::uint64_t stored;  // eviction order
  };
  mutable std::mutex cache_mutex_;
  std::map<std::string, CachedSession> sessions_;  // guarded by cache_mutex_
  std::uint64_t store_count_ = 0;                  // guarded by cache_mutex_
};

/// One TLS connection as a byte-in, byte-out engine. The owner moves bytes between it and the
/// socket:
///
///   socket read  -> feed_ciphertext(), then read_plaintext() until it returns 0
///   application  -> write_plaintext() (returns what it took; retry the rest later)
///   socket write <- pending_ciphertext(), then consume_ciphertext(bytes written)
///
/// Any of the first three may produce ciphertext (handshake messages, session tickets,
/// alerts), so check pending_ciphertext() after each. The handshake runs inside them; a client
/// channel starts it on construction, so its ClientHello is pending right away.
///
/// After failed(), pending_ciphertext() may still hold an alert worth flushing before the
/// socket is closed; everything else returns 0. Not thread-safe; not movable (OpenSSL keeps a
/// pointer into it).
class TlsChannel {
 public:
  /// write_plaintext() takes nothing while this much ciphertext waits to be written, so a peer
  /// that stops reading costs at most this (plus one record's overhead) per connection.
  static constexpr std::size_t max_ciphertext_backlog = 64 * 1024;

  /// A channel of `role`, which must be the context's. A client verifies `host` (a DNS name,
  /// or an IPv4/IPv6 literal checked against the certificate's IP SANs; brackets allowed)
  /// unless the context has a server_name, which then replaces it; SNI is sent only for DNS
  /// names. `host` and `port` also key the session cache. Servers ignore both. Construction
  /// failures (a client without a host to verify, an unparsable IP) show as failed().
  TlsChannel(std::shared_ptr<TlsContext> context, Role role, std::string_view host = {},
             std::uint16_t port = 0);
  ~TlsChannel();
  TlsChannel(const TlsChannel&) = delete;
  TlsChannel& operator=(const TlsChannel&) = delete;

  /// Network to TLS: ciphertext just read from the socket. Ignored after failed().
  void feed_ciphertext(ByteView data);
  /// TLS to application: decrypts into `out`. Returns the bytes produced; 0 when nothing is
  /// available yet, during the handshake, after close_notify (peer_closed()) or on an error
  /// (failed()). Call until it returns 0: one call yields at most one TLS record.
  std::size_t read_plaintext(MutableByteView out);
  /// Application to TLS: encrypts as much of `data` as the backlog bound allows. Returns the
  /// bytes consumed: 0 before the handshake completes, after close() or failed(), and while
  /// max_ciphertext_backlog bytes of ciphertext wait to be written.
  std::size_t write_plaintext(ByteView data);
  /// TLS to network: ciphertext waiting to be written, valid until the next non-const call on
  /// this channel. Empty when there is none.
  ByteView pending_ciphertext();
  /// Drops `n` bytes (at most pending_ciphertext().size()) after a (partial) socket write.
  void consume_ciphertext(std::size_t n);
  /// Queues close_notify (RFC 8446 §6.1), once; later writes are refused. Before the handshake
  /// completes there is nothing to close cleanly and it only refuses writes.
  void close();

  bool handshake_done() const noexcept { return handshake_done_; }
  bool failed() const noexcept { return failed_; }
  /// One line, e.g. "TLS: certificate verify failed: certificate has expired"; empty unless
  /// failed().
  const std::string& error() const noexcept { return error_; }
  /// The peer sent close_notify: no more plaintext will come.
  bool peer_closed() const noexcept { return peer_closed_; }
  /// close() was called.
  bool close_sent() const noexcept { return close_sent_; }
  /// Buffer capacity held (in and out) plus an estimate of OpenSSL's per-connection state.
  /// Rough.
  std::size_t memory_used() const noexcept;
  /// A buffer grew past what an idle connection keeps: call release_burst_buffers() at
  /// intervals until this is false.
  bool holds_burst_buffers() const noexcept;
  /// Shrinks each buffer more than twice as large as the most it held since the last call (a
  /// burst's peak) to what it holds now, and starts a new interval. Returns the bytes freed.
  std::size_t release_burst_buffers();

  /// The ciphertext both ways, as the channel's BIO reads and writes it.
  struct BioBuffers {
    ByteBuffer in;            // received, not yet read by OpenSSL
    ByteBuffer out;           // produced by OpenSSL, not yet written to the socket
    std::size_t in_high = 0;  // the most each held since the last release_burst_buffers()
    std::size_t out_high = 0;
  };

  /// Negotiated ALPN protocol ("http/1.1"), empty when none was.
  std::string alpn() const;
  /// The handshake resumed an earlier session.
  bool session_reused() const noexcept;
  /// "TLSv1.3", "TLSv1.2", ... once the handshake is done.
  std::string_view protocol() const noexcept;
  /// Server: the host name the client sent as SNI; empty when it sent none.
  std::string sni() const;
  /// Client: the name or IP literal verified and used as the session key's host.
  const std::string& peer_name() const noexcept { return peer_name_; }

 private:
  void advance_handshake();
  void fail(int ssl_error);
  void fail(std::string message);
  std::string describe_failure(int ssl_error);

  std::shared_ptr<TlsContext> context_;
  SSL* ssl_ = nullptr;
  BioBuffers buffers_;
  std::string peer_name_;
  std::string session_key_;  // OpenSSL's new-session callback finds it through app data
  std::string error_;
  bool handshake_done_ = false;
  bool failed_ = false;
  bool peer_closed_ = false;
  bool close_sent_ = false;
};

}  // namespace tether::tls
