// The failure Tether exists to prevent, replayed in the sans-I/O core: a client sends a JSON
// status message every second for an hour while keepalive PINGs go out every 30 s, through a
// transport that writes random partial amounts; a server echoes. Every message must come
// back identical and in order.
#include <gtest/gtest.h>

#include <random>

#include "core/session_harness.hpp"
#include "tether/session.hpp"

namespace tether {
namespace {

using namespace std::chrono_literals;

class Echo : public test::Recorder {
 public:
  Session* session = nullptr;
  void on_message(MessageType type, ByteView payload) override {
    test::Recorder::on_message(type, payload);
    session->send(type, payload);
  }
};

// Moves a random amount (1 byte and up) of a's output to b, as a socket with a small,
// fluctuating buffer would.
void trickle(Session& a, Session& b, std::mt19937_64& rng) {
  while (!a.pending_output().empty()) {
    std::size_t max = rng() % 4 == 0 ? 1 : 1 + rng() % 97;
    test::transfer(a, b, max);
  }
}

TEST(Scenario, JsonEverySecondForAnHourWithKeepalive) {
  const std::uint64_t seed = 6455;
  SCOPED_TRACE("seed=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  SessionOptions opt;
  opt.ping_interval = 30s;
  opt.pong_timeout = 10s;
  opt.fragment_size = 64;  // small, so PINGs often fall between fragments
  test::Recorder client_events;
  Echo server_events;
  ClientHandshakeConfig cc;
  cc.host = "status.example:9000";
  cc.target = "/status";
  Session client(opt, cc, client_events);
  Session server(opt, ServerHandshakeConfig{}, server_events);
  server_events.session = &server;

  TimePoint now{};
  client.tick(now);
  server.tick(now);
  trickle(client, server, rng);
  trickle(server, client, rng);
  ASSERT_TRUE(client_events.opened);

  std::vector<std::string> sent;
  for (int second = 1; second <= 3600; ++second) {
    now += 1s;
    std::string json = "{\"seq\":" + std::to_string(second) +
                       ",\"device\":\"sensor-42\",\"temp\":" + std::to_string(20 + second % 7) +
                       ".5,\"status\":\"ok\",\"note\":\"" + std::string(second % 150, 'x') + "\"}";
    ASSERT_EQ(client.send_text(json), SendStatus::ok);
    sent.push_back(json);
    client.tick(now);
    server.tick(now);
    trickle(client, server, rng);
    trickle(server, client, rng);
  }
  ASSERT_FALSE(client_events.error) << client_events.error->second;
  ASSERT_FALSE(server_events.error) << server_events.error->second;
  ASSERT_EQ(server_events.messages.size(), sent.size());
  ASSERT_EQ(client_events.messages.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    ASSERT_EQ(server_events.messages[i].data, sent[i]) << "message " << i;
    ASSERT_EQ(client_events.messages[i].data, sent[i]) << "echo " << i;
  }
  // 3600 s of 30 s keepalive on each side, all answered.
  EXPECT_EQ(client.pings_sent(), 119u);
  EXPECT_EQ(server.pings_sent(), 119u);
  EXPECT_EQ(client.pongs_received(), 119u);
  EXPECT_EQ(server_events.pings.size(), 119u);

  ASSERT_EQ(client.close(), SendStatus::ok);
  trickle(client, server, rng);
  trickle(server, client, rng);
  EXPECT_TRUE(client.finished());
  EXPECT_TRUE(server.finished());
  ASSERT_TRUE(server_events.closed);
  EXPECT_EQ(server_events.closed->first, 1000);
}

}  // namespace
}  // namespace tether
