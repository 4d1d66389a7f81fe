// `tether bench` run as a user runs it, against `tether serve` and against in-test servers.
#include <gtest/gtest.h>

#include "cli/cli_support.hpp"

namespace tether::cli_test {
namespace {

TEST(CliBench, JsonLastLineCountsOnlyVerifiedEchoesAgainstServe) {
  Served s = serve();
  auto bench =
      run_tether({"bench", s.url(), "--connections", "2", "--in-flight", "4", "--size", "200",
                  "--duration", "1s", "--warmup", "200ms", "--payload", "json", "--json"});
  EXPECT_EQ(bench->wait_exit(), 0) << bench->err();
  const nlohmann::json report = last_json_line(bench->out());
  ASSERT_TRUE(report.is_object()) << bench->out();
  for (const char* key : {"msg_per_s", "mb_per_s", "p50_us", "p90_us", "p99_us", "max_us", "errors",
                          "messages", "verified", "client_cpu_pct", "connections", "size"})
    EXPECT_TRUE(report.contains(key)) << key << " missing from " << report.dump();
  EXPECT_GT(report["messages"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(report["messages"], report["verified"]);
  EXPECT_EQ(report["errors"], 0);
  EXPECT_EQ(report["connections"], 2);
  EXPECT_EQ(report["size"], 200);
  EXPECT_GT(report["msg_per_s"].get<double>(), 0.0);
  EXPECT_LE(report["p50_us"].get<double>(), report["p99_us"].get<double>());
  EXPECT_LE(report["p99_us"].get<double>(), report["max_us"].get<double>());
  // Not a terminal: no progress line, nothing rewritten with \r.
  EXPECT_EQ(bench->out().find('\r'), std::string::npos);
  EXPECT_EQ(bench->err(), "");
}

TEST(CliBench, TextReportWithCompressionAgainstServe) {
  Served s = serve();
  auto bench = run_tether({"bench", s.url(), "--size", "1K", "--payload", "text", "--duration",
                           "300ms", "--warmup", "0", "--compress"});
  EXPECT_EQ(bench->wait_exit(), 0) << bench->err();
  for (const char* text : {"msg/s", "MB/s", "p50", "p99", "errors      0", "client CPU"})
    EXPECT_NE(bench->out().find(text), std::string::npos) << text << "\n" << bench->out();
}

TEST(CliBench, AlteredEchoesAreMismatchesAndExitOne) {
  InProcessServer server(corrupting_echo(50));
  auto bench = run_tether(
      {"bench", server.url(), "--size", "64", "--duration", "300ms", "--warmup", "0", "--json"});
  EXPECT_EQ(bench->wait_exit(), 1) << bench->err();
  const nlohmann::json report = last_json_line(bench->out());
  ASSERT_TRUE(report.is_object()) << bench->out();
  EXPECT_GT(report["mismatches"].get<std::uint64_t>(), 0u);
  EXPECT_GT(report["errors"].get<std::uint64_t>(), 0u);
  EXPECT_LT(report["verified"].get<std::uint64_t>(), report["messages"].get<std::uint64_t>());
  EXPECT_NE(bench->err().find("mismatch: connection 0 message "), std::string::npos)
      << bench->err();
}

TEST(CliBench, RefusedConnectionExitsTwoWithOneLine) {
  RawSocket bound(/*listening=*/false);
  auto bench = run_tether({"bench", "ws://127.0.0.1:" + std::to_string(bound.port) + "/",
                           "--connections", "3", "--duration", "1s"});
  EXPECT_EQ(bench->wait_exit(), 2);
  EXPECT_EQ(count_lines(bench->err()), 1u) << bench->err();
  EXPECT_NE(bench->err().find("refused"), std::string::npos) << bench->err();
  EXPECT_EQ(bench->out(), "");
}

TEST(CliBench, TraceFileHoldsTheFrames) {
  TempDir dir;
  Served s = serve();
  auto bench = run_tether({"bench", s.url(), "--size", "16", "--duration", "100ms", "--warmup", "0",
                           "--trace-file", dir.file("bench.trace")});
  EXPECT_EQ(bench->wait_exit(), 0) << bench->err();
  EXPECT_EQ(bench->err(), "");
  const std::string trace = read_file(dir.file("bench.trace"));
  EXPECT_NE(trace.find("-> BINARY fin=1 rsv1=0 masked=1 len=16"), std::string::npos);
  EXPECT_NE(trace.find("<- BINARY fin=1 rsv1=0 masked=0 len=16"), std::string::npos);
  EXPECT_NE(trace.find("-> CLOSE"), std::string::npos);
}

}  // namespace
}  // namespace tether::cli_test
