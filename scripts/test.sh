#!/usr/bin/env bash
# The whole check, as CI runs it (.ci/run), in four stages:
#   1. a release build with warnings as errors, and the whole test suite (ctest);
#   2. the runtime tests (the multi-threaded part) under ThreadSanitizer;
#   3. the whole test suite again under AddressSanitizer + UndefinedBehaviorSanitizer;
#   4. every libFuzzer target for 60 s under ASan+UBSan (scripts/fuzz.sh; clang).
# Works as root on a fresh Debian 12: installs what it needs with apt-get.
#   usage: scripts/test.sh [extra ctest args]
#   TETHER_TEST_STAGES="release tsan asan fuzz" (the default) picks stages.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
tether_install_deps
stages=" ${TETHER_TEST_STAGES:-release tsan asan fuzz} "
started=$SECONDS
stage_done() { echo "== $1 passed ($((SECONDS - started)) s so far)"; }

if [[ "$stages" == *" release "* ]]; then
  build="$TETHER_ROOT/build/release"
  echo "== building ($build)"
  tether_build "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTETHER_BUILD_TESTS=ON -DTETHER_BUILD_BENCH=ON
  echo "== running the test suite"
  (cd "$build" && ctest --output-on-failure -j"$(nproc)" --timeout 300 "$@")
  stage_done "release test suite"
fi

if [[ "$stages" == *" tsan "* ]]; then
  tsan="$TETHER_ROOT/build/tsan"
  echo "== building the runtime tests with ThreadSanitizer ($tsan)"
  cmake -S "$TETHER_ROOT" -B "$tsan" -DTETHER_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DTETHER_SANITIZE=thread -DTETHER_BUILD_BENCH=OFF -DTETHER_BUILD_TOOLS=OFF >/dev/null
  cmake --build "$tsan" -j"$(nproc)" --target runtime_tests
  echo "== running the runtime tests under ThreadSanitizer"
  # halt_on_error: a data race fails the test instead of only printing a report.
  (cd "$tsan" && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$TETHER_ROOT/scripts/tsan.supp" \
    ctest --output-on-failure -j"$(nproc)" --timeout 600 -L runtime "$@")
  stage_done "ThreadSanitizer stage"
fi

if [[ "$stages" == *" asan "* ]]; then
  asan="$TETHER_ROOT/build/asan"
  echo "== building the test suite with AddressSanitizer + UndefinedBehaviorSanitizer ($asan)"
  # The benchmarks are left out: they measure, and their code paths are the tests' own.
  tether_build "$asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTETHER_SANITIZE=address \
    -DTETHER_BUILD_TESTS=ON -DTETHER_BUILD_BENCH=OFF
  echo "== running the test suite under ASan+UBSan"
  (cd "$asan" && ASAN_OPTIONS="detect_leaks=1 abort_on_error=0 strict_string_checks=1" \
    UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1" \
    ctest --output-on-failure -j"$(nproc)" --timeout 600 "$@")
  stage_done "ASan+UBSan stage"
fi

if [[ "$stages" == *" fuzz "* ]]; then
  bash "$TETHER_ROOT/scripts/fuzz.sh" 60
  stage_done "fuzz stage"
fi
