#!/usr/bin/env bash
# redis_torn_aof.sh — run under scripts/with-server.sh redis: a kill -9
# that tears the AOF inside a script's MULTI/EXEC block, two restarts
# through $LF_TEST_SERVER_RESTART, and the state must be the acknowledged
# writes only. Without the repair in with-server.sh's restart, redis 7.0
# keeps the torn block open in the file and the second restart merges it
# with the next block ("== CRITICAL == ... equal or smaller", head 4).
set -euo pipefail
port=${LF_TEST_STORE_URL##*:}
dir=$(dirname "$LF_TEST_SERVER_PIDFILE")
cli() { redis-cli -p "$port" "$@"; }
# The append script's shape: a counter, then entries with ids from it.
lua="redis.call('INCRBY', KEYS[1], 2)
redis.call('XADD', KEYS[2], ARGV[1] .. '-0', 'd', 'first')
redis.call('XADD', KEYS[2], ARGV[2] .. '-0', 'd', 'second-of-two-entries')
return 1"
kill9() {
    local pid
    pid=$(head -1 "$LF_TEST_SERVER_PIDFILE")
    kill -9 "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}
cli SET before 1 >/dev/null
cli EVAL "$lua" 2 h log 1 2 >/dev/null
kill9
incr=$(ls "$dir"/redis/appendonlydir/*.incr.aof)
size=$(stat -c %s "$incr")
truncate -s $((size - 30)) "$incr" # inside the last XADD: a torn block
"$LF_TEST_SERVER_RESTART"
[ "$(cli GET h)" = "" ] || { echo "FAIL: torn block applied" >&2; exit 1; }
cli EVAL "$lua" 2 h log 1 2 >/dev/null # the retry, acknowledged
kill9
"$LF_TEST_SERVER_RESTART"
h=$(cli GET h) n=$(cli XLEN log) b=$(cli GET before)
if [ "$h" != 2 ] || [ "$n" != 2 ] || [ "$b" != 1 ]; then
    echo "FAIL: after the second restart h=$h (want 2) entries=$n (want 2) before=$b" >&2
    exit 1
fi
if grep -q CRITICAL "$dir/redis.log"; then
    echo "FAIL: redis.log:" >&2
    grep CRITICAL "$dir/redis.log" >&2
    exit 1
fi
echo "ok: torn AOF block cut before MULTI at restart; h=$h entries=$n"
