#include "tether/permessage_deflate.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <new>
#include <optional>
#include <stdexcept>

namespace tether {
namespace {

constexpr int max_bits = 15;
constexpr int min_bits = 8;
// zlib refuses raw deflate with an 8-bit window; see the header for why 9 is safe instead.
constexpr int min_zlib_deflate_bits = 9;

// RFC 7692 §7.2.1: what a sync flush ends with, removed by the sender, added back here.
constexpr std::array<std::byte, 4> flush_marker{std::byte{0x00}, std::byte{0x00}, std::byte{0xff},
                                                std::byte{0xff}};

// Inflating this much at a time, then checking the limit, is what bounds a bomb's cost to
// the limit plus one chunk of work.
constexpr std::size_t inflate_chunk = 16 * 1024;
// zlib counts in 32-bit uInt; larger buffers are handed over in slices.
constexpr std::size_t zlib_slice = std::size_t{1} << 30;
// sizeof(struct inflate_state) in zlib 1.2.x, rounded up.
constexpr std::size_t inflate_state_bytes = 7 * 1024;

constexpr TransformStatus invalid_data{close_code::invalid_payload, "invalid compressed data"};
constexpr TransformStatus truncated_data{close_code::invalid_payload,
                                         "compressed message ends inside a deflate block"};
constexpr TransformStatus too_big{close_code::message_too_big,
                                  "message too big after decompression"};
constexpr TransformStatus no_memory{close_code::internal_error, "out of memory while inflating"};

bool valid_bits(int bits) noexcept {
  return bits >= min_bits && bits <= max_bits;
}

void check_options(const DeflateOptions& o) {
  if (!valid_bits(o.server_max_window_bits))
    throw std::invalid_argument("tether: server_max_window_bits must be 8..15");
  if (!valid_bits(o.client_max_window_bits))
    throw std::invalid_argument("tether: client_max_window_bits must be 8..15");
  if (o.compression_level < -1 || o.compression_level > 9)
    throw std::invalid_argument("tether: compression_level must be -1..9");
  if (o.mem_level < 1 || o.mem_level > 9)
    throw std::invalid_argument("tether: mem_level must be 1..9");
}

Bytef* zptr(std::byte* p) noexcept {
  return reinterpret_cast<Bytef*>(p);
}
// zlib's next_in is not const-qualified unless built with ZLIB_CONST; it never writes there.
Bytef* zptr(const std::byte* p) noexcept {
  return const_cast<Bytef*>(reinterpret_cast<const Bytef*>(p));
}

// ---- negotiation (RFC 7692 §7.1) -----------------------------------------------------

constexpr std::string_view server_no_context = "server_no_context_takeover";
constexpr std::string_view client_no_context = "client_no_context_takeover";
constexpr std::string_view server_bits_name = "server_max_window_bits";
constexpr std::string_view client_bits_name = "client_max_window_bits";

struct Params {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  std::optional<int> server_max_window_bits;
  bool client_max_window_bits_present = false;
  std::optional<int> client_max_window_bits;  // nullopt with _present: value-less
};

// §7.1.2.1: "a decimal integer value without leading zeros between 8 to 15, inclusive".
std::optional<int> parse_bits(std::string_view text) noexcept {
  if (text.empty() || text.size() > 2 || text[0] == '0') return std::nullopt;
  int n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  if (!valid_bits(n)) return std::nullopt;
  return n;
}

// Validates the parameters of an offer (from a client) or a response (from a server).
// Returns an empty string when valid, otherwise why not, worded for the client's error.
std::string parse_params(const std::vector<ExtensionParam>& params, bool is_offer, Params& out) {
  const std::string who = is_offer ? "client sent " : "server sent ";
  std::vector<std::string_view> seen;
  for (const ExtensionParam& p : params) {
    // §7.1: an offer with the same parameter twice is declined, a response fails.
    if (std::find(seen.begin(), seen.end(), p.name) != seen.end())
      return who + "parameter " + p.name + " twice";
    seen.push_back(p.name);
    if (p.name == server_no_context || p.name == client_no_context) {
      if (p.value) return who + p.name + " with a value (" + *p.value + ")";
      (p.name == server_no_context ? out.server_no_context_takeover
                                   : out.client_no_context_takeover) = true;
    } else if (p.name == server_bits_name) {
      if (!p.value) return who + p.name + " without a value";
      out.server_max_window_bits = parse_bits(*p.value);
      if (!out.server_max_window_bits) return who + "invalid " + p.name + "=" + *p.value;
    } else if (p.name == client_bits_name) {
      out.client_max_window_bits_present = true;
      // Value-less means "you may choose my window" in an offer; a response must choose.
      if (!p.value) {
        if (!is_offer) return who + p.name + " without a value";
        continue;
      }
      out.client_max_window_bits = parse_bits(*p.value);
      if (!out.client_max_window_bits) return who + "invalid " + p.name + "=" + *p.value;
    } else {
      return who + "unknown parameter " + p.name;
    }
  }
  return {};
}

void append_param(std::string& out, std::string_view name, int value = 0) {
  if (!out.empty()) out.append("; ");
  out.append(name);
  if (value != 0) out.append("=").append(std::to_string(value));
}

// Raw DEFLATE of `payload` with a sync flush, the trailing 00 00 ff ff removed (§7.2.1).
void compress(z_stream& z, ByteView payload, std::vector<std::byte>& out) {
  out.resize(
      std::min<std::size_t>(deflateBound(&z, payload.size()) + 16, 1024 + payload.size() / 4));
  std::size_t produced = 0;
  std::size_t left = payload.size();
  z.next_in = zptr(payload.data());
  while (true) {
    const std::size_t slice = std::min(left, zlib_slice);
    z.avail_in = static_cast<uInt>(slice);
    left -= slice;
    const int flush = left == 0 ? Z_SYNC_FLUSH : Z_NO_FLUSH;
    // zlib's contract for a flush: call again while it fills the whole output buffer.
    do {
      if (produced == out.size()) out.resize(out.size() * 2);
      const std::size_t room = std::min(out.size() - produced, zlib_slice);
      z.next_out = zptr(out.data() + produced);
      z.avail_out = static_cast<uInt>(room);
      if (deflate(&z, flush) == Z_STREAM_ERROR)
        throw std::logic_error("tether: deflate stream state is inconsistent");
      produced += room - z.avail_out;
    } while (z.avail_out == 0 || z.avail_in > 0);
    if (left == 0) break;
  }
  if (produced < flush_marker.size() || std::memcmp(out.data() + produced - flush_marker.size(),
                                                    flush_marker.data(), flush_marker.size()) != 0)
    throw std::logic_error("tether: deflate sync flush did not end with 00 00 ff ff");
  out.resize(produced - flush_marker.size());
}

}  // namespace

// ---- transform ---------------------------------------------------------------------------

struct DeflateTransform::Deflater {
  z_stream z{};
  ~Deflater() { deflateEnd(&z); }
};

struct DeflateTransform::Inflater {
  z_stream z{};
  // No input since the stream (re)started: a message ending here ends on a block boundary
  // and needs no flush marker.
  bool fresh = true;
  ~Inflater() { inflateEnd(&z); }
};

DeflateTransform::DeflateTransform(Role local, const DeflateAgreement& agreed,
                                   const DeflateOptions& options)
    : agreed_(agreed), threshold_(options.compress_threshold) {
  check_options(options);
  if (!valid_bits(agreed.server_max_window_bits) || !valid_bits(agreed.client_max_window_bits))
    throw std::invalid_argument("tether: agreed window bits must be 8..15");
  const bool server = local == Role::server;
  compress_bits_ = server ? std::min(agreed.server_max_window_bits, options.server_max_window_bits)
                          : std::min(agreed.client_max_window_bits, options.client_max_window_bits);
  compress_no_context_ =
      server ? agreed.server_no_context_takeover || options.server_no_context_takeover
             : agreed.client_no_context_takeover || options.client_no_context_takeover;
  inflate_bits_ = server ? agreed.client_max_window_bits : agreed.server_max_window_bits;
  inflate_no_context_ =
      server ? agreed.client_no_context_takeover : agreed.server_no_context_takeover;
  level_ = options.compression_level;
  mem_level_ = options.mem_level;
}

DeflateTransform::~DeflateTransform() = default;

DeflateTransform::Deflater& DeflateTransform::deflater() {
  if (!deflater_) {
    auto d = std::make_unique<Deflater>();
    const int rc =
        deflateInit2(&d->z, level_, Z_DEFLATED, -std::max(compress_bits_, min_zlib_deflate_bits),
                     mem_level_, Z_DEFAULT_STRATEGY);
    if (rc == Z_MEM_ERROR) throw std::bad_alloc();
    if (rc != Z_OK) throw std::logic_error("tether: deflateInit2 refused its parameters");
    deflater_ = std::move(d);
  }
  return *deflater_;
}

bool DeflateTransform::encode(MessageType, ByteView payload, std::vector<std::byte>& out) {
  out.clear();
  if (payload.size() < threshold_) return false;
  // zlib emits nothing for an empty input right after a flush; RFC 7692 §7.2.3.6 gives the
  // one-byte form, valid whatever the compressor's state.
  if (payload.empty()) {
    out.push_back(std::byte{0x00});
    return true;
  }
  z_stream& z = deflater().z;
  try {
    compress(z, payload, out);
  } catch (...) {
    // Part of the message may be in our window but will never reach the peer's; a fresh
    // stream refers to nothing before it, so the peer decodes what follows either way.
    deflateReset(&z);
    out.clear();
    throw;
  }
  if (compress_no_context_) deflateReset(&z);
  return true;
}

TransformStatus DeflateTransform::failed(TransformStatus status) noexcept {
  error_ = status;
  return status;
}

TransformStatus DeflateTransform::decode(ByteView fragment, bool last, std::vector<std::byte>& out,
                                         std::uint64_t max_size) {
  if (error_.close_code != 0) return error_;
  if (!fragment.empty()) {
    message_started_ = true;
    auto st = inflate_into(fragment, false, out, max_size);
    if (st.close_code != 0) return failed(st);
  }
  if (!last) return {};
  if (!message_started_) return {};  // an empty payload: lenient, an empty message
  message_started_ = false;
  Inflater& inf = *inflater_;
  if (!inf.fresh) {
    auto st = inflate_into(flush_marker, true, out, max_size);
    if (st.close_code != 0) return failed(st);
    // The marker closes an empty stored block, which leaves inflate expecting a block
    // header. Anything else means the message stopped in the middle of a block, and the
    // next one would be decoded as its continuation.
    if (!inf.fresh && (inf.z.data_type & 128) == 0) return failed(truncated_data);
  }
  if (inflate_no_context_) {
    inflateReset(&inf.z);
    inf.fresh = true;
  }
  return {};
}

TransformStatus DeflateTransform::inflate_into(ByteView in, bool flush_marker_only,
                                               std::vector<std::byte>& out,
                                               std::uint64_t max_size) {
  if (!inflater_) {
    auto inf = std::make_unique<Inflater>();
    const int rc = inflateInit2(&inf->z, -inflate_bits_);
    if (rc == Z_MEM_ERROR) return no_memory;
    if (rc != Z_OK) throw std::logic_error("tether: inflateInit2 refused its parameters");
    inflater_ = std::move(inf);
  }
  Inflater& inf = *inflater_;
  z_stream& z = inf.z;
  const std::byte* next = in.data();
  std::size_t left = in.size();
  z.avail_in = 0;
  bool output_full = false;  // inflate may hold more output than the last buffer took
  while (true) {
    if (z.avail_in == 0 && left > 0) {
      const std::size_t slice = std::min(left, zlib_slice);
      z.next_in = zptr(next);
      z.avail_in = static_cast<uInt>(slice);
      next += slice;
      left -= slice;
    }
    if (z.avail_in == 0 && !output_full) return {};
    if (z.avail_in > 0) inf.fresh = false;

    const std::size_t size = out.size();
    const std::size_t room =
        size < max_size
            ? static_cast<std::size_t>(std::min<std::uint64_t>(max_size - size, inflate_chunk))
            : 0;
    // Doubling as usual, but never past the limit: a message at the limit must not cost
    // twice the limit in capacity.
    const auto grow = [&](std::size_t n) {
      if (size + n <= out.capacity()) return;
      std::size_t cap = std::max(size + n, out.capacity() * 2);
      if (cap > max_size) cap = std::max<std::size_t>(size + n, max_size);
      out.reserve(cap);
    };
    // Growing `out` by a chunk zero-fills it, which is wasted when a piece inflates to a few
    // bytes, as most do. So a call starts in a per-thread scratch chunk and copies what it
    // produced; once a chunk comes out full, more is likely, and inflate writes into `out`.
    thread_local std::array<unsigned char, inflate_chunk> scratch;
    const bool direct = output_full && room > 0;
    if (direct) {
      grow(room);
      out.resize(size + room);
      z.next_out = zptr(out.data() + size);
    } else {
      z.next_out = scratch.data();
    }
    // At the limit one byte of room tells whether the message goes past it.
    z.avail_out = static_cast<uInt>(room > 0 ? room : 1);
    const int rc = inflate(&z, Z_SYNC_FLUSH);
    const std::size_t produced = (room > 0 ? room : 1) - z.avail_out;
    if (room == 0) {
      if (produced > 0) return too_big;
    } else if (direct) {
      out.resize(size + produced);
    } else {
      grow(produced);  // only what was produced: a small message leaves a small buffer
      const auto* p = reinterpret_cast<const std::byte*>(scratch.data());
      out.insert(out.end(), p, p + produced);
    }
    output_full = z.avail_out == 0;
    switch (rc) {
      case Z_OK:
        break;
      case Z_BUF_ERROR:
        // No progress with output room left can only mean no input left.
        if (z.avail_in > 0 && !output_full) return invalid_data;
        break;
      case Z_STREAM_END: {
        // A block with BFINAL ends the DEFLATE stream, but not the message nor the shared
        // window (RFC 7692 §7.2.3.4): what follows is a new stream over the same window.
        if (flush_marker_only) {
          // Our own marker after the end: nothing of the peer's is left to decode.
          z.avail_in = 0;
          left = 0;
        }
        std::array<Bytef, std::size_t{1} << max_bits> window;
        uInt length = 0;
        inflateGetDictionary(&z, window.data(), &length);
        inflateReset(&z);
        if (length > 0 && inflateSetDictionary(&z, window.data(), length) != Z_OK)
          return invalid_data;
        inf.fresh = true;
        output_full = false;
        break;
      }
      case Z_MEM_ERROR:
        return no_memory;
      default:  // Z_DATA_ERROR, Z_NEED_DICT (impossible raw), Z_STREAM_ERROR
        return invalid_data;
    }
  }
}

std::size_t DeflateTransform::memory_used() const {
  std::size_t n = 0;
  if (deflater_) {
    const int bits = std::max(compress_bits_, min_zlib_deflate_bits);
    n += sizeof(Deflater) + (std::size_t{1} << (bits + 2)) + (std::size_t{1} << (mem_level_ + 9));
  }
  if (inflater_) n += sizeof(Inflater) + (std::size_t{1} << inflate_bits_) + inflate_state_bytes;
  return n;
}

// ---- extension -------------------------------------------------------------------------

PerMessageDeflate::PerMessageDeflate(DeflateOptions options) : options_(options) {
  check_options(options_);
}

std::string PerMessageDeflate::client_offer() const {
  std::string offer;
  if (options_.server_no_context_takeover) append_param(offer, server_no_context);
  if (options_.client_no_context_takeover) append_param(offer, client_no_context);
  if (options_.server_max_window_bits < max_bits)
    append_param(offer, server_bits_name, options_.server_max_window_bits);
  // Always offered: it lets the server lower our window and so its own memory.
  append_param(offer, client_bits_name,
               options_.client_max_window_bits < max_bits ? options_.client_max_window_bits : 0);
  return offer;
}

std::unique_ptr<MessageTransform> PerMessageDeflate::client_accept(const ExtensionOffer& response,
                                                                   std::string& error) const {
  Params p;
  error = parse_params(response.params, false, p);
  if (!error.empty()) return nullptr;
  // §7.1.2.1: the server may lower what we asked for, never raise it.
  const bool requested_server_bits = options_.server_max_window_bits < max_bits;
  if (requested_server_bits &&
      p.server_max_window_bits.value_or(0) > options_.server_max_window_bits) {
    error = "server sent server_max_window_bits=" + std::to_string(*p.server_max_window_bits) +
            " above the requested " + std::to_string(options_.server_max_window_bits);
    return nullptr;
  }
  // §7.1.2.2: the same for our window, when we offered a value.
  if (p.client_max_window_bits && *p.client_max_window_bits > options_.client_max_window_bits) {
    error = "server sent client_max_window_bits=" + std::to_string(*p.client_max_window_bits) +
            " above the offered " + std::to_string(options_.client_max_window_bits);
    return nullptr;
  }
  DeflateAgreement agreed;
  agreed.server_no_context_takeover = p.server_no_context_takeover;
  agreed.client_no_context_takeover = p.client_no_context_takeover;
  agreed.server_max_window_bits = p.server_max_window_bits.value_or(max_bits);
  agreed.client_max_window_bits = p.client_max_window_bits.value_or(max_bits);
  return std::make_unique<DeflateTransform>(Role::client, agreed, options_);
}

std::unique_ptr<MessageTransform> PerMessageDeflate::server_accept(
    const ExtensionOffer& offer, std::string& response_params) const {
  response_params.clear();
  Params p;
  if (!parse_params(offer.params, true, p).empty()) return nullptr;
  DeflateAgreement agreed;
  agreed.server_no_context_takeover =
      p.server_no_context_takeover || options_.server_no_context_takeover;
  agreed.client_no_context_takeover =
      p.client_no_context_takeover || options_.client_no_context_takeover;
  agreed.server_max_window_bits =
      std::min(options_.server_max_window_bits, p.server_max_window_bits.value_or(max_bits));
  if (p.client_max_window_bits_present) {
    agreed.client_max_window_bits =
        std::min(options_.client_max_window_bits, p.client_max_window_bits.value_or(max_bits));
  } else if (options_.client_max_window_bits < max_bits) {
    // §7.1.2.2: without the parameter in the offer the response must not limit the client.
    return nullptr;
  }

  if (agreed.server_no_context_takeover) append_param(response_params, server_no_context);
  if (agreed.client_no_context_takeover) append_param(response_params, client_no_context);
  // §7.1.2.1: a requested limit is accepted by answering it; our own limit is worth telling
  // even unasked, so that the client can allocate less.
  if (p.server_max_window_bits || agreed.server_max_window_bits < max_bits)
    append_param(response_params, server_bits_name, agreed.server_max_window_bits);
  if (agreed.client_max_window_bits < max_bits)
    append_param(response_params, client_bits_name, agreed.client_max_window_bits);
  return std::make_unique<DeflateTransform>(Role::server, agreed, options_);
}

std::uint64_t DeflateTransform::max_encoded_size(std::uint64_t decoded_limit) const {
  // The sender's memLevel is unknown here, and zlib ends a stored block every
  // (1 << (memLevel + 6)) - 1 bytes: 5 bytes per 127 at memLevel 1, under 4%. One sixteenth
  // plus 1 KiB covers every memLevel with the final empty block and the flush marker.
  std::uint64_t extra = decoded_limit / 16 + 1024;
  return decoded_limit > UINT64_MAX - extra ? UINT64_MAX : decoded_limit + extra;
}

}  // namespace tether
