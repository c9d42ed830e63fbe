#!/usr/bin/env bash
# presence_storm.sh — a presence storm: N poll units (lockerfleet sim) come
# online, then all vanish at once (the sim is killed -9). Prints how long
# the hub took to mark them all offline (the lockerfleet_units gauge) and
# to store their N UnitWentOffline events (lockerfleet_log_position moved
# by N). A/B two builds by running it with each binary in turn.
#
#   bench/presence_storm.sh BIN [N]      # default N 3000; --ping-interval 1
set -uo pipefail
BIN=${1:?usage: bench/presence_storm.sh BIN [N]}; N=${2:-3000}
d=$(mktemp -d); tok=storm-admin-token-0123456789abcdef0123
$BIN hub --listen 127.0.0.1:0 --data $d/hub --admin-token $tok --ping-interval 1 --ping-timeout 1 --log-level warn > $d/hub.out 2>$d/hub.err &
hp=$!
for i in $(seq 100); do grep -q "listening on" $d/hub.out && break; sleep 0.1; done
url=$(grep -o "http://[0-9.:]*" $d/hub.out | head -1)
count() { curl -s $url/metrics | awk -v s="$1" '$1 ~ "^lockerfleet_units\\{state=\""s"\"" {print $2+0}'; }
$BIN sim --hub $url --admin-token $tok --units $N --data $d/sim --events-per-minute 0.01 --log-level warn >/dev/null 2>&1 &
sp=$!
t0=$(date +%s.%N)
for i in $(seq 1200); do o=$(count online); [ "${o:-0}" -ge $N ] && break; sleep 0.1; done
t1=$(date +%s.%N)
pos() { curl -s $url/metrics | awk '$1=="lockerfleet_log_position"{print $2+0}'; }
p0=$(pos)
kill -9 $sp; wait $sp 2>/dev/null
t2=$(date +%s.%N)
for i in $(seq 1200); do f=$(count offline); [ "${f:-0}" -ge $N ] && break; sleep 0.05; done
t3=$(date +%s.%N)
for i in $(seq 1200); do p=$(pos); [ $((p - p0)) -ge $N ] && break; sleep 0.05; done
t4=$(date +%s.%N)
sleep 1
ev=$(pos)
el() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
printf "%s: %d units online after %s s (registration + first rounds); all offline %s s after the kill, their %d UnitWentOffline stored %s s after; log position %s\n" \
  "$BIN" "$N" "$(el $t1 $t0)" "$(el $t3 $t2)" "$N" "$(el $t4 $t2)" "$ev"
kill $hp; wait $hp 2>/dev/null; rm -rf "$d"
