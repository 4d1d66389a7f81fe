#!/usr/bin/env bash
# Echo throughput over ws, wss, ws+deflate and wss+deflate (the "secure and compressed"
# benchmark): `tether bench` as the load generator (wsload speaks neither TLS nor deflate)
# against `tether serve` and, where they support it, the peers' echo servers (Boost.Beast and
# libwebsockets with --deflate; none of them has a TLS option). Runs are interleaved
# (repetition -> server) so that drift hits all alike; server on CPU 0, client on CPU 1.
# Prints one line per run: label, then bench's JSON report.
#   usage: bench/transports.sh TETHER PEERS_DIR [REPS] [SECS]
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
tether="${1:?usage: $0 TETHER PEERS_DIR [REPS] [SECS]}"
peers="${2:?usage: $0 TETHER PEERS_DIR [REPS] [SECS]}"
reps="${3:-3}"
secs="${4:-5}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
tls=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")

# label | server command ({port}) | scheme | bench flags
runs=(
  "tether ws|$tether serve --port {port} --no-compress|ws|"
  "lws ws|$peers/echo_lws {port}|ws|"
  "beast ws|$peers/echo_beast {port}|ws|"
  "tether wss|$tether serve --port {port} --no-compress ${tls[*]}|wss|--ca $work/cert.pem"
  "tether ws+deflate|$tether serve --port {port}|ws|--compress"
  "lws ws+deflate|$peers/echo_lws {port} --deflate|ws|--compress"
  "beast ws+deflate|$peers/echo_beast {port} --deflate|ws|--compress"
  "tether wss+deflate|$tether serve --port {port} ${tls[*]}|wss|--ca $work/cert.pem --compress"
)

for ((rep = 1; rep <= reps; rep++)); do
  for run in "${runs[@]}"; do
    IFS='|' read -r label cmd scheme flags <<<"$run"
    port=$((20000 + RANDOM % 20000))
    start_server "$cmd" "$port" 0
    # shellcheck disable=SC2086
    report=$(taskset -c 1 "$tether" bench "$scheme://127.0.0.1:$port/" --connections 50 \
      --size 1024 --in-flight 4 --payload json --duration "${secs}s" --warmup 1s --json $flags \
      2>"$work/err" | tail -n 1)
    [ -n "$report" ] || report="failed: $(head -n 1 "$work/err")"
    stop_server
    printf '%d | %-20s | %s\n' "$rep" "$label" "$report"
  done
done
