#!/usr/bin/env bash
# Install what is missing, build, and run the demo: a hub on the embedded
# SQLite store in ./demo-data, a simulated fleet and the dashboard. This is
# the README's first command. Ctrl-C stops it; run it again to resume.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
exec ./build/lockerfleet demo --data ./demo-data "$@"
