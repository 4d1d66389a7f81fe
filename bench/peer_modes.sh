#!/usr/bin/env bash
# Echo servers side by side, like ../shared/peers/compare.sh, but with every run tagged by where
# the host had placed the two vCPUs while it ran, and medians taken per placement.
#
# On this project's 2-vCPU KVM machine the round trip of a cache line between CPU 0 and CPU 1
# flips between about 50 ns ("near") and about 340 ns ("far") every few seconds to minutes, and
# every fast echo server's message rate with it (by a third on `small`). A median over three
# repetitions then depends on how many of them fell in each placement. Here each run is
# bracketed by bench/core_pair_latency; a run whose two readings disagree is "mixed" and left
# out of the medians (it is still printed).
#
#   usage: bench/peer_modes.sh PROBE WSLOAD REPS SECS WORKLOADS NAME=COMMAND...
#     PROBE      the core_pair_latency binary
#     WSLOAD     ../shared/peers' load generator (built by its build.sh)
#     WORKLOADS  comma-separated, from compare.sh's set: small,large,many,pipe
#     COMMAND    starts one server in the foreground, with {port}
#   env: NEAR_NS (default 150): a round trip below it is "near".
#
# Runs are interleaved (repetition -> workload -> server); server on CPU 0, wsload on CPU 1,
# 1 s of warm-up before the SECS measured. Prints one line per run, then the table.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
usage="usage: $0 PROBE WSLOAD REPS SECS WORKLOADS NAME=COMMAND..."
probe="${1:?$usage}"
wsload="${2:?$usage}"
reps="${3:?$usage}"
secs="${4:?$usage}"
IFS=, read -r -a workloads <<<"${5:?$usage}"
shift 5
(($#)) || { echo "$usage" >&2; exit 2; }
near_ns="${NEAR_NS:-150}"
server_pid=""

# The same flags as compare.sh's workloads, so that the figures can be set beside its tables.
declare -A flags=(
  [small]="-c 100 -s 16 -m text -k 1"
  [large]="-c 10 -s 65536 -m binary -k 1"
  [many]="-c 1000 -s 512 -m json -k 1"
  [pipe]="-c 100 -s 64 -m binary -k 16"
)
for w in "${workloads[@]}"; do
  [ -n "${flags[$w]:-}" ] || { echo "unknown workload $w" >&2; exit 2; }
done
ulimit -n 65536 2>/dev/null || true

placement() {  # before_ns after_ns
  local a=$1 b=$2
  [[ "$a" =~ ^[0-9]+$ && "$b" =~ ^[0-9]+$ ]] || { echo unknown; return; }
  if ((a < near_ns && b < near_ns)); then echo near
  elif ((a >= near_ns && b >= near_ns)); then echo far
  else echo mixed; fi
}

field() {  # KEY LINE: the value, or - when wsload did not report it
  local v
  v=$(grep -o "$1=[0-9.]*" <<<"$2" | cut -d= -f2)
  echo "${v:--}"
}

results="$(mktemp)"
trap 'stop_server; rm -f "$results"' EXIT
trap 'exit 130' INT TERM
for ((rep = 1; rep <= reps; rep++)); do
  for w in "${workloads[@]}"; do
    for spec in "$@"; do
      name="${spec%%=*}"
      port=$("$wsload" --free-port) || exit 1
      start_server "${spec#*=}" "$port" 0 || exit 1
      before=$("$probe" | cut -d= -f2)
      before="${before:--}"
      # shellcheck disable=SC2086 # the workload's flags are split into words on purpose
      line=$(taskset -c 1 "$wsload" -p "$port" --server-pid "$server_pid" -t "$secs" -w 1 -q \
        ${flags[$w]})
      after=$("$probe" | cut -d= -f2)
      after="${after:--}"
      stop_server
      place=$(placement "$before" "$after")
      row="$name $w $rep $before $after $place $(field msg_per_s "$line") $(field p50_us "$line")"
      row+=" $(field p90_us "$line") $(field p99_us "$line") $(field errors "$line")"
      echo "$row" | tee -a "$results"
    done
  done
done

echo
echo "# $(date -u +%Y-%m-%dT%H:%MZ) reps=$reps secs=$secs near<${near_ns}ns; medians per placement"
echo "| workload | placement | server | runs | msg/s | p50 us | p90 us | p99 us | msg/s ratio | p99 ratio |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
names=()
for spec in "$@"; do names+=("${spec%%=*}"); done
awk -v first="${names[0]}" -v order="${names[*]}" '
function med(list,   n, a, i, j, t) {
  n = split(list, a, " ")
  for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j+1] = a[j]; a[j+1] = t }
  return n == 0 ? 0 : (n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2)
}
($6 == "near" || $6 == "far") && $11 == 0 {
  k = $2 SUBSEP $6 SUBSEP $1
  N[k]++; R[k] = R[k] " " $7; P50[k] = P50[k] " " $8; P90[k] = P90[k] " " $9; P99[k] = P99[k] " " $10
  if (!(($2, $6) in seen)) { seen[$2, $6] = 1; combos[++nc] = $2 SUBSEP $6 }
}
END {
  ns = split(order, specs, " ")
  for (c = 1; c <= nc; c++) {
    split(combos[c], wp, SUBSEP)
    base = wp[1] SUBSEP wp[2] SUBSEP first
    br = (base in N) ? med(R[base]) : 0; bp = (base in N) ? med(P99[base]) : 0
    for (s = 1; s <= ns; s++) {
      name = specs[s]
      k = wp[1] SUBSEP wp[2] SUBSEP name
      if (!(k in N)) continue
      r = med(R[k]); p = med(P99[k])
      printf "| %s | %s | %s | %d | %.0f | %.0f | %.0f | %.0f | %s | %s |\n", wp[1], wp[2], name, N[k], r,
        med(P50[k]), med(P90[k]), p, br ? sprintf("%.2f", r / br) : "-", bp ? sprintf("%.2f", p / bp) : "-"
    }
  }
}' "$results"
