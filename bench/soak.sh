#!/usr/bin/env bash
# soak.sh — a long run of one hub and a simulated fleet with churn (issue 7):
# hub + `lockerfleet sim` (N units, some offline, some flapping, some slow,
# steady events), for DURATION seconds. Samples the hub's RSS, open file
# descriptors, threads, log position and the latency of a few reads (healthz,
# units list, availability) at the start and every INTERVAL seconds; prints
# a table and a start/end summary to paste into bench/RESULTS.md.
#
#   bench/soak.sh [BUILD_DIR]          defaults: build-rel (a release build)
#   DURATION=600 UNITS=2000 INTERVAL=60 bench/soak.sh build-rel
#
# Needs: a built lockerfleet, curl, python3. Uses 127.0.0.1 free ports and a
# temp dir (removed at the end; KEEP=1 keeps it). Run on a quiet machine:
# the sim and the hub each want a core.
set -euo pipefail

BUILD=${1:-build-rel}
BIN=${LF_BIN:-$BUILD/lockerfleet}
DURATION=${DURATION:-600}
UNITS=${UNITS:-2000}
INTERVAL=${INTERVAL:-60}
ADMIN=soak-admin-token-0123456789abcdef0123456789
[ -x "$BIN" ] || { echo "soak: no binary at $BIN (build it or set LF_BIN)" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DIR=$(mktemp -d /tmp/lf-soak-XXXXXX)
HUB_PORT=$(free_port)
SIM_PORT=$(free_port)
HUB=http://127.0.0.1:$HUB_PORT
HUB_PID= SIM_PID=
cleanup() {
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
  [ -n "$HUB_PID" ] && kill "$HUB_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  [ "${KEEP:-0}" = 1 ] && echo "soak: kept $DIR" || rm -rf "$DIR"
}
trap cleanup EXIT

"$BIN" hub --listen 127.0.0.1:$HUB_PORT --data "$DIR/hub" --admin-token $ADMIN \
  --quiet-http --log-level warn --ping-interval 30 --ping-timeout 5 \
  --pull-interval 60 >"$DIR/hub.out" 2>"$DIR/hub.err" &
HUB_PID=$!
for _ in $(seq 100); do curl -fs $HUB/healthz >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs $HUB/healthz >/dev/null || { echo "soak: hub did not start" >&2; cat "$DIR/hub.err" >&2; exit 1; }

# churn: 5% offline on average, 2% flapping, 2% slow, ~2 actions/unit/minute
"$BIN" sim --hub $HUB --admin-token $ADMIN --units "$UNITS" --listen 127.0.0.1:$SIM_PORT \
  --data "$DIR/sim" --presence poll --push-interval 10 --events-per-minute 2 \
  --offline-fraction 0.05 --flap-fraction 0.02 --slow-fraction 0.02 --workers 8 \
  --log-level warn >"$DIR/sim.out" 2>"$DIR/sim.err" &
SIM_PID=$!

lat_ms() { # median of 5 timed GETs, in ms
  local url=$1 tok=${2:-}
  for _ in 1 2 3 4 5; do
    curl -s -o /dev/null -w '%{time_total}\n' ${tok:+-H "Authorization: Bearer $tok"} "$url"
  done | sort -n | sed -n 3p | awk '{printf "%.1f", $1*1000}'
}
sample() { # t rss_mb fds threads position units_online healthz_ms units_ms
  local t=$1 rss fds thr pos online
  rss=$(awk '/^VmRSS/{printf "%.0f", $2/1024}' /proc/$HUB_PID/status)
  fds=$(ls /proc/$HUB_PID/fd | wc -l)
  thr=$(awk '/^Threads/{print $2}' /proc/$HUB_PID/status)
  pos=$(curl -s $HUB/healthz | python3 -c 'import json,sys; print(json.load(sys.stdin)["position"])')
  online=$(curl -s -H "Authorization: Bearer $ADMIN" "$HUB/metrics" |
    awk '$1 == "lockerfleet_units{state=\"online\"}" {print $2}')
  printf '%6s %8s %6s %8s %10s %8s %11s %10s\n' "$t" "$rss" "$fds" "$thr" "$pos" "${online:--}" \
    "$(lat_ms $HUB/healthz)" "$(lat_ms "$HUB/v1/units?limit=100" $ADMIN)"
}

echo "soak: $UNITS units for ${DURATION}s (hub pid $HUB_PID, sim pid $SIM_PID, dir $DIR)"
sleep 20 # registration of the fleet
printf '%6s %8s %6s %8s %10s %8s %11s %10s\n' t_s rss_mb fds threads position online \
  healthz_ms units_ms
START=$(date +%s)
FIRST=$(sample 0)
echo "$FIRST"
while :; do
  NOW=$(date +%s)
  [ $((NOW - START)) -ge "$DURATION" ] && break
  sleep "$INTERVAL"
  kill -0 $HUB_PID 2>/dev/null || { echo "soak: the hub died" >&2; tail -50 "$DIR/hub.err" >&2; exit 1; }
  kill -0 $SIM_PID 2>/dev/null || { echo "soak: the sim died" >&2; tail -50 "$DIR/sim.err" >&2; exit 1; }
  LAST=$(sample $(( $(date +%s) - START )))
  echo "$LAST"
done
echo
echo "start: $FIRST"
echo "end:   $LAST"
echo "hub peak RSS: $(awk '/^VmHWM/{printf "%.0f MB", $2/1024}' /proc/$HUB_PID/status);" \
  "hub stderr lines: $(wc -l <"$DIR/hub.err"); errors: $(grep -c ' error ' "$DIR/hub.err" || true)"
