#include "runtime/tls_channel.hpp"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

namespace tether::tls {

namespace {

// ALPN wire format: length-prefixed names. WebSocket upgrades are HTTP/1.1 (RFC 6455 §4.1);
// RFC 8441 (WebSocket over HTTP/2) is not spoken here.
constexpr unsigned char alpn_http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// OpenSSL's SSL object, its record buffers while busy (released when idle), and the handshake
// state: a few KiB when idle, ~35 KiB when busy. Good enough for memory accounting.
constexpr std::size_t ssl_state_estimate = 8 * 1024;

// The earliest queued error is the root cause (e.g. fopen's errno, before the "system lib"
// wrappers above it); empties the queue.
std::string drain_openssl_errors() {
  unsigned long first = ERR_get_error();
  ERR_clear_error();
  if (first == 0) return "unknown error";
  if (ERR_SYSTEM_ERROR(first)) return std::strerror(ERR_GET_REASON(first));
  // OpenSSL's words for "this file holds no PEM of that kind" are cryptic.
  if (ERR_GET_LIB(first) == ERR_LIB_PEM && ERR_GET_REASON(first) == PEM_R_NO_START_LINE)
    return "no PEM block of the expected kind (no start line)";
  if (ERR_GET_LIB(first) == ERR_LIB_OSSL_DECODER && ERR_GET_REASON(first) == ERR_R_UNSUPPORTED)
    return "no PEM block of the expected kind (decoder: unsupported)";
  if (const char* reason = ERR_reason_error_string(first)) return reason;
  char buf[256];
  ERR_error_string_n(first, buf, sizeof buf);
  return buf;
}

std::string file_error(std::string_view what, const std::string& path) {
  return "TLS: cannot load " + std::string(what) + " '" + path + "': " + drain_openssl_errors();
}

// Buffers of a channel up to this size stay with it: not worth freeing and reallocating.
constexpr std::size_t burst_floor = 1024;

// The channel's transport as OpenSSL sees it: reads take received ciphertext from the
// channel's in_ buffer, writes append to its out_ buffer. Memory BIOs would do the same, but
// their buffers only grow, so a burst would leave each connection holding its peak for good,
// and draining one costs a copy into out_.
BIO_METHOD* channel_bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tether channel");
    if (!m) return m;
    BIO_meth_set_create(m, [](BIO* b) {
      BIO_set_init(b, 1);
      return 1;
    });
    BIO_meth_set_write_ex(m, [](BIO* b, const char* data, std::size_t n, std::size_t* written) {
      // No exception may cross OpenSSL's C frames: out of memory is a failed write there.
      try {
        static_cast<TlsChannel::BioBuffers*>(BIO_get_data(b))
            ->out.append({reinterpret_cast<const std::byte*>(data), n});
      } catch (const std::bad_alloc&) {
        *written = 0;
        return 0;
      }
      *written = n;
      return 1;
    });
    BIO_meth_set_read_ex(m, [](BIO* b, char* data, std::size_t n, std::size_t* read) {
      ByteBuffer& in = static_cast<TlsChannel::BioBuffers*>(BIO_get_data(b))->in;
      BIO_clear_retry_flags(b);
      if (in.empty()) {
        BIO_set_retry_read(b);  // nonblocking: "no data yet", not end of stream
        *read = 0;
        return 0;
      }
      std::size_t k = std::min(n, in.size());
      std::memcpy(data, in.data().data(), k);
      in.consume(k);
      *read = k;
      return 1;
    });
    BIO_meth_set_ctrl(m, [](BIO* b, int cmd, long, void*) -> long {
      auto* buffers = static_cast<TlsChannel::BioBuffers*>(BIO_get_data(b));
      switch (cmd) {
        case BIO_CTRL_FLUSH:
          return 1;  // writes land in out_ at once; the connection writes them to the socket
        case BIO_CTRL_PENDING:
          return static_cast<long>(buffers->in.size());
        case BIO_CTRL_WPENDING:
          return static_cast<long>(buffers->out.size());
        default:
          return 0;
      }
    });
    return m;
  }();
  return method;
}

void set_common_options(SSL_CTX* ctx) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Partial writes let write_plaintext() take less than offered; the moving buffer lets the
  // caller retry from a different address; idle connections give their record buffers back.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  // Renegotiation would let SSL_write() need a read, which the byte-pump API cannot express.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
}

