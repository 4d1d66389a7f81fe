#include "tether/observe.hpp"
#include "tether/connection.hpp"

namespace tether {

std::string_view log_level_name(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::error:
      return "error";
    case LogLevel::warn:
      return "warn";
    case LogLevel::info:
      return "info";
    case LogLevel::debug:
      return "debug";
  }
  return "?";
}

std::string_view send_result_name(SendResult r) noexcept {
  switch (r) {
    case SendResult::ok:
      return "ok";
    case SendResult::closed:
      return "closed";
    case SendResult::backpressure:
      return "backpressure";
    case SendResult::dropped:
      return "dropped";
    case SendResult::invalid:
      return "invalid";
  }
  return "?";
}

}  // namespace tether
