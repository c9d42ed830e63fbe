#!/usr/bin/env bash
# bench_availability.sh — GET /v1/availability at 64 connections (wrk), side
# by side with a static nginx file in the SAME run: nginx is this machine's
# HTTP ceiling, so the ratio hub/nginx holds on a loaded machine where the
# absolute figures do not (target: >= 20,000 req/s and p99 < 10 ms).
#
#   bench/bench_availability.sh [-b BIN] [-m "MODES"] [-r ROUNDS] [-d SECONDS]
#
#   -b BIN     the lockerfleet binary (default build-rel/lockerfleet)
#   -m MODES   hub --http-threads values to compare, one hub each
#              (default "0 2": one thread per connection, and 2 epoll threads)
#   -r ROUNDS  rounds; each round runs every target once, in turn (default 3)
#   -d SECONDS wrk duration per run (default 10)
#
# Each hub gets a temp data dir, one unit (8 lockers) with a few
# reservations and one user; nginx (1 worker, access_log off, as in
# /work/shared/peers/06_http.sh) serves a file holding the exact bytes of
# the hub's availability answer. wrk -t2 -c64 --latency. Prints per run
# req/s, p50, p99 and the hub's CPU per request (from /proc/PID/stat), then
# the medians and the ratio to nginx. nginx absent: its rows are skipped
# with a message. Every process started here is stopped by its PID.
set -euo pipefail

BIN=build-rel/lockerfleet
MODES="0 2"
ROUNDS=3
SECS=10
while getopts "b:m:r:d:h" o; do
    case $o in
    b) BIN=$OPTARG ;;
    m) MODES=$OPTARG ;;
    r) ROUNDS=$OPTARG ;;
    d) SECS=$OPTARG ;;
    *)
        sed -n '2,21p' "$0"
        exit 2
        ;;
    esac
done
command -v wrk >/dev/null || {
    echo "bench_availability: wrk is not installed (apt-get install wrk)" >&2
    exit 2
}
command -v curl >/dev/null || {
    echo "bench_availability: curl is not installed" >&2
    exit 2
}
[ -x "$BIN" ] || {
    echo "bench_availability: $BIN is not an executable lockerfleet" >&2
    exit 2
}
BIN=$(readlink -f "$BIN")
ADMIN=bench-admin-token-0123456789abcdef
TMP=$(mktemp -d /tmp/lf-bench-avail-XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# CPU ticks of a process and its children (nginx: master + worker)
cpu_ticks() {
    local t=0 p
    for p in "$1" $(pgrep -P "$1" || true); do
        t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
iso() { date -u -d "@$1" +%Y-%m-%dT%H:00:00Z; }

NOW=$(date +%s)
FROM=$(iso $((NOW + 7200)))
TO=$(iso $((NOW + 10800)))
QUERY="/v1/availability?unit=bench-0001&size=S&from=$FROM&to=$TO"

declare -A URL HPID TOKEN
for m in $MODES; do
    d="$TMP/hub-$m"
    mkdir -p "$d"
    "$BIN" hub --listen 127.0.0.1:0 --data "$d" --admin-token "$ADMIN" --log-level error \
        --quiet-http --http-threads "$m" >"$d/out" 2>"$d/err" &
    HPID[$m]=$!
    PIDS+=("${HPID[$m]}")
    for _ in $(seq 1 100); do
        grep -q '^listening on ' "$d/out" 2>/dev/null && break
        sleep 0.1
    done
    URL[$m]=$(sed -n 's/^listening on //p' "$d/out" | head -1)
    [ -n "${URL[$m]}" ] || {
        echo "bench_availability: the hub (--http-threads $m) did not start:" >&2
        cat "$d/err" >&2
        exit 1
    }
    u=${URL[$m]}
    curl -sf -o /dev/null -H "Authorization: Bearer $ADMIN" -d '{"name":"bench-0001",
        "display_name":"bench 1","presence":"heartbeat","lockers":[{"id":"A00","size":"S"},
        {"id":"A01","size":"S"},{"id":"A02","size":"S"},{"id":"A03","size":"M"},
        {"id":"A04","size":"M"},{"id":"A05","size":"M"},{"id":"A06","size":"L"},
        {"id":"A07","size":"L"}],"allotment":["A01"]}' "$u/v1/units"
    TOKEN[$m]=$(curl -sf -H "Authorization: Bearer $ADMIN" -d '{"name":"bench-user"}' \
        "$u/v1/users" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    for h in 2 3 4 5 6; do # a few reservations, one of them on the queried window
        curl -sf -o /dev/null -H "Authorization: Bearer ${TOKEN[$m]}" \
            -d "{\"unit\":\"bench-0001\",\"size\":\"S\",\"from\":\"$(iso $((NOW + h * 3600)))\",\"to\":\"$(iso $((NOW + h * 3600 + 3600)))\"}" \
            "$u/v1/reservations"
    done
    curl -sf -H "Authorization: Bearer ${TOKEN[$m]}" "$u$QUERY" >"$TMP/answer-$m.json"
done
first=${MODES%% *}
BODY="$TMP/answer-$first.json"
echo "availability answer ($(wc -c <"$BODY") bytes): $(cat "$BODY")"

NGINX_URL=""
if command -v nginx >/dev/null; then
    nd="$TMP/nginx"
    mkdir -p "$nd/logs" "$nd/www"
    cp "$BODY" "$nd/www/availability.json"
    # nginx started as root serves as its worker user (nobody): let it read
    chmod 0755 "$TMP" "$nd" "$nd/www"
    chmod 0644 "$nd/www/availability.json"
    port=$(free_port)
    cat >"$nd/nginx.conf" <<CONF
worker_processes 1;
pid $nd/nginx.pid;
error_log $nd/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $nd/cb; proxy_temp_path $nd/px; fastcgi_temp_path $nd/fc;
  uwsgi_temp_path $nd/uw; scgi_temp_path $nd/sc;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    root $nd/www;
    location / { default_type application/json; }
  }
}
CONF
    nginx -p "$nd" -c "$nd/nginx.conf" -g 'daemon off;' 2>"$nd/logs/stderr" &
    NPID=$!
    PIDS+=("$NPID")
    for _ in $(seq 1 50); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/availability.json" && break
        sleep 0.1
    done
    if cmp -s <(curl -sf "http://127.0.0.1:$port/availability.json") "$BODY"; then
        NGINX_URL="http://127.0.0.1:$port/availability.json"
        echo "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') (pid $NPID) serves the same bytes as a static file"
    else
        echo "bench_availability: nginx did not start; its rows are skipped" >&2
        tail -n 5 "$nd/logs/stderr" "$nd/logs/error.log" >&2 || true
    fi