// Server ALPN: "http/1.1" when offered. A client that offers only other protocols (say h2)
// would not speak HTTP/1.1 after the handshake, so RFC 7301 §3.2's fatal alert is right.
// Clients that send no ALPN at all never reach this callback and are accepted.
int select_alpn(SSL*, const unsigned char** out, unsigned char* out_len, const unsigned char* in,
                unsigned int in_len, void*) {
  for (unsigned int i = 0; i < in_len;) {
    unsigned int len = in[i];
    if (i + 1 + len > in_len) break;
    if (len == alpn_http11[0] && std::memcmp(in + i + 1, alpn_http11 + 1, len) == 0) {
      *out = in + i + 1;
      *out_len = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

bool load_certificate_and_key(SSL_CTX* ctx, const std::string& cert_file, std::string key_file,
                              std::string& error) {
  if (key_file.empty()) key_file = cert_file;
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    error = file_error("certificate", cert_file);
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    unsigned long code = ERR_peek_error();
    if (ERR_GET_LIB(code) == ERR_LIB_X509 && ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH)
      error = "TLS: private key '" + key_file + "' does not match certificate '" + cert_file + "'";
    else
      error = file_error("private key", key_file);
    ERR_clear_error();
    return false;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    error = "TLS: private key '" + key_file + "' does not match certificate '" + cert_file +
            "': " + drain_openssl_errors();
    return false;
  }
  return true;
}

struct CtxDeleter {
  void operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxDeleter>;

// An IP literal, without brackets or an IPv6 zone ("fe80::1%eth0"), which certificates
// cannot name. Empty when `host` is a DNS name.
std::string ip_literal(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  std::string s(host.substr(0, host.find('%')));
  unsigned char addr[sizeof(in6_addr)];
  if (inet_pton(AF_INET, s.c_str(), addr) == 1 || inet_pton(AF_INET6, s.c_str(), addr) == 1)
    return s;
  return {};
}

// What the verify error usually means for whoever reads the log.
std::string verify_hint(long result, const std::string& name) {
  switch (result) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      return " (unknown CA)";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return " (certificate is not valid for '" + name + "')";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return " (or the local clock is wrong)";
    default:
      return {};
  }
}

// Hints for the handshake failures people meet most.
std::string_view reason_hint(unsigned long code) {
  if (ERR_GET_LIB(code) != ERR_LIB_SSL) return {};
  switch (ERR_GET_REASON(code)) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return " (a client certificate is required)";
    case SSL_R_HTTP_REQUEST:
      return " (plain HTTP sent to a TLS port)";
    case SSL_R_WRONG_VERSION_NUMBER:
      return " (is the peer speaking TLS?)";
    default:
      return {};
  }
}

}  // namespace

// ---- TlsContext -----------------------------------------------------------------------

std::shared_ptr<TlsContext> TlsContext::client(const TlsClientOptions& options,
                                               std::string& error) {
  ERR_clear_error();
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    error = "TLS: cannot create client context: " + drain_openssl_errors();
    return nullptr;
  }
  set_common_options(ctx.get());
  if (SSL_CTX_set_alpn_protos(ctx.get(), alpn_http11, sizeof alpn_http11) != 0) {
    error = "TLS: cannot set ALPN: " + drain_openssl_errors();
    return nullptr;
  }
  if (options.verify) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (!options.ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(ctx.get(), options.ca_file.c_str(), nullptr) != 1) {
        error = file_error("CA file", options.ca_file);
        return nullptr;
      }
    } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
      error = "TLS: cannot load the system trust store: " + drain_openssl_errors();
      return nullptr;
    }
  } else {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  }
  if (!options.cert_file.empty() &&
      !load_certificate_and_key(ctx.get(), options.cert_file, options.key_file, error))
    return nullptr;
  if (options.cert_file.empty() && !options.key_file.empty()) {
    error = "TLS: key_file '" + options.key_file + "' given without cert_file";
    return nullptr;
  }
  // OpenSSL's internal client cache is not looked up by host, so sessions are kept here and
  // handed to the next connection to the same host and port.
  SSL_CTX_set_session_cache_mode(ctx.get(),
                                 SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx.get(), &TlsContext::on_new_session);

  std::shared_ptr<TlsContext> self(new TlsContext(ctx.release(), Role::client));
  self->verify_ = options.verify;
  self->server_name_ = options.server_name;
  SSL_CTX_set_app_data(self->ctx_, self.get());
  return self;
}

