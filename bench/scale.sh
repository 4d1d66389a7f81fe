#!/usr/bin/env bash
# 10,000 concurrent connections, each echoing (the "scale" benchmark): for every server given
# as NAME=COMMAND (COMMAND holds {port} and starts one server process in the foreground),
# starts it on a free 127.0.0.1 port, runs ../shared/peers/wsload with CONNS connections x
# 64 B binary x 1 in flight for SECS seconds, and prints wsload's line: msg/s, latency, errors,
# and the server's RSS before connecting, while running and at peak, and KiB per connection
# ((peak - base) / connections). Servers run one after the other, never together.
#   usage: bench/scale.sh WSLOAD [-c CONNS] [-t SECS] NAME=COMMAND...
#   e.g.   bench/scale.sh /tmp/build-peers/wsload tether="build/bench/tether serve --port {port}"
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
wsload="${1:?usage: $0 WSLOAD [-c CONNS] [-t SECS] NAME=COMMAND...}"
shift
conns=10000
secs=10
while (($#)); do
  case "$1" in
    -c) conns="$2"; shift 2 ;;
    -t) secs="$2"; shift 2 ;;
    *) break ;;
  esac
done
(($#)) || { echo "no server given" >&2; exit 2; }

# Both ends hold one descriptor per connection, plus the listener and the epoll set.
need=$((conns + 100))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && ((hard < need)); then
  echo "the hard descriptor limit is $hard, below the $need needed" >&2
  exit 2
fi
ulimit -n "$need"

status=0
for spec in "$@"; do
  name="${spec%%=*}"
  cmd="${spec#*=}"
  port=$((20000 + RANDOM % 20000))
  start_server "$cmd" "$port"
  line=$("$wsload" -p "$port" -c "$conns" -s 64 -m binary -k 1 -t "$secs" -w 2 \
    --server-pid "$server_pid" --label "$name" --connect-timeout 60 2>&1 | tail -n 1) || status=1
  stop_server
  echo "$line"
done
exit "$status"