else
    echo "bench_availability: nginx is not installed (apt-get install nginx-light): no ceiling measured"
fi

# run NAME URL PID [TOKEN] -> appends "rps p50_ms p99_ms us_per_req" to $TMP/res-NAME
run() {
    local name=$1 url=$2 pid=$3 tok=${4:-} out c0 c1 hz
    hz=$(getconf CLK_TCK)
    c0=$(cpu_ticks "$pid")
    if [ -n "$tok" ]; then
        out=$(wrk -t2 -c64 -d"${SECS}s" --latency -H "Authorization: Bearer $tok" "$url")
    else
        out=$(wrk -t2 -c64 -d"${SECS}s" --latency "$url")
    fi
    c1=$(cpu_ticks "$pid")
    if grep -q "Non-2xx" <<<"$out"; then
        echo "bench_availability: $name answered non-2xx:" >&2
        echo "$out" >&2
        exit 1
    fi
    awk -v name="$name" -v c="$((c1 - c0))" -v hz="$hz" '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
        $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
        /requests in/ { n = $1 } /Requests\/sec/ { rps = $2 }
        END { us = n > 0 ? c / hz * 1e6 / n : 0
              printf "%-12s %10.0f req/s  p50 %6.2f ms  p99 %6.2f ms  cpu %6.1f us/req\n", name, rps, p50, p99, us
              printf "%s %s %s %s\n", rps, p50, p99, us >> "'"$TMP"'/res-" name }' <<<"$out"
}

for r in $(seq 1 "$ROUNDS"); do
    echo "-- round $r"
    [ -n "$NGINX_URL" ] && run nginx "$NGINX_URL" "$NPID"
    for m in $MODES; do run "hub-t$m" "${URL[$m]}$QUERY" "${HPID[$m]}" "${TOKEN[$m]}"; done
done

median() { sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
echo "-- medians of $ROUNDS runs (wrk -t2 -c64 -d${SECS}s; hub-tN = --http-threads N)"
nrps=""
[ -f "$TMP/res-nginx" ] && nrps=$(awk '{print $1}' "$TMP/res-nginx" | median)
for name in ${NGINX_URL:+nginx} $(for m in $MODES; do echo "hub-t$m"; done); do
    f="$TMP/res-$name"
    rps=$(awk '{print $1}' "$f" | median)
    p50=$(awk '{print $2}' "$f" | median)
    p99=$(awk '{print $3}' "$f" | median)
    us=$(awk '{print $4}' "$f" | median)
    printf "%-12s %10.0f req/s  p50 %6.2f ms  p99 %6.2f ms  cpu %6.1f us/req" "$name" "$rps" "$p50" "$p99" "$us"
    if [ -n "$nrps" ] && [ "$name" != nginx ]; then
        awk -v a="$rps" -v b="$nrps" 'BEGIN { printf "  = %.2f x nginx", a / b }'
    fi
    echo
done
