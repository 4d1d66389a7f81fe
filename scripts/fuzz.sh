#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, docs/FUZZING.md) with clang in build/fuzz and runs each
# for SECONDS (default 60), one after the other, on a copy of its seed corpus. Fails if any
# target finds a crash, a sanitizer report, a timeout or a memory blow-up; the reproducer is
# then in build/fuzz/artifacts/<target>/. Works as root on a fresh Debian 12.
#   usage: scripts/fuzz.sh [SECONDS]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

seconds="${1:-60}"
[[ "$seconds" =~ ^[0-9]+$ ]] && ((seconds > 0)) || { echo "usage: $0 [SECONDS]" >&2; exit 2; }

# clang-14 only recommends libclang-rt-14-dev, which holds libFuzzer and the sanitizer
# runtimes, so an install without recommends has a clang that cannot link -fsanitize=fuzzer.
tether_install_deps clang libclang-rt-14-dev

build="$TETHER_ROOT/build/fuzz"
targets=(fuzz_frame_server fuzz_frame_client fuzz_handshake_request fuzz_handshake_response
         fuzz_deflate_session)

echo "== building the fuzz targets ($build)"
CC=clang CXX=clang++ cmake -S "$TETHER_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTETHER_WERROR=ON -DTETHER_BUILD_FUZZ=ON -DTETHER_BUILD_TESTS=OFF -DTETHER_BUILD_BENCH=OFF \
  -DTETHER_BUILD_TOOLS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz

failed=()
for target in "${targets[@]}"; do
  bin="$build/fuzz/$target"
  corpus="$build/corpus-run/$target"
  artifacts="$build/artifacts/$target/"
  log="$build/logs/$target.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  # Earlier runs' finds stay in the copy, so repeated runs go deeper; the committed seeds
  # are never written to.
  cp "$TETHER_ROOT/fuzz/corpus/$target/"* "$corpus/"

  regressions="$TETHER_ROOT/fuzz/regressions/$target"
  if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
    if ! "$bin" -artifact_prefix="$artifacts" "$regressions"/* >"$log.regressions" 2>&1; then
      echo "!! $target: a past crash is back (fuzz/regressions/$target); see $log.regressions"
      failed+=("$target")
      continue
    fi
  fi

  echo "== $target: fuzzing for ${seconds}s"
  # timeout(1) is a backstop only: -max_total_time ends the run, -timeout bounds one input.
  status=0
  timeout --kill-after=30 $((seconds + 120)) "$bin" "$corpus" -max_total_time="$seconds" \
    -rss_limit_mb=1024 -timeout=10 -print_final_stats=0 -artifact_prefix="$artifacts" \
    >"$log" 2>&1 || status=$?
  stats="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)"
  echo "   $target: ${stats:-no final stats line}"
  if ((status != 0)); then
    echo "!! $target failed (exit $status); last lines of $log:"
    tail -n 30 "$log" | sed 's/^/   /'
    failed+=("$target")
  fi
done

if ((${#failed[@]})); then
  echo "== FAILED: ${failed[*]} (reproducers in $build/artifacts/)"
  exit 1
fi
echo "== all ${#targets[@]} fuzz targets ran ${seconds}s each without a finding"
