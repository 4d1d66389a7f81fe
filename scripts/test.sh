#!/usr/bin/env bash
# Builds Tether with warnings as errors and runs the whole test suite with ctest.
# Works as root on a fresh Debian 12: installs what it needs with apt-get.
#   usage: scripts/test.sh [extra ctest args]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
tether_install_deps

build="$TETHER_ROOT/build/release"
echo "== building ($build)"
tether_build "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTETHER_BUILD_TESTS=ON -DTETHER_BUILD_BENCH=ON
echo "== running the test suite"
cd "$build"
ctest --output-on-failure -j"$(nproc)" --timeout 300 "$@"
