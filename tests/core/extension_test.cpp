#include "tether/extension.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace tether {
namespace {

/// Renders a parse result in one canonical form so each table row is a single comparison:
/// offers separated by " | ", params by ";", values after "=", "<error>" for nullopt.
std::string render(const std::optional<std::vector<ExtensionOffer>>& offers) {
  if (!offers) return "<error>";
  std::string out;
  for (const ExtensionOffer& offer : *offers) {
    if (!out.empty()) out += " | ";
    out += offer.name;
    for (const ExtensionParam& param : offer.params) {
      out += ";" + param.name;
      if (param.value) out += "=" + *param.value;
    }
  }
  return out;
}

struct Row {
  const char* input;
  const char* expected;
};

void PrintTo(const Row& row, std::ostream* os) {
  *os << '[' << row.input << ']';
}

class ParseExtensionHeader : public testing::TestWithParam<Row> {};

TEST_P(ParseExtensionHeader, Parses) {
  EXPECT_EQ(render(parse_extension_header(GetParam().input)), GetParam().expected)
      << "input: [" << GetParam().input << "]";
}

INSTANTIATE_TEST_SUITE_P(
    Valid, ParseExtensionHeader,
    testing::Values(Row{"permessage-deflate", "permessage-deflate"},
                    Row{"permessage-deflate; client_max_window_bits",
                        "permessage-deflate;client_max_window_bits"},
                    Row{"permessage-deflate; client_max_window_bits=10, permessage-deflate",
                        "permessage-deflate;client_max_window_bits=10 | permessage-deflate"},
                    Row{"a; b=\"12\"", "a;b=12"},
                    Row{"a; b=\"1\\2\"", "a;b=12"},  // quoted-pair unescapes to the plain character
                    Row{"  a ;b = 1 ;  c\t,\tx-y  ", "a;b=1;c | x-y"},
                    Row{"permessage-deflate; server_no_context_takeover; client_max_window_bits=15",
                        "permessage-deflate;server_no_context_takeover;client_max_window_bits=15"},
                    Row{"a,b", "a | b"}));

INSTANTIATE_TEST_SUITE_P(Malformed, ParseExtensionHeader,
                         testing::Values(Row{"", "<error>"},        //
                                         Row{"   ", "<error>"},     //
                                         Row{";", "<error>"},       //
                                         Row{"a;;b", "<error>"},    //
                                         Row{"a; b=", "<error>"},   //
                                         Row{"a, , b", "<error>"},  //
                                         Row{"a,", "<error>"},      //
                                         Row{",a", "<error>"},      //
                                         Row{"a; b=\"1 2\"", "<error>"},
                                         Row{"a; b=\"\"", "<error>"},
                                         Row{"a; b=\"12", "<error>"},  // unterminated
                                         Row{"a; b=1=2", "<error>"}, Row{"a b", "<error>"},
                                         Row{"a; b c", "<error>"}, Row{"a/b", "<error>"},
                                         Row{"a;", "<error>"}, Row{"a; =1", "<error>"},
                                         Row{"a; b=1 2", "<error>"}, Row{"a\r\n; b", "<error>"}));

TEST(ParseExtensionHeaderDetails, ValuelessParamHasNoValueAndEmptyListStaysEmpty) {
  const auto offers = parse_extension_header("permessage-deflate; client_max_window_bits");
  ASSERT_TRUE(offers);
  ASSERT_EQ(offers->size(), 1u);
  ASSERT_EQ((*offers)[0].params.size(), 1u);
  EXPECT_FALSE((*offers)[0].params[0].value.has_value());

  const auto bare = parse_extension_header("x");
  ASSERT_TRUE(bare);
  EXPECT_TRUE((*bare)[0].params.empty());
}

}  // namespace
}  // namespace tether
