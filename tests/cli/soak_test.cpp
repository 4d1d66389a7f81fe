// `tether soak` run as a user runs it: against its own server, against `tether serve`, and
// against an in-test server that corrupts echoes, which it must catch.
#include <gtest/gtest.h>

#include <zlib.h>

#include <cstdio>
#include <regex>

#include "cli/cli_support.hpp"

namespace tether::cli_test {
namespace {

const std::vector<std::string> report_keys = {"sent",
                                              "received",
                                              "verified",
                                              "corrupted",
                                              "lost",
                                              "pings",
                                              "pongs",
                                              "reconnects",
                                              "p99_us",
                                              "rss_start_kb",
                                              "rss_warm_kb",
                                              "rss_end_kb",
                                              "rss_anon_start_kb",
                                              "rss_anon_warm_kb",
                                              "rss_anon_end_kb",
                                              "max_burst_warmup",
                                              "max_burst_after_warmup"};

nlohmann::json soak_report(const Child& child, const std::vector<std::string>& extra_keys = {}) {
  nlohmann::json report = last_json_line(child.out());
  EXPECT_TRUE(report.is_object()) << child.out() << "\n" << child.err();
  if (!report.is_object()) return nlohmann::json::object();
  std::vector<std::string> keys;
  for (const auto& item : report.items()) keys.push_back(item.key());
  std::vector<std::string> expected = report_keys;
  expected.insert(expected.end(), extra_keys.begin(), extra_keys.end());
  std::sort(keys.begin(), keys.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(keys, expected) << report.dump();
  return report;
}

void expect_passed(const nlohmann::json& report) {
  EXPECT_GT(report.value("sent", 0u), 0u) << report.dump();
  EXPECT_EQ(report["verified"], report["sent"]) << report.dump();
  EXPECT_EQ(report["received"], report["sent"]) << report.dump();
  EXPECT_EQ(report["corrupted"], 0) << report.dump();
  EXPECT_EQ(report["lost"], 0) << report.dump();
  EXPECT_GT(report.value("rss_start_kb", 0u), 0u) << report.dump();
  EXPECT_GT(report.value("rss_warm_kb", 0u), 0u) << report.dump();
  EXPECT_GT(report.value("rss_end_kb", 0u), 0u) << report.dump();
  // The anonymous part is part of the whole (the heap alone is more than nothing).
  for (const char* part : {"start", "warm", "end"}) {
    const std::uint64_t anon = report.value(std::string("rss_anon_") + part + "_kb", 0u);
    EXPECT_GT(anon, 0u) << report.dump();
    EXPECT_LT(anon, report.value(std::string("rss_") + part + "_kb", 0u)) << report.dump();
  }
  // Messages went out before and after the warm-up sample; no tick sent more than all of them.
  EXPECT_GE(report.value("max_burst_warmup", 0u), 1u) << report.dump();
  EXPECT_GE(report.value("max_burst_after_warmup", 0u), 1u) << report.dump();
  EXPECT_LE(report.value("max_burst_after_warmup", 0u), report.value("sent", 0u)) << report.dump();
}

TEST(CliSoak, PassesAgainstItsOwnServer) {
  auto soak = run_tether({"soak", "--duration", "2s", "--rate", "200", "--ping-interval", "200ms",
                          "--connections", "2", "--json"});
  EXPECT_EQ(soak->wait_exit(), 0) << soak->err();
  const nlohmann::json report = soak_report(*soak);
  expect_passed(report);
  // 2 s at 200/s: the pace follows the clock, so only a late end timer adds a little.
  EXPECT_GE(report.value("sent", 0u), 390u) << report.dump();
  EXPECT_LE(report.value("sent", 0u), 500u) << report.dump();
  EXPECT_GT(report.value("pings", 0u), 0u) << report.dump();
  EXPECT_EQ(report["reconnects"], 0);
  EXPECT_EQ(soak->out().find('\r'), std::string::npos);  // no progress bar off a terminal
}

// --settle keeps the drained connections open and idle, then reads the RSS once more: the
// reading that tells buffers a late catch-up grew (and the release checks give back) from
// memory the run kept.
TEST(CliSoak, SettleReadsTheRssAgainAfterTheDrain) {
  auto soak = run_tether({"soak", "--duration", "1s", "--rate", "100", "--ping-interval", "1s",
                          "--settle", "300ms", "--json"});
  EXPECT_EQ(soak->wait_exit(), 0) << soak->err();
  const nlohmann::json report = soak_report(*soak, {"rss_settled_kb", "rss_anon_settled_kb"});
  expect_passed(report);
  const std::uint64_t settled = report.value("rss_settled_kb", 0u);
  const std::uint64_t anon = report.value("rss_anon_settled_kb", 0u);
  EXPECT_GT(anon, 0u) << report.dump();
  EXPECT_LT(anon, settled) << report.dump();

  auto human = run_tether({"soak", "--duration", "500ms", "--rate", "100", "--settle", "200ms"});
  EXPECT_EQ(human->wait_exit(), 0) << human->err();
  EXPECT_NE(human->out().find("  settled   "), std::string::npos) << human->out();
  EXPECT_NE(human->out().find("after 200ms idle"), std::string::npos) << human->out();
}

TEST(CliSoak, PassesAgainstServeWithCompression) {
  Served s = serve();
  auto soak = run_tether({"soak", s.url(), "--duration", "1s", "--rate", "200", "--ping-interval",
                          "1s", "--compress", "--size", "300"});
  EXPECT_EQ(soak->wait_exit(), 0) << soak->err();
  for (const char* text :
       {"sent", "verified", "corrupted   0", "lost        0", "result      PASS"})
    EXPECT_NE(soak->out().find(text), std::string::npos) << text << "\n" << soak->out();
}

TEST(CliSoak, CatchesAnEchoServerThatCorruptsOneMessageInAHundred) {
  InProcessServer server(corrupting_echo(100));
  auto soak = run_tether({"soak", server.url(), "--duration", "2s", "--rate", "200",
                          "--ping-interval", "1s", "--json"});
  EXPECT_EQ(soak->wait_exit(), 1) << soak->err();
  const nlohmann::json report = soak_report(*soak);
  EXPECT_GT(report.value("corrupted", 0u), 0u) << report.dump();
  EXPECT_LT(report.value("verified", 0u), report.value("sent", 0u)) << report.dump();
  EXPECT_EQ(report["lost"], 0) << report.dump();
}

// An echo server that alters a message and recomputes its embedded checksum, as a buggy
// re-serialiser would: only the comparison with what was sent catches it.
TEST(CliSoak, CatchesAlteredMessagesWhoseChecksumWasRecomputed) {
  ServerBehavior b;
  auto count = std::make_shared<int>(0);  // loop thread only
  b.on_message = [count](const ConnectionPtr& c, MessageType type, ByteView payload) {
    std::string text(as_text(payload));
    const std::size_t sum = text.rfind(",\"sum\":\"");
    if (++*count % 20 != 0 || sum == std::string::npos || sum < 2)
      return void(c->send(type, payload));
    text[sum - 2] = text[sum - 2] == 'A' ? 'B' : 'A';  // the last character of "data"
    const uLong crc = crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(text.data()),
                            static_cast<uInt>(sum));
    char hex[9];
    std::snprintf(hex, sizeof hex, "%08lx", static_cast<unsigned long>(crc));
    text.replace(sum + 8, 8, hex);
    c->send(type, ByteView(as_bytes(text)));
  };
  InProcessServer server(std::move(b));
  auto soak = run_tether({"soak", server.url(), "--duration", "1s", "--rate", "200",
                          "--ping-interval", "1s", "--json"});
  EXPECT_EQ(soak->wait_exit(), 1) << soak->err();
  const nlohmann::json report = soak_report(*soak);
  const auto sent = report.value("sent", 0u);
  EXPECT_EQ(report["corrupted"], sent / 20) << report.dump();
  EXPECT_EQ(report["verified"], sent - sent / 20) << report.dump();
  EXPECT_EQ(report["lost"], 0) << report.dump();
}

// The keepalive PINGs of a 100 ms interval, and the PONGs, are in the trace and counted.
TEST(CliSoak, TraceFileShowsKeepalivePingsAndPongs) {
  TempDir dir;
  auto soak = run_tether({"soak", "--duration", "600ms", "--rate", "20", "--ping-interval", "100ms",
                          "--trace-file", dir.file("soak.trace"), "--json"});
  EXPECT_EQ(soak->wait_exit(), 0) << soak->err();
  EXPECT_EQ(soak->err(), "");
  const nlohmann::json report = soak_report(*soak);
  expect_passed(report);
  const std::string trace = read_file(dir.file("soak.trace"));
  static const std::regex ping(R"(^\d+\.\d{3} \d+ -> PING fin=1 rsv1=0 masked=1 len=0$)");
  static const std::regex pong(R"(^\d+\.\d{3} \d+ <- PONG fin=1 rsv1=0 masked=0 len=0$)");
  const auto pings = matching_lines(trace, ping);
  const auto pongs = matching_lines(trace, pong);
  EXPECT_GE(pings.size(), 2u) << trace;
  EXPECT_GE(pongs.size(), 1u) << trace;
  EXPECT_EQ(report["pings"], pings.size()) << report.dump();
  EXPECT_EQ(report["pongs"], pongs.size()) << report.dump();
  EXPECT_NE(trace.find("-> TEXT fin=1 rsv1=0 masked=1"), std::string::npos);
  EXPECT_NE(trace.find("{\"seq\":1,\"conn\":0,\"ts\":"), std::string::npos) << trace;
}

// The server drops every connection after a few messages: the soak reconnects, counts the
// reconnections and the messages in flight on the dropped ones as lost, and fails.
TEST(CliSoak, CountsReconnectsAndLostMessagesWhenTheServerDropsConnections) {
  ServerBehavior b;
  b.on_open = [](const ConnectionPtr& c) { c->set_user_data(std::make_shared<int>(0)); };
  b.on_message = [](const ConnectionPtr& c, MessageType type, ByteView payload) {
    // The fifth message is never echoed: the connection ends instead.
    if (++*c->user_data<int>() == 5) return void(c->close(1012, "restarting"));
    c->send(type, payload);
  };
  InProcessServer server(std::move(b));
  auto soak = run_tether({"soak", server.url(), "--duration", "1500ms", "--rate", "50",
                          "--ping-interval", "1s", "--json"});
  EXPECT_EQ(soak->wait_exit(), 1) << soak->err();
  const nlohmann::json report = soak_report(*soak);
  EXPECT_GT(report.value("reconnects", 0u), 0u) << report.dump();
  EXPECT_GT(report.value("lost", 0u), 0u) << report.dump();
  EXPECT_EQ(report["corrupted"], 0) << report.dump();
}

TEST(CliSoak, RefusedConnectionExitsTwoWithOneLine) {
  RawSocket bound(/*listening=*/false);
  auto soak = run_tether(
      {"soak", "ws://127.0.0.1:" + std::to_string(bound.port) + "/", "--duration", "1s"});
  EXPECT_EQ(soak->wait_exit(), 2);
  EXPECT_EQ(count_lines(soak->err()), 1u) << soak->err();
  EXPECT_NE(soak->err().find("refused"), std::string::npos) << soak->err();
}

}  // namespace
}  // namespace tether::cli_test
