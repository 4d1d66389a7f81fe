# Shared by the scripts: installs the Debian packages Tether builds with (only those missing)
# and builds it. Sourced, not run.
set -euo pipefail

TETHER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
TETHER_PACKAGES=(g++ make cmake pkg-config libssl-dev zlib1g-dev libgtest-dev libbenchmark-dev
                 libcli11-dev nlohmann-json3-dev ca-certificates openssl)

tether_install_deps() {
  local missing=() p
  for p in "${TETHER_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "== installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# tether_build DIR [cmake args...]
tether_build() {
  local dir="$1"
  shift
  cmake -S "$TETHER_ROOT" -B "$dir" -DTETHER_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}
