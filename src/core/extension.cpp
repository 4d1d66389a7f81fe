// Sec-WebSocket-Extensions grammar (RFC 6455 §9.1, RFC 7692 §5):
//
//   Sec-WebSocket-Extensions = 1#extension
//   extension = extension-token *( ";" extension-param )
//   extension-param = token [ "=" (token | quoted-string) ]
//
// with OWS allowed around the separators. RFC 6455 §9.1 also requires a quoted value to be a
// token once unquoted, so `b="12"` equals `b=12` and anything else is malformed.
#include "tether/extension.hpp"

#include <cstddef>

namespace tether {
namespace {

bool is_tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_tchar(c)) return false;
  }
  return true;
}

class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {}

  bool at_end() const noexcept { return pos_ == text_.size(); }
  bool peek(char c) const noexcept { return pos_ < text_.size() && text_[pos_] == c; }
  void advance() noexcept { ++pos_; }

  void skip_ows() noexcept {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t')) ++pos_;
  }

  /// Empty when no token starts here, which every caller treats as malformed.
  std::string_view token() noexcept {
    const std::size_t start = pos_;
    while (pos_ < text_.size() && is_tchar(text_[pos_])) ++pos_;
    return text_.substr(start, pos_ - start);
  }

  /// Unquotes a quoted-string starting at the opening DQUOTE; false when unterminated or
  /// when it holds characters no token could contain anyway (controls).
  bool quoted(std::string& out) {
    advance();  // opening DQUOTE
    while (pos_ < text_.size()) {
      char c = text_[pos_++];
      if (c == '"') return true;
      if (c == '\\') {
        if (pos_ == text_.size()) return false;
        c = text_[pos_++];
      }
      const auto uc = static_cast<unsigned char>(c);
      if ((uc < 0x20 && c != '\t') || uc == 0x7f) return false;
      out.push_back(c);
    }
    return false;
  }

 private:
  std::string_view text_;
  std::size_t pos_ = 0;
};

}  // namespace

std::optional<std::vector<ExtensionOffer>> parse_extension_header(std::string_view value) {
  std::vector<ExtensionOffer> offers;
  Cursor in(value);
  while (true) {
    in.skip_ows();
    ExtensionOffer offer;
    const std::string_view name = in.token();
    if (name.empty()) return std::nullopt;
    offer.name = name;
    in.skip_ows();
    while (in.peek(';')) {
      in.advance();
      in.skip_ows();
      const std::string_view param_name = in.token();
      if (param_name.empty()) return std::nullopt;
      ExtensionParam param{std::string(param_name), std::nullopt};
      in.skip_ows();
      if (in.peek('=')) {
        in.advance();
        in.skip_ows();
        std::string param_value;
        if (in.peek('"')) {
          if (!in.quoted(param_value)) return std::nullopt;
        } else {
          param_value = in.token();
        }
        if (!is_token(param_value)) return std::nullopt;
        param.value = std::move(param_value);
        in.skip_ows();
      }
      offer.params.push_back(std::move(param));
    }
    offers.push_back(std::move(offer));
    if (in.at_end()) return offers;
    if (!in.peek(',')) return std::nullopt;
    in.advance();
  }
}

}  // namespace tether
