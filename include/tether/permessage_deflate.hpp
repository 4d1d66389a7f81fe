// permessage-deflate (RFC 7692): negotiation of its four parameters in the opening handshake
// and the per-connection DEFLATE transform of whole message payloads.
//
// Inflating is bounded: a message that would decompress past the session's message size
// limit is refused with 1009 while it is being inflated, a chunk at a time, so a few kilobytes
// of "compression bomb" cannot make the process allocate gigabytes.
//
// Window bits 8. zlib cannot compress raw DEFLATE with a 256-byte window, so when 8 is agreed
// for our compressor it runs with 9. That is still safe for the peer: zlib's compressor never
// emits a distance larger than (1 << bits) - 262, i.e. 250 with 9 bits, which fits the peer's
// 256-byte window. Inflating uses exactly the agreed bits, 8 included (zlib supports it for
// inflating). zlib checks a distance against the window only for data no longer in its output
// buffer, so a peer reaching further back than agreed is caught (1007) across messages, not
// always within one; the result is correct either way.
//
// Close codes chosen by the transform: 1007 for compressed data that is not valid DEFLATE
// (RFC 7692 leaves the code open; 1007, "data inconsistent with the type of the message", is
// what Autobahn expects, where 1002 would blame the framing, which was fine), 1009 for a
// message inflating past the limit, 1011 when zlib runs out of memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tether/extension.hpp"
#include "tether/protocol.hpp"

namespace tether {

/// Tunables of permessage-deflate on one endpoint. A plain aggregate; every field is checked
/// by the PerMessageDeflate and DeflateTransform constructors (std::invalid_argument).
///
/// How each parameter is used, RFC 7692 §7.1:
///  - On a client, the four negotiation fields are what it asks for in its offer. The
///    client_max_window_bits parameter is always offered (value-less when 15), so that a
///    server may lower the client's window.
///  - On a server, they are what it insists on: the no_context_takeover flags are put in
///    every response; server_max_window_bits caps the server's window (lowered further when
///    the client asks); client_max_window_bits below 15 caps the client's window, and an
///    offer without client_max_window_bits is then declined, since that client could not be
///    held to the smaller window and the memory bound would not hold.
struct DeflateOptions {
  /// Server: always send server_no_context_takeover. Client: request it.
  bool server_no_context_takeover = false;
  /// Server: always send client_no_context_takeover. Client: offer it (and then compress
  /// without context takeover whatever the server answers).
  bool client_no_context_takeover = false;
  /// 8..15. Window of the server's compressor (the client's decompressor).
  int server_max_window_bits = 15;
  /// 8..15. Window of the client's compressor (the server's decompressor).
  int client_max_window_bits = 15;
  /// zlib level: 0 (store) .. 9 (smallest), or -1 (Z_DEFAULT_COMPRESSION, i.e. 6).
  int compression_level = 6;
  /// zlib memLevel 1..9: compressor hash memory of 1 << (mem_level + 9) bytes.
  int mem_level = 8;
  /// Messages smaller than this go out uncompressed (RSV1 clear); 0 compresses everything.
  std::size_t compress_threshold = 64;
};

/// The parameters in force on one connection, RFC 7692 §7.1, as the response stated them.
/// A parameter the response omitted has its RFC default: context takeover, 15 bits.
struct DeflateAgreement {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 15;
  int client_max_window_bits = 15;
  bool operator==(const DeflateAgreement&) const = default;
};

/// The per-connection DEFLATE transform (RFC 7692 §7.2). Not thread-safe: one session owns
/// it. zlib state is allocated on the first message in each direction, so an idle connection
/// holds none.
class DeflateTransform final : public MessageTransform {
 public:
  /// `local` decides which half of `agreed` applies to which direction: a server compresses
  /// with the server_* parameters and inflates with the client_* ones. The compressor uses
  /// the smaller of the agreed window and the one in `options`, and drops its context when
  /// either asks for it. Throws std::invalid_argument for out-of-range bits or options.
  DeflateTransform(Role local, const DeflateAgreement& agreed, const DeflateOptions& options = {});
  ~DeflateTransform() override;
  DeflateTransform(const DeflateTransform&) = delete;
  DeflateTransform& operator=(const DeflateTransform&) = delete;