std::shared_ptr<TlsContext> TlsContext::server(const TlsServerOptions& options,
                                               std::string& error) {
  ERR_clear_error();
  if (options.cert_file.empty()) {
    error = "TLS: a server needs cert_file (and key_file unless the key is in it)";
    return nullptr;
  }
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    error = "TLS: cannot create server context: " + drain_openssl_errors();
    return nullptr;
  }
  set_common_options(ctx.get());
  if (!load_certificate_and_key(ctx.get(), options.cert_file, options.key_file, error))
    return nullptr;
  SSL_CTX_set_alpn_select_cb(ctx.get(), &select_alpn, nullptr);
  if (!options.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), options.client_ca_file.c_str(), nullptr) != 1) {
      error = file_error("client CA file", options.client_ca_file);
      return nullptr;
    }
    // The CertificateRequest names these CAs so that clients pick a matching certificate.
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(options.client_ca_file.c_str());
    if (!names) {
      error = file_error("client CA names from", options.client_ca_file);
      return nullptr;
    }
    SSL_CTX_set_client_CA_list(ctx.get(), names);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  // Session IDs (TLS 1.2) need a context id, or OpenSSL refuses to resume sessions whose
  // client was verified; tickets (TLS 1.2 and 1.3) are on by default.
  static constexpr unsigned char session_id_context[] = "tether";
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_SERVER);
  SSL_CTX_set_session_id_context(ctx.get(), session_id_context, sizeof session_id_context - 1);

  std::shared_ptr<TlsContext> self(new TlsContext(ctx.release(), Role::server));
  self->verify_ = !options.client_ca_file.empty();
  SSL_CTX_set_app_data(self->ctx_, self.get());
  return self;
}

TlsContext::~TlsContext() {
  for (auto& [key, entry] : sessions_) SSL_SESSION_free(entry.session);
  SSL_CTX_free(ctx_);
}

std::size_t TlsContext::cached_sessions() const {
  std::lock_guard lock(cache_mutex_);
  return sessions_.size();
}

SSL_SESSION* TlsContext::take_session(const std::string& key) {
  std::lock_guard lock(cache_mutex_);
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return nullptr;
  SSL_SESSION* session = it->second.session;
  if (!SSL_SESSION_is_resumable(session)) {
    SSL_SESSION_free(session);
    sessions_.erase(it);
    return nullptr;
  }
  // TLS 1.3 tickets are for one use (RFC 8446 §C.4: reuse lets observers link connections);
  // the resumed connection brings fresh ones. TLS 1.2 sessions may be resumed many times.
  if (SSL_SESSION_get_protocol_version(session) >= TLS1_3_VERSION) {
    sessions_.erase(it);
    return session;
  }
  SSL_SESSION_up_ref(session);
  return session;
}

void TlsContext::store_session(const std::string& key, SSL_SESSION* session) {
  std::lock_guard lock(cache_mutex_);
  auto it = sessions_.find(key);
  if (it != sessions_.end()) {
    SSL_SESSION_free(it->second.session);
    it->second = {session, ++store_count_};
    return;
  }
  if (sessions_.size() >= max_cached_sessions) {
    auto oldest = std::min_element(sessions_.begin(), sessions_.end(), [](auto& a, auto& b) {
      return a.second.stored < b.second.stored;
    });
    SSL_SESSION_free(oldest->second.session);
    sessions_.erase(oldest);
  }
  sessions_.emplace(key, CachedSession{session, ++store_count_});
}

int TlsContext::on_new_session(SSL* ssl, SSL_SESSION* session) {
  auto* self = static_cast<TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  auto* key = static_cast<const std::string*>(SSL_get_app_data(ssl));
  if (!self || !key || key->empty()) return 0;
  self->store_session(*key, session);
  return 1;  // the cache keeps OpenSSL's reference
}

// ---- TlsChannel -----------------------------------------------------------------------

