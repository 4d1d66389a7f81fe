#!/usr/bin/env bash
# The long soak of docs/issue "scale and soak": `tether soak` for DURATION (default 10m) at
# 1000 msg/s with a PING every second, over ws, ws+deflate (both against soak's own in-process
# echo server) and wss (against `tether serve` with a certificate made here), all three at
# once: each is paced, far from CPU-bound, so running them side by side only adds latency.
# Prints the RSS of every process each tenth of the run, then the JSON reports.
#   usage: bench/soak.sh TETHER_BINARY [DURATION]
set -euo pipefail
tether="${1:?usage: $0 TETHER_BINARY [DURATION]}"
duration="${2:-10m}"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
port=$((20000 + RANDOM % 20000))
"$tether" serve --port "$port" --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" \
  2>"$work/serve.err" &
server_pid=$!
until grep -qs listening "$work/serve.err"; do
  kill -0 "$server_pid" || { cat "$work/serve.err"; exit 1; }
  sleep 0.1
done

# --settle 25s: after the drain, the idle connections stay open for two buffer release
# intervals (10 s each) and a margin, and the RSS is read again (rss_settled_kb), so that a
# catch-up in the last seconds of the run is not mistaken for memory the run kept.
common=(--duration "$duration" --rate 1000 --ping-interval 1s --settle 25s --json)
"$tether" soak "${common[@]}" >"$work/ws.out" 2>&1 &
ws=$!
"$tether" soak "${common[@]}" --compress >"$work/deflate.out" 2>&1 &
deflate=$!
"$tether" soak "wss://127.0.0.1:$port" --ca "$work/cert.pem" "${common[@]}" >"$work/wss.out" 2>&1 &
wss=$!

# VmRSS as anonymous + file-backed KiB: a step in the file part is code or data of the binary and
# its libraries paged in the first time a path runs, not memory the process allocated.
rss() { awk '/^RssAnon/{a=$2} /^RssFile/{f=$2} END{if (a != "") print a "+" f}' "/proc/$1/status" 2>/dev/null; }
seconds=$(case "$duration" in
  *ms) echo 1 ;; *s) echo "${duration%s}" ;; *m) echo $((${duration%m} * 60)) ;; *h) echo $((${duration%h} * 3600)) ;; esac)
# RSS of the four processes every tenth of the run: a leak grows step after step, a high-water
# mark (buffers grown once under a burst) steps up once and stays.
step=$((seconds / 10 > 0 ? seconds / 10 : 1))
echo "== RSS KiB (anonymous+file) every ${step}s: ws deflate wss wss-server"
for ((i = 1; i <= 10; i++)); do
  sleep "$step"
  echo "   t=$((i * step))s $(rss "$ws") $(rss "$deflate") $(rss "$wss") $(rss "$server_pid")"
done

status=0
for name in ws deflate wss; do
  wait "${!name}" || status=1
done
for name in ws deflate wss; do
  echo "== $name: $(tail -n 1 "$work/$name.out")"
done
exit "$status"
