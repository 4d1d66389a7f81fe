// Observability hooks: a leveled log callback and the frame trace.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

#include "tether/frame_codec.hpp"
#include "tether/protocol.hpp"

namespace tether {

enum class LogLevel : std::uint8_t { error, warn, info, debug };
std::string_view log_level_name(LogLevel level) noexcept;

/// Receives the library's log lines (refusals, protocol errors, timeouts...). Off by
/// default. Called on the loop thread of the connection concerned.
using LogCallback = std::function<void(LogLevel level, std::string_view message)>;

/// One frame in or out of a connection, as the trace sees it.
struct TraceEvent {
  std::uint64_t connection_id;
  TimePoint time;
  bool outgoing;
  const FrameHeader& header;
  ByteView payload_head;  ///< at most the first 32 bytes, unmasked
};
/// Receives every frame in and out when set (see SessionOptions::trace). Loop thread.
using TraceCallback = std::function<void(const TraceEvent& event)>;

}  // namespace tether
