#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, docs/FUZZING.md) with clang and ASan+UBSan in build/fuzz
# and runs each for SECONDS (default 60) on a copy of its seed corpus, JOBS targets at a time
# (default: the number of cores). Fails if any target finds a crash, a sanitizer report, a
# timeout or a memory blow-up; the reproducer is then in build/fuzz/artifacts/<target>/.
# Works as root on a fresh Debian 12.
#   usage: scripts/fuzz.sh [SECONDS [JOBS]]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

seconds="${1:-60}"
jobs="${2:-$(nproc)}"
[[ "$seconds" =~ ^[0-9]+$ ]] && ((seconds > 0)) && [[ "$jobs" =~ ^[0-9]+$ ]] && ((jobs > 0)) ||
  { echo "usage: $0 [SECONDS [JOBS]]" >&2; exit 2; }

# clang-14 only recommends libclang-rt-14-dev, which holds libFuzzer and the sanitizer
# runtimes, so an install without recommends has a clang that cannot link -fsanitize=fuzzer.
tether_install_deps clang libclang-rt-14-dev

build="$TETHER_ROOT/build/fuzz"
targets=(fuzz_frame_server fuzz_frame_client fuzz_handshake_request fuzz_handshake_response
         fuzz_deflate_session)

echo "== building the fuzz targets ($build)"
CC=clang CXX=clang++ cmake -S "$TETHER_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTETHER_WERROR=ON -DTETHER_BUILD_FUZZ=ON -DTETHER_BUILD_TESTS=OFF -DTETHER_BUILD_BENCH=OFF \
  -DTETHER_BUILD_TOOLS=OFF -DTETHER_FUZZ_SANITIZE=address,undefined >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz

# Runs one target; its verdict goes to $build/logs/<target>.result ("ok" or the reason).
fuzz_one() {
  local target="$1"
  local bin="$build/fuzz/$target"
  local corpus="$build/corpus-run/$target"
  local artifacts="$build/artifacts/$target/"
  local log="$build/logs/$target.log"
  local result="$build/logs/$target.result"
  mkdir -p "$corpus" "$artifacts"
  # Earlier runs' finds stay in the copy, so repeated runs go deeper; the committed seeds
  # are never written to.
  cp "$TETHER_ROOT/fuzz/corpus/$target/"* "$corpus/"

  local regressions="$TETHER_ROOT/fuzz/regressions/$target"
  if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
    if ! "$bin" -artifact_prefix="$artifacts" "$regressions"/* >"$log.regressions" 2>&1; then
      echo "a past crash is back (fuzz/regressions/$target); see $log.regressions" >"$result"
      return
    fi
  fi

  # timeout(1) is a backstop only: -max_total_time ends the run, -timeout bounds one input.
  local status=0
  timeout --kill-after=30 $((seconds + 120)) "$bin" "$corpus" -max_total_time="$seconds" \
    -rss_limit_mb=1024 -timeout=10 -print_final_stats=0 -artifact_prefix="$artifacts" \
    >"$log" 2>&1 || status=$?
  if ((status != 0)); then
    echo "exit $status; see $log" >"$result"
  else
    echo ok >"$result"
  fi
}

mkdir -p "$build/logs"
rm -f "$build"/logs/*.result
echo "== fuzzing ${#targets[@]} targets for ${seconds}s each, $jobs at a time"
running=0
for target in "${targets[@]}"; do
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
  fuzz_one "$target" &
  running=$((running + 1))
done
wait

failed=()
for target in "${targets[@]}"; do
  log="$build/logs/$target.log"
  stats="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" 2>/dev/null | tail -n 1 || true)"
  result="$(cat "$build/logs/$target.result" 2>/dev/null || echo "no result")"
  if [ "$result" = ok ]; then
    echo "   $target: ${stats:-no final stats line}"
  else
    echo "!! $target failed: $result"
    [ -f "$log" ] && tail -n 30 "$log" | sed 's/^/   /'
    failed+=("$target")
  fi
done

if ((${#failed[@]})); then
  echo "== FAILED: ${failed[*]} (reproducers in $build/artifacts/)"
  exit 1
fi
echo "== all ${#targets[@]} fuzz targets ran ${seconds}s each without a finding"
