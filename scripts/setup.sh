#!/usr/bin/env bash
# Install every Debian 12 package lockerfleet needs to build, test and run
# its demo. Idempotent: quiet and fast when everything is already there.
# Usage: scripts/setup.sh [--all]   (--all adds the servers, browser and
# tools that the full test suite and benchmarks need)
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config clang clang-format
  libsqlite3-dev sqlite3 libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev
  libcurl3-gnutls
  libsodium-dev libxxhash-dev libzstd-dev libcmocka-dev libpq-dev libhiredis-dev
  libnats-dev libgnutls28-dev libsystemd-dev libinih-dev curl ca-certificates)
TEST_PKGS=(postgresql redis-server nats-server chromium nodejs openssl
  procps psmisc libclang-rt-14-dev prometheus
  systemd)

want=("${BUILD_PKGS[@]}")
if [[ "${1:-}" == "--all" ]]; then want+=("${TEST_PKGS[@]}"); fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  # Never let Debian start the default services: tests start their own
  # servers on free ports and stop them by PID.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The NATS cluster tests need nats-server >= 2.9.21 (see the script).
if [[ "${1:-}" == "--all" ]]; then
  bash "$(dirname "$0")/nats-server-2.10.sh"
fi

if [[ "${1:-}" == "--all" ]] && command -v npm >/dev/null; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  if [[ -f "$here/tests/browser/package.json" && ! -d "$here/tests/browser/node_modules/playwright-core" ]]; then
    echo "setup: npm install in tests/browser"
    (cd "$here/tests/browser" && npm install --no-audit --no-fund --silent)
  fi
  if [[ -f "$here/tests/openapi/package.json" && ! -d "$here/tests/openapi/node_modules/@redocly/cli" ]]; then
    echo "setup: npm install in tests/openapi"
    (cd "$here/tests/openapi" && npm install --no-audit --no-fund --silent)
  fi
fi
