#include <charconv>

#include "tether/client.hpp"

namespace tether {

std::string WebSocketUrl::host_header() const {
  // Appends rather than operator+ chains: g++ 12 -O3 reports a false -Wrestrict on those.
  std::string h;
  if (host.find(':') != std::string::npos)
    h.append("[").append(host).append("]");
  else
    h.append(host);
  if (port != (secure ? 443 : 80)) h.append(":").append(std::to_string(port));
  return h;
}

std::optional<WebSocketUrl> parse_websocket_url(std::string_view url, std::string* error) {
  auto fail = [&](std::string why) -> std::optional<WebSocketUrl> {
    if (error) *error = "invalid URL '" + std::string(url) + "': " + why;
    return std::nullopt;
  };
  WebSocketUrl u;
  if (url.starts_with("ws://")) {
    url.remove_prefix(5);
  } else if (url.starts_with("wss://")) {
    u.secure = true;
    u.port = 443;
    url.remove_prefix(6);
  } else {
    return fail("the scheme must be ws:// or wss://");
  }
  std::size_t end = url.find_first_of("/?#");
  std::string_view authority = url.substr(0, end);
  std::string_view rest = end == std::string_view::npos ? std::string_view{} : url.substr(end);
  if (authority.find('@') != std::string_view::npos) return fail("user info is not supported");
  std::string_view port_text;
  if (authority.starts_with("[")) {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return fail("unterminated IPv6 address");
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return fail("unexpected text after the IPv6 address");
      port_text = after.substr(1);
    }
  } else {
    std::size_t colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (u.host.empty()) return fail("no host");
  if (!port_text.empty()) {
    unsigned p = 0;
    auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), p);
    if (ec != std::errc{} || ptr != port_text.data() + port_text.size() || p == 0 || p > 65535)
      return fail("bad port '" + std::string(port_text) + "'");
    u.port = static_cast<std::uint16_t>(p);
  }
  rest = rest.substr(0, rest.find('#'));  // fragments are never sent (RFC 6455 §3)
  if (rest.empty())
    u.target = "/";
  else if (rest[0] == '?')
    u.target.assign("/").append(rest);
  else
    u.target = std::string(rest);
  for (char ch : u.target)
    if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f)
      return fail("unescaped space or control character in the path");
  return u;
}

}  // namespace tether
