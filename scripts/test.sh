#!/usr/bin/env bash
# Install what is missing, build, and run the whole test suite under
# AddressSanitizer + UndefinedBehaviorSanitizer. This is the README's second
# command and what CI runs (.ci/run).
#   scripts/test.sh            everything
#   scripts/test.sh -L unit    extra arguments go to ctest
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh --all
jobs=$(nproc)
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLF_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/tests/lsan.supp:print_suppressions=0}
(cd build-asan && ctest --output-on-failure -j"$jobs" --timeout 900 "$@")

# The end-to-end tests once more with the hub's other HTTP mode, one thread
# per connection (--http-threads 0; the default is pool mode). Skipped for
# a focused run (ctest arguments given).
if [[ $# -eq 0 ]]; then
  (cd build-asan && LF_HUB_ARGS='--http-threads 0' ctest --output-on-failure -j"$jobs" \
    --timeout 900 -L e2e)
fi

# Fuzzing (clang + libFuzzer): replay every corpus, then a bounded run per
# target (LF_FUZZ_SECONDS, default 60). Skipped when ctest arguments were
# given (a focused run), or with LF_SKIP_FUZZ=1.
if [[ $# -eq 0 && "${LF_SKIP_FUZZ:-0}" != 1 ]]; then
  cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
    -DLF_SANITIZE=ON -DLF_FUZZ=ON -DLF_WERROR=OFF \
    -DLF_FUZZ_SECONDS="${LF_FUZZ_SECONDS:-60}" >/dev/null
  cmake --build build-fuzz -j"$jobs" --target $(cd fuzz && ls fuzz_*.c | sed 's/\.c$//')
  (cd build-fuzz && ctest --output-on-failure -j"$jobs" -L fuzz)
fi
