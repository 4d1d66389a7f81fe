// Throughput of the frame codec's hot paths against memcpy of the same bytes.
//
// Unmasking rewrites the buffer, so a benchmark must not measure a buffer already unmasked
// by the previous iteration as if it were fresh. Here that is harmless by construction: the
// XOR is its own inverse and the decoder never looks at payload content, so iterations
// alternate between masked and plain payload while doing identical work. The header bytes
// are never touched by unmasking. Decode is also measured with a fresh memcpy of the frame
// before each decode (the "WithCopy" rows), which subtracts out against the Memcpy rows.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "tether/frame_codec.hpp"
#include "tether/utf8.hpp"

namespace {

using tether::FrameDecoder;

constexpr std::array<std::byte, 4> k_key{std::byte{0x37}, std::byte{0xfa}, std::byte{0x21},
                                         std::byte{0x3d}};

std::vector<std::byte> filler(std::size_t n) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>(i * 131 + 7);
  return v;
}

// A masked binary frame as a client sends it: what a server decodes.
std::vector<std::byte> masked_frame(std::size_t payload_size) {
  tether::FrameHeader h;
  h.opcode = tether::Opcode::binary;
  h.masked = true;
  h.mask = k_key;
  h.length = payload_size;
  std::vector<std::byte> frame(tether::max_frame_header_size + payload_size);
  const std::size_t head = tether::encode_frame_header(h, frame.data());
  frame.resize(head + payload_size);
  const auto payload = filler(payload_size);
  tether::apply_mask(payload.data(), frame.data() + head, payload_size, k_key);
  return frame;
}

void set_bytes(benchmark::State& state, std::size_t per_iteration) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(per_iteration));
}

void BM_Memcpy(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto src = filler(n);
  std::vector<std::byte> dst(n);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), n);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, n);
}

void BM_UnmaskInPlace(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto buf = filler(n);
  for (auto _ : state) {
    tether::apply_mask(buf.data(), buf.data(), n, k_key, 1);
    benchmark::DoNotOptimize(buf.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, n);
}

void BM_UnmaskToOtherBuffer(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto src = filler(n);
  std::vector<std::byte> dst(n);
  for (auto _ : state) {
    tether::apply_mask(src.data(), dst.data(), n, k_key, 1);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, n);
}

// Header parse, validation and in-place unmask of one whole frame in one read.
std::size_t decode_one(FrameDecoder& dec, std::vector<std::byte>& frame) {
  tether::MutableByteView in(frame);
  std::size_t got = 0;
  for (;;) {
    const auto r = dec.next(in);
    if (r.status == FrameDecoder::Status::payload) got += r.payload.size();
    if (r.status == FrameDecoder::Status::frame_end || r.status == FrameDecoder::Status::error)
      return got;
  }
}

void BM_DecodeMaskedFrame(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto frame = masked_frame(n);
  FrameDecoder dec(tether::Role::server);
  for (auto _ : state) {
    benchmark::DoNotOptimize(decode_one(dec, frame));
    benchmark::ClobberMemory();
  }
  if (decode_one(dec, frame) != n) state.SkipWithError("decode failed");
  set_bytes(state, n);
}

void BM_DecodeMaskedFrameWithCopy(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto pristine = masked_frame(n);
  auto frame = pristine;
  FrameDecoder dec(tether::Role::server);
  for (auto _ : state) {
    std::memcpy(frame.data(), pristine.data(), frame.size());
    benchmark::DoNotOptimize(decode_one(dec, frame));
    benchmark::ClobberMemory();
  }
  set_bytes(state, n);
}

std::string utf8_sample(bool multibyte, std::size_t n) {
  // Mixed: Latin, Cyrillic (2 bytes), CJK (3 bytes), emoji (4 bytes) and ASCII punctuation.
  const std::string unit = multibyte ? "Hello, \xD0\xBC\xD0\xB8\xD1\x80! \xE4\xBD\xA0\xE5\xA5\xBD "
                                       "\xF0\x9F\x8C\x8D caf\xC3\xA9 "
                                     : "The quick brown fox jumps over the lazy dog. ";
  std::string s;
  while (s.size() + unit.size() <= n) s += unit;
  s.append(n - s.size(), 'x');
  return s;
}

void utf8_bench(benchmark::State& state, bool multibyte) {
  const std::string text = utf8_sample(multibyte, 64 * 1024);
  const tether::ByteView bytes = tether::as_bytes(text);
  if (!tether::is_valid_utf8(bytes)) state.SkipWithError("sample is not UTF-8");
  for (auto _ : state) {
    tether::Utf8Validator v;
    benchmark::DoNotOptimize(v.feed(bytes));
    benchmark::DoNotOptimize(v.complete());
  }
  set_bytes(state, text.size());
}

void BM_Utf8Ascii(benchmark::State& state) {
  utf8_bench(state, false);
}
void BM_Utf8Mixed(benchmark::State& state) {
  utf8_bench(state, true);
}

#define TETHER_SIZES Arg(16)->Arg(1 << 10)->Arg(64 << 10)->Arg(1 << 20)

BENCHMARK(BM_Memcpy)->TETHER_SIZES;
BENCHMARK(BM_UnmaskInPlace)->TETHER_SIZES;
BENCHMARK(BM_UnmaskToOtherBuffer)->TETHER_SIZES;
BENCHMARK(BM_DecodeMaskedFrame)->TETHER_SIZES;
BENCHMARK(BM_DecodeMaskedFrameWithCopy)->TETHER_SIZES;
BENCHMARK(BM_Utf8Ascii);
BENCHMARK(BM_Utf8Mixed);

}  // namespace

BENCHMARK_MAIN();
