#!/usr/bin/env bash
# Builds Tether with warnings as errors and runs the whole test suite with ctest, then the
# runtime tests (the multi-threaded part) under ThreadSanitizer. The ASan+UBSan build
# (-DTETHER_SANITIZE=address) is not part of this run yet.
# Works as root on a fresh Debian 12: installs what it needs with apt-get.
#   usage: scripts/test.sh [extra ctest args]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
tether_install_deps

build="$TETHER_ROOT/build/release"
echo "== building ($build)"
tether_build "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTETHER_BUILD_TESTS=ON -DTETHER_BUILD_BENCH=ON
echo "== running the test suite"
(cd "$build" && ctest --output-on-failure -j"$(nproc)" --timeout 300 "$@")

tsan="$TETHER_ROOT/build/tsan"
echo "== building the runtime tests with ThreadSanitizer ($tsan)"
cmake -S "$TETHER_ROOT" -B "$tsan" -DTETHER_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTETHER_SANITIZE=thread -DTETHER_BUILD_BENCH=OFF -DTETHER_BUILD_TOOLS=OFF >/dev/null
cmake --build "$tsan" -j"$(nproc)" --target runtime_tests
echo "== running the runtime tests under ThreadSanitizer"
# halt_on_error: a data race fails the test instead of only printing a report.
(cd "$tsan" && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$TETHER_ROOT/scripts/tsan.supp" \
  ctest --output-on-failure -j"$(nproc)" --timeout 600 -L runtime "$@")
