// The transports every integrity scenario runs over: ws, wss (certificates made at test time),
// and, where the compression extension is built, their permessage-deflate variants.
#pragma once

#include <string>
#include <vector>

#include "runtime/loop_harness.hpp"
#include "runtime/tls_test_certs.hpp"
#include "tether/client.hpp"
#include "tether/permessage_deflate.hpp"
#include "tether/server.hpp"

namespace tether::test {

struct Transport {
  std::string name;
  bool tls = false;
  bool deflate = false;

  ServerOptions server_options() const {
    ServerOptions o = local_server_options();
    if (tls) {
      const auto& certs = tls::testing::test_certs();
      o.tls = TlsServerOptions{certs.server, certs.server_key, {}};
    }
    add_deflate(o.extensions);
    return o;
  }
  ClientOptions client_options(const Server& server) const {
    ClientOptions o;
    o.url = std::string(tls ? "wss" : "ws") + "://127.0.0.1:" + std::to_string(server.port()) + "/";
    o.session.ping_interval = Duration(0);
    if (tls) o.tls.ca_file = tls::testing::test_certs().ca;
    add_deflate(o.extensions);
    return o;
  }

 private:
  void add_deflate(std::vector<std::shared_ptr<const Extension>>& extensions) const;
};

inline void Transport::add_deflate(
    std::vector<std::shared_ptr<const Extension>>& extensions) const {
  // Threshold 0: every message is compressed, so the tests exercise deflate, not its bypass.
  if (deflate)
    extensions.push_back(
        std::make_shared<PerMessageDeflate>(DeflateOptions{.compress_threshold = 0}));
}

inline std::vector<Transport> all_transports() {
  return {{"ws", false, false},
          {"wss", true, false},
          {"ws_deflate", false, true},
          {"wss_deflate", true, true}};
}

}  // namespace tether::test