TlsChannel::TlsChannel(std::shared_ptr<TlsContext> context, Role role, std::string_view host,
                       std::uint16_t port)
    : context_(std::move(context)) {
  if (!context_) {
    fail("TLS: no context");
    return;
  }
  if (context_->role() != role) {
    fail(role == Role::client ? "TLS: client channel on a server context"
                              : "TLS: server channel on a client context");
    return;
  }
  ERR_clear_error();
  ssl_ = SSL_new(context_->native_handle());
  BIO* bio = channel_bio_method() ? BIO_new(channel_bio_method()) : nullptr;
  if (!ssl_ || !bio) {
    BIO_free(bio);
    fail("TLS: cannot create connection: " + drain_openssl_errors());
    return;
  }
  BIO_set_data(bio, &buffers_);
  SSL_set_bio(ssl_, bio, bio);  // one BIO both ways: the SSL object takes its one reference
  if (role == Role::server) {
    SSL_set_accept_state(ssl_);
    return;
  }

  SSL_set_connect_state(ssl_);
  peer_name_ = context_->server_name().empty() ? std::string(host) : context_->server_name();
  std::string ip = ip_literal(peer_name_);
  if (!ip.empty()) peer_name_ = ip;
  if (peer_name_.empty()) {
    fail("TLS: no server name to connect to");
    return;
  }
  if (ip.empty() && SSL_set_tlsext_host_name(ssl_, peer_name_.c_str()) != 1) {
    fail("TLS: invalid server name '" + peer_name_ + "': " + drain_openssl_errors());
    return;
  }
  if (context_->verifies()) {
    int ok;
    if (ip.empty()) {
      SSL_set_hostflags(ssl_, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      ok = SSL_set1_host(ssl_, peer_name_.c_str());
    } else {
      ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), ip.c_str());
    }
    if (ok != 1) {
      fail("TLS: cannot verify '" + peer_name_ + "': " + drain_openssl_errors());
      return;
    }
  }
  // A session verified for one name must not resume for another, so both the name and the
  // address are part of the key.
  session_key_ = peer_name_;
  if (peer_name_ != host) session_key_ += "@" + std::string(host);
  session_key_ += ":" + std::to_string(port);
  SSL_set_app_data(ssl_, &session_key_);
  if (SSL_SESSION* session = context_->take_session(session_key_)) {
    SSL_set_session(ssl_, session);
    SSL_SESSION_free(session);
  }
  advance_handshake();
}

TlsChannel::~TlsChannel() {
  if (!ssl_) return;
  // OpenSSL makes the session of a connection freed without close_notify unresumable, but
  // WebSocket peers routinely end with the CLOSE frame and a TCP FIN alone. Only a TLS failure
  // should cost the session.
  if (handshake_done_ && !failed_)
    SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(ssl_);  // frees the BIO
}

void TlsChannel::advance_handshake() {
  if (handshake_done_ || failed_ || !ssl_) return;
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  if (r == 1) {
    handshake_done_ = true;
    return;
  }
  int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    ERR_clear_error();
    return;
  }
  fail(e);
}

void TlsChannel::feed_ciphertext(ByteView data) {
  if (failed_ || !ssl_) return;
  buffers_.in.append(data);
  buffers_.in_high = std::max(buffers_.in_high, buffers_.in.size());
  advance_handshake();
}

std::size_t TlsChannel::read_plaintext(MutableByteView out) {
  if (out.empty() || failed_ || !ssl_) return 0;
  advance_handshake();
  if (!handshake_done_ || failed_ || peer_closed_) return 0;
  ERR_clear_error();
  std::size_t n = 0;
  if (SSL_read_ex(ssl_, out.data(), out.size(), &n) == 1) return n;
  int e = SSL_get_error(ssl_, 0);
  switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      ERR_clear_error();
      return 0;
    case SSL_ERROR_ZERO_RETURN:
      peer_closed_ = true;
      ERR_clear_error();
      return 0;
    default:
      fail(e);
      return 0;
  }
}

std::size_t TlsChannel::write_plaintext(ByteView data) {
  if (data.empty() || failed_ || close_sent_ || !ssl_) return 0;
  advance_handshake();
  if (!handshake_done_ || failed_) return 0;
  std::size_t backlog = buffers_.out.size();
  if (backlog >= max_ciphertext_backlog) return 0;
  std::size_t budget = std::min(data.size(), max_ciphertext_backlog - backlog);
  std::size_t total = 0;
  while (total < budget) {
    ERR_clear_error();
    std::size_t n = 0;
    // With partial writes on, each call encrypts up to one record's worth.
    if (SSL_write_ex(ssl_, data.data() + total, budget - total, &n) == 1) {
      total += n;
      continue;
    }
    int e = SSL_get_error(ssl_, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      ERR_clear_error();
      break;
    }
    fail(e);
    break;
  }
  return total;
}

