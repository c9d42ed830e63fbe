#!/usr/bin/env bash
# Unit agent memory (DESIGN §8: "a unit agent under 8 MiB RSS").
# Usage: bench/unit_rss.sh BINARY [--libs]
# Starts 'lockerfleet unit' twice on loopback with 10 lockers:
#   idle    — no hub, read after 2 s;
#   active  — --hub pointing at a closed port (the uplink retries over its
#             built-in http:// client; libcurl is never loaded),
#             then 200 x (POST /screen/rent, POST /screen/pickup, GET /events).
# Prints VmRSS, VmHWM, RssAnon, RssFile (kB) from /proc/PID/status for each,
# and the number of shared objects mapped;
# --libs adds the resident kB per mapped file (from /proc/PID/smaps), the
# largest 12 (LF_RSS_TOP=N for more).
set -euo pipefail
bin=${1:?usage: bench/unit_rss.sh BINARY [--libs]}
libs=${2:-}
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT
lockers=A01:S,A02:S,A03:S,A04:S,A05:M,A06:M,A07:M,A08:L,A09:L,A10:L

report() {
  # shared objects mapped: each costs resident pages to load, used or not
  local nlibs
  nlibs=$(awk '$6 ~ /\.so/ {print $6}' /proc/$pid/maps | sort -u | wc -l)
  awk -v what="$1" -v nlibs="$nlibs" '/^(VmRSS|VmHWM|RssAnon|RssFile|Threads)/ {v[$1]=$2}
    END {printf "%-7s VmRSS %6d kB  VmHWM %6d kB  RssAnon %6d kB  RssFile %6d kB  threads %d  libs %d\n",
         what, v["VmRSS:"], v["VmHWM:"], v["RssAnon:"], v["RssFile:"], v["Threads:"], nlibs}' \
    /proc/$pid/status
  if [[ "$libs" == --libs ]]; then
    awk '/^[0-9a-f]+-[0-9a-f]+ / {f=$6} /^Rss:/ {if (f!="") r[f]+=$2}
      END {for (k in r) if (r[k] > 0) printf "  %6d kB %s\n", r[k], k}' /proc/$pid/smaps |
      sort -rn | head -${LF_RSS_TOP:-12}
  fi
}

start() { # name extra-args...
  local n=$1
  shift
  "$bin" unit --name "$n" --listen 127.0.0.1:0 --data "$dir/$n" --lockers "$lockers" \
    --log-level warn "$@" >"$dir/$n.out" 2>"$dir/$n.err" &
  pid=$!
  for _ in $(seq 100); do
    grep -q listening "$dir/$n.out" 2>/dev/null && break
    sleep 0.1
  done
  url=$(sed -n 's/^listening on //p' "$dir/$n.out")
}

start idle
sleep 2
report idle
kill $pid && wait $pid || true

start active --hub http://127.0.0.1:1 --token t --push-interval 1
for _ in $(seq 200); do
  code=$(curl -s -X POST -d '{"size":"S","minutes":60}' "$url/screen/rent" |
    sed -n 's/.*"code":"\([^"]*\)".*/\1/p')
  curl -s -o /dev/null -X POST -d "{\"code\":\"$code\"}" "$url/screen/pickup"
  curl -s -o /dev/null "$url/events"
done
sleep 1
report active
