#!/usr/bin/env bash
# Builds Tether and runs the demo; it ends by itself and prints what happened.
# Works as root on a fresh Debian 12: installs what it needs with apt-get.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
tether_install_deps

build="$TETHER_ROOT/build/release"
echo "== building ($build)"
tether_build "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTETHER_BUILD_TESTS=OFF -DTETHER_BUILD_BENCH=OFF
echo "== demo: a client and a server session of the sans-I/O core, joined by an in-memory pipe"
"$build/examples/pipe_demo"
