#!/usr/bin/env bash
# `tether bench` next to ../shared/peers/wsload as load generators (is bench the bottleneck?):
# against one server at a time (each server: a fresh process on CPU 0), the two clients take
# turns on CPU 1 with the same workload, REPS times, so that drift hits both alike. Prints
# msg/s and p99 of each run.
#   usage: bench/loadgen.sh TETHER WSLOAD [REPS] [SECS] NAME=COMMAND...
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
tether="${1:?usage: $0 TETHER WSLOAD [REPS] [SECS] NAME=COMMAND...}"
wsload="${2:?usage: $0 TETHER WSLOAD [REPS] [SECS] NAME=COMMAND...}"
reps="${3:-3}"
secs="${4:-5}"
shift 4
# workload: connections size in-flight
workloads=("50 64 4" "100 16 1" "10 65536 1")

for spec in "$@"; do
  name="${spec%%=*}"
  cmd="${spec#*=}"
  for wl in "${workloads[@]}"; do
    read -r c s k <<<"$wl"
    for ((rep = 1; rep <= reps; rep++)); do
      for client in wsload bench; do
        port=$((20000 + RANDOM % 20000))
        start_server "$cmd" "$port" 0
        if [ "$client" = wsload ]; then
          line=$(taskset -c 1 "$wsload" -p "$port" -c "$c" -s "$s" -k "$k" -m binary -t "$secs" \
            -w 1 2>&1 | tail -n 1)
          rate=$(grep -o 'msg_per_s=[0-9.]*' <<<"$line" | cut -d= -f2)
          p99=$(grep -o 'p99_us=[0-9.]*' <<<"$line" | cut -d= -f2)
          errors=$(grep -o ' errors=[0-9]*' <<<"$line" | cut -d= -f2)
        else
          line=$(taskset -c 1 "$tether" bench "ws://127.0.0.1:$port/" --connections "$c" \
            --size "$s" --in-flight "$k" --payload binary --duration "${secs}s" --warmup 1s \
            --json 2>&1 | tail -n 1)
          rate=$(grep -o '"msg_per_s":[0-9.]*' <<<"$line" | cut -d: -f2)
          p99=$(grep -o '"p99_us":[0-9.]*' <<<"$line" | cut -d: -f2)
          errors=$(grep -o '"errors":[0-9]*' <<<"$line" | cut -d: -f2)
        fi
        stop_server
        printf '%-8s %-3s x %-5s B x %-2s | rep %d | %-6s | msg/s %10s | p99 us %9s | errors %s\n' \
          "$name" "$c" "$s" "$k" "$rep" "$client" "${rate:-?}" "${p99:-?}" "${errors:-?}"
      done
    done
  done
done