  /// Compresses a whole message (RFC 7692 §7.2.1): raw DEFLATE, sync flush, trailing
  /// 00 00 ff ff removed. Returns false (send as is) below the threshold. Throws
  /// std::bad_alloc when memory runs out; the compressor then restarts without context, so
  /// the messages after it still decode.
  bool encode(MessageType type, ByteView payload, std::vector<std::byte>& out) override;

  /// Inflates one piece of a compressed message (RFC 7692 §7.2.2), appending to `out`;
  /// `last` appends 00 00 ff ff first. Returns 1009 as soon as `out` would grow past
  /// `max_size` (it never does), 1007 for invalid DEFLATE data or a message ending inside a
  /// block, 1011 when zlib runs out of memory. After an error every later call repeats it.
  /// Accepts blocks with BFINAL set (§7.2.3.4), keeping the window across them, and an
  /// empty payload as an empty message.
  TransformStatus decode(ByteView fragment, bool last, std::vector<std::byte>& out,
                         std::uint64_t max_size) override;

  /// Estimated zlib memory of the allocated directions: compressor
  /// (1 << (bits + 2)) + (1 << (mem_level + 9)), decompressor (1 << bits) + 7 KiB.
  std::size_t memory_used() const override;
  /// DEFLATE expands incompressible data by 5 bytes per stored block of up to 64 KiB.
  std::uint64_t max_encoded_size(std::uint64_t decoded_limit) const override;

  const DeflateAgreement& agreement() const noexcept { return agreed_; }
  /// Window bits our compressor is limited to (8..15; zlib runs 8 as 9, see the file comment).
  int compress_window_bits() const noexcept { return compress_bits_; }
  /// Window bits our decompressor accepts (8..15).
  int decompress_window_bits() const noexcept { return inflate_bits_; }
  bool compress_no_context_takeover() const noexcept { return compress_no_context_; }
  bool decompress_no_context_takeover() const noexcept { return inflate_no_context_; }

 private:
  struct Deflater;
  struct Inflater;
  Deflater& deflater();
  TransformStatus inflate_into(ByteView in, bool flush_marker, std::vector<std::byte>& out,
                               std::uint64_t max_size);
  TransformStatus failed(TransformStatus status) noexcept;

  DeflateAgreement agreed_;
  std::unique_ptr<Deflater> deflater_;
  std::unique_ptr<Inflater> inflater_;
  std::size_t threshold_;
  int compress_bits_;
  int inflate_bits_;
  int level_;
  int mem_level_;
  bool compress_no_context_;
  bool inflate_no_context_;
  bool message_started_ = false;  // the incoming message had compressed bytes
  TransformStatus error_{};
};

/// The permessage-deflate extension, RFC 7692. Immutable after construction, so one instance
/// may be shared by every connection of a client or server, on any thread.
class PerMessageDeflate final : public Extension {
 public:
  /// Throws std::invalid_argument when an option is out of range.
  explicit PerMessageDeflate(DeflateOptions options = {});

  std::string_view name() const override { return "permessage-deflate"; }
  /// One offer, e.g. "server_no_context_takeover; client_max_window_bits".
  std::string client_offer() const override;
  /// Checks the server's response against our offer (§7.1): unknown, duplicate or
  /// malformed parameters, window bits outside 8..15 or above what we asked for, and
  /// client_max_window_bits without a value all fail with a message in `error`. A server
  /// that leaves out a parameter we asked for is taken at its word: we decode with the RFC
  /// default for it (context takeover, 15 bits), which always works.
  std::unique_ptr<MessageTransform> client_accept(const ExtensionOffer& response,
                                                  std::string& error) const override;
  /// Accepts `offer` unless it is invalid (unknown, duplicate or malformed parameters,
  /// window bits outside 8..15 or with leading zeros) or cannot meet our options (see
  /// DeflateOptions). The response honours every request of the offer and adds ours.
  std::unique_ptr<MessageTransform> server_accept(const ExtensionOffer& offer,
                                                  std::string& response_params) const override;

  const DeflateOptions& options() const noexcept { return options_; }

 private:
  DeflateOptions options_;
};

}  // namespace tether
