// Incremental UTF-8 validation (RFC 3629) for text messages, fail-fast across fragments.
#pragma once

#include <cstdint>

#include "tether/protocol.hpp"

namespace tether {

/// Validates UTF-8 fed in pieces of any size. `feed` returns false as soon as the bytes seen
/// so far cannot be the start of valid UTF-8 (an impossible byte, an overlong form, a
/// surrogate, a code point above U+10FFFF), so a bad text message is refused at the fragment
/// where it breaks, as RFC 6455 §8.1 asks, not at its end.
class Utf8Validator {
 public:
  /// Validates the next piece. Once it returned false, it keeps returning false until reset().
  bool feed(ByteView bytes) noexcept;
  /// True when everything fed so far is valid and ends on a code point boundary.
  bool complete() const noexcept { return state_ == accept; }
  void reset() noexcept { state_ = accept; }

 private:
  static constexpr std::uint8_t accept = 0;
  static constexpr std::uint8_t reject = 1;
  std::uint8_t state_ = accept;
};

/// Whole-buffer check: valid UTF-8 that ends on a code point boundary.
bool is_valid_utf8(ByteView bytes) noexcept;

}  // namespace tether
