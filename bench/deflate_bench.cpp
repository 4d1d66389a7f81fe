// Inflating permessage-deflate messages the way a server receives them: small JSON messages
// one after another, and one large message cut into fragments of various sizes. The cost per
// call of DeflateTransform::decode matters as much as zlib's speed when pieces are small.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "tether/permessage_deflate.hpp"

namespace {

using namespace tether;

std::string json_status(int i) {
  return R"({"device":"sensor-)" + std::to_string(i % 100) + R"(","seq":)" + std::to_string(i) +
         R"(,"temperature":21.5,"humidity":40.25,"status":"ok","uptime_s":)" +
         std::to_string(1000 + i) + "}";
}

// Messages without context takeover decode the same way every time, so a fixed set of them
// can be replayed as long as the benchmark runs.
DeflateAgreement independent_messages() {
  DeflateAgreement a;
  a.client_no_context_takeover = true;
  return a;
}

std::vector<std::vector<std::byte>> compress_all(const std::vector<std::string>& texts) {
  DeflateOptions o;
  o.compress_threshold = 0;
  DeflateTransform client(Role::client, independent_messages(), o);
  std::vector<std::vector<std::byte>> out;
  for (const auto& t : texts) {
    std::vector<std::byte> wire;
    client.encode(MessageType::text,
                  ByteView(reinterpret_cast<const std::byte*>(t.data()), t.size()), wire);
    out.push_back(std::move(wire));
  }
  return out;
}

void BM_InflateSmallJson(benchmark::State& state) {
  std::vector<std::string> texts;
  for (int i = 0; i < 256; ++i) texts.push_back(json_status(i));
  const auto wire = compress_all(texts);
  DeflateTransform server(Role::server, independent_messages());
  std::vector<std::byte> out;
  std::size_t i = 0, bytes = 0;
  for (auto _ : state) {
    out.clear();
    const auto st = server.decode(ByteView(wire[i]), true, out, 16 << 20);
    if (st.close_code != 0 || out.size() != texts[i].size()) state.SkipWithError("decode failed");
    bytes += out.size();
    i = (i + 1) % wire.size();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

// 1 MiB of JSON-like text, inflated from fragments of state.range(0) bytes.
void BM_InflateLargeInFragments(benchmark::State& state) {
  std::string text;
  for (int i = 0; text.size() < (1 << 20); ++i) text += json_status(i);
  text.resize(1 << 20);
  const auto wire = compress_all({text});
  const auto fragment = static_cast<std::size_t>(state.range(0));
  DeflateTransform server(Role::server, independent_messages());
  std::vector<std::byte> out;
  for (auto _ : state) {
    out.clear();
    const ByteView all(wire[0]);
    for (std::size_t at = 0; at < all.size(); at += fragment) {
      const std::size_t n = std::min(fragment, all.size() - at);
      const bool last = at + n == all.size();
      if (server.decode(all.subspan(at, n), last, out, 16 << 20).close_code != 0)
        state.SkipWithError("decode failed");
    }
    if (out.size() != text.size()) state.SkipWithError("wrong size");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(wire[0].size()));
}

}  // namespace

BENCHMARK(BM_InflateSmallJson);
BENCHMARK(BM_InflateLargeInFragments)->Arg(1)->Arg(64)->Arg(4096);

BENCHMARK_MAIN();
