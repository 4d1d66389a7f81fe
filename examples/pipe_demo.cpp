// The sans-I/O core on its own: a client session and a server session joined by an in-memory
// pipe that delivers bytes in small random pieces, as a congested socket would. The client
// sends a JSON status every simulated second with keepalive PINGs; the server echoes. Every
// frame crossing the pipe is printed from the frame trace.
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "tether/session.hpp"

using namespace std::chrono_literals;

namespace {

class Side : public tether::SessionHandler {
 public:
  Side(const char* name, bool echo) : name_(name), echo_(echo) {}
  tether::Session* session = nullptr;
  std::vector<std::string> received;

  void on_open() override { std::printf("%-6s open\n", name_); }
  void on_message(tether::MessageType type, tether::ByteView payload) override {
    received.emplace_back(tether::as_text(payload));
    if (echo_) session->send(type, payload);
  }
  void on_close(std::uint16_t code, std::string_view reason) override {
    std::printf("%-6s closed %u %.*s\n", name_, code, static_cast<int>(reason.size()),
                reason.data());
  }
  void on_error(int code, std::string_view message) override {
    std::printf("%-6s error %d %.*s\n", name_, code, static_cast<int>(message.size()),
                message.data());
  }
  void on_frame(const tether::FrameTrace& f) override {
    std::string head;
    for (std::byte b : f.payload_head) {
      char c = static_cast<char>(b);
      head += (c >= 0x20 && c < 0x7f) ? c : '.';
    }
    std::printf("%-6s %s %-6s fin=%d rsv1=%d masked=%d len=%-4llu %s\n", name_,
                f.outgoing ? "->" : "<-", std::string(tether::opcode_name(f.header.opcode)).c_str(),
                f.header.fin, f.header.rsv1, f.header.masked,
                static_cast<unsigned long long>(f.header.length), head.c_str());
  }

 private:
  const char* name_;
  bool echo_;
};

// Moves a's pending bytes to b in random pieces of 1 to 40 bytes.
std::size_t trickle(tether::Session& a, tether::Session& b, std::mt19937& rng) {
  std::size_t moved = 0;
  while (!a.pending_output().empty()) {
    tether::ByteView out = a.pending_output();
    std::size_t n = std::min<std::size_t>(out.size(), 1 + rng() % 40);
    std::vector<std::byte> piece(out.begin(), out.begin() + static_cast<long>(n));
    a.consume_output(n);
    b.receive(piece);
    moved += n;
  }
  return moved;
}

}  // namespace

int main() {
  std::mt19937 rng(2026);
  tether::SessionOptions opt;
  opt.trace = true;
  opt.ping_interval = 3s;  // frequent, so PINGs interleave with the JSON stream
  opt.pong_timeout = 2s;
  Side client_side("client", false), server_side("server", true);
  tether::ClientHandshakeConfig hs;
  hs.host = "127.0.0.1:9000";
  hs.target = "/status";
  tether::Session client(opt, hs, client_side);
  tether::Session server(opt, tether::ServerHandshakeConfig{}, server_side);
  client_side.session = &client;
  server_side.session = &server;

  std::printf("== opening handshake over an in-memory pipe (pieces of 1-40 bytes)\n");
  tether::TimePoint now{};
  client.tick(now);
  server.tick(now);
  std::size_t bytes = trickle(client, server, rng);
  bytes += trickle(server, client, rng);

  std::printf("== 10 simulated seconds: one JSON status per second, PING every 3 s\n");
  std::vector<std::string> sent;
  for (int second = 1; second <= 10; ++second) {
    now += 1s;
    std::string json = "{\"seq\":" + std::to_string(second) + ",\"temp\":21.5,\"status\":\"ok\"}";
    client.send_text(json);
    sent.push_back(json);
    client.tick(now);
    server.tick(now);
    bytes += trickle(client, server, rng);
    bytes += trickle(server, client, rng);
  }
  std::printf("== closing handshake\n");
  client.close(tether::close_code::normal, "done");
  bytes += trickle(client, server, rng);
  bytes += trickle(server, client, rng);

  bool intact = client_side.received == sent && server_side.received == sent;
  std::printf(
      "== %zu messages sent, %zu echoed back, %s; %llu PINGs sent by the client, "
      "%zu bytes crossed the pipe\n",
      sent.size(), client_side.received.size(), intact ? "all identical" : "MISMATCH",
      static_cast<unsigned long long>(client.pings_sent()), bytes);
  return intact && client.finished() && server.finished() ? 0 : 1;
}
