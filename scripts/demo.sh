#!/usr/bin/env bash
# Builds Tether and runs the demo: a real `tether serve` and `tether connect` on loopback. The
# client sends a JSON status once a second while both ends send keepalive PINGs every second;
# the frame trace of both sides is shown, then a summary. Then `tether soak` replays the seed's
# scenario faster (JSON with checksums, PINGs every 200 ms) and prints its integrity report.
# Ends by itself in about 20 seconds.
# Works as root on a fresh Debian 12: installs what it needs with apt-get.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
tether_install_deps

build="$TETHER_ROOT/build/release"
echo "== building ($build)"
tether_build "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTETHER_BUILD_TESTS=OFF -DTETHER_BUILD_BENCH=OFF
tether="$build/tether"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

echo
echo "== starting: tether serve --port 0 --ping-interval 1s --trace"
"$tether" serve --port 0 --ping-interval 1s --trace 2>"$work/server.log" &
server_pid=$!
url=""
for _ in $(seq 100); do  # up to 10 s for the listening line
  url="$(sed -n 's/^listening on \(ws:[^ ]*\).*/\1/p' "$work/server.log" | head -1)"
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "server did not start:"; cat "$work/server.log"; exit 1; }
echo "   $(head -1 "$work/server.log")"

count=6
echo "== client: $count JSON messages, one per second, through tether connect $url/status --ping-interval 1s --trace"
for i in $(seq "$count"); do
  printf '{"seq":%d,"device":"sensor-42","temp":%d.5,"status":"ok"}\n' "$i" "$((20 + i % 3))"
  sleep 1
done | "$tether" connect "$url/status" --ping-interval 1s --trace >"$work/echo.out" 2>"$work/client.log"
client_rc=$?

kill -TERM "$server_pid"
wait "$server_pid"
server_rc=$?
server_pid=""

echo
echo "== client frame trace (-> sent, <- received)"
cat "$work/client.log"
echo
echo "== server frame trace"
tail -n +2 "$work/server.log"
echo
echo "== echoes printed by the client (stdout)"
cat "$work/echo.out"
echo
sent=$count
echoed=$(grep -c '"seq"' "$work/echo.out" || true)
pings=$(grep -c ' PING ' "$work/client.log" || true)
pongs=$(grep -c ' PONG ' "$work/client.log" || true)
intact=yes
for i in $(seq "$count"); do
  grep -q "^{\"seq\":$i,\"device\":\"sensor-42\",\"temp\":$((20 + i % 3)).5,\"status\":\"ok\"}\$" "$work/echo.out" || intact=no
done
echo "== summary: $sent JSON messages sent, $echoed echoed back, all identical: $intact;"
echo "   client trace shows $pings PING and $pongs PONG frames (keepalive both ways, never inside a message);"
echo "   tether connect exit code $client_rc (0: closed cleanly with 1000), tether serve exit code $server_rc (0: SIGTERM, 1001 to all)"
echo
echo "== tether soak --duration 8s --rate 500 --ping-interval 200ms --connections 4"
echo "   (its own echo server on 127.0.0.1; every echo checked for content, order, gaps, duplicates)"
"$tether" soak --duration 8s --rate 500 --ping-interval 200ms --connections 4
soak_rc=$?
echo "== tether soak exit code $soak_rc (0: every message verified, none corrupted or lost)"
[ "$intact" = yes ] && [ "$echoed" -eq "$sent" ] && [ "$client_rc" -eq 0 ] && [ "$server_rc" -eq 0 ] &&
  [ "$soak_rc" -eq 0 ]