ByteView TlsChannel::pending_ciphertext() {
  buffers_.out_high = std::max(buffers_.out_high, buffers_.out.size());
  return buffers_.out.data();
}

void TlsChannel::consume_ciphertext(std::size_t n) {
  buffers_.out.consume(std::min(n, buffers_.out.size()));
}

bool TlsChannel::holds_burst_buffers() const noexcept {
  return buffers_.in.capacity() > burst_floor || buffers_.out.capacity() > burst_floor;
}

std::size_t TlsChannel::release_burst_buffers() {
  std::size_t freed = 0;
  // Same rule as the session's buffers: free what is more than twice the interval's need, so
  // steady traffic keeps its buffers and a burst does not leave its peak behind.
  // Either may hold a few bytes at any moment of a busy connection (a partial record in, a
  // record not yet written out): what they hold moves to a buffer of its size.
  auto release = [&freed](ByteBuffer& b, std::size_t& high) {
    if (b.capacity() > burst_floor && b.capacity() > 2 * high) {
      freed += b.capacity();
      b.shrink_to_contents();
      freed -= b.capacity();
    }
    high = b.size();
  };
  release(buffers_.in, buffers_.in_high);
  release(buffers_.out, buffers_.out_high);
  return freed;
}

void TlsChannel::close() {
  if (close_sent_ || !ssl_) return;
  close_sent_ = true;
  if (!handshake_done_ || failed_) return;
  ERR_clear_error();
  // 0 means "sent ours, theirs not seen yet", which is all a close needs here.
  SSL_shutdown(ssl_);
  ERR_clear_error();
}

std::size_t TlsChannel::memory_used() const noexcept {
  std::size_t total = sizeof(*this) + buffers_.in.capacity() + buffers_.out.capacity();
  if (ssl_) total += ssl_state_estimate;
  return total;
}

std::string TlsChannel::alpn() const {
  if (!ssl_) return {};
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &data, &len);
  return data ? std::string(reinterpret_cast<const char*>(data), len) : std::string();
}

std::string TlsChannel::sni() const {
  const char* name = ssl_ ? SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name) : nullptr;
  return name ? name : std::string();
}

bool TlsChannel::session_reused() const noexcept {
  return ssl_ && handshake_done_ && SSL_session_reused(ssl_) == 1;
}

std::string_view TlsChannel::protocol() const noexcept {
  if (!ssl_ || !handshake_done_) return {};
  return SSL_get_version(ssl_);
}

void TlsChannel::fail(std::string message) {
  failed_ = true;
  error_ = std::move(message);
  ERR_clear_error();
}

void TlsChannel::fail(int ssl_error) {
  fail(describe_failure(ssl_error));
}

std::string TlsChannel::describe_failure(int ssl_error) {
  unsigned long first = 0;
  bool verify_failed = false;
  for (unsigned long code; (code = ERR_get_error()) != 0;) {
    if (!first) first = code;
    if (ERR_GET_LIB(code) == ERR_LIB_SSL && ERR_GET_REASON(code) == SSL_R_CERTIFICATE_VERIFY_FAILED)
      verify_failed = true;
  }
  if (verify_failed) {
    long result = SSL_get_verify_result(ssl_);
    if (result != X509_V_OK)
      return std::string("TLS: certificate verify failed: ") +
             X509_verify_cert_error_string(result) + verify_hint(result, peer_name_);
    return "TLS: certificate verify failed";
  }
  if (first) {
    char buf[256];
    ERR_error_string_n(first, buf, sizeof buf);
    return "TLS: " + std::string(buf) + std::string(reason_hint(first));
  }
  switch (ssl_error) {
    case SSL_ERROR_ZERO_RETURN:
      return "TLS: the peer closed the connection during the handshake";
    case SSL_ERROR_SYSCALL:
      return "TLS: unexpected end of the TLS stream";
    default:
      return "TLS: failed (SSL_get_error " + std::to_string(ssl_error) + ")";
  }
}

}  // namespace tether::tls
