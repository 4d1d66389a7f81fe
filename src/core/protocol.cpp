#include "tether/protocol.hpp"

namespace tether {

std::string_view opcode_name(Opcode op) noexcept {
  switch (op) {
    case Opcode::continuation:
      return "CONT";
    case Opcode::text:
      return "TEXT";
    case Opcode::binary:
      return "BINARY";
    case Opcode::close:
      return "CLOSE";
    case Opcode::ping:
      return "PING";
    case Opcode::pong:
      return "PONG";
  }
  // The decoder stores the raw 4-bit opcode before rejecting it, so a trace of a refused
  // frame can reach here with a value outside the enum.
  return "RESERVED";
}

}  // namespace tether
