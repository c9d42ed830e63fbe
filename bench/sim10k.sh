#!/usr/bin/env bash
# The simulator at 10,000 poll units against a real hub (DESIGN §8: hub
# with 10,000 units under 256 MiB; pings within interval + timeout).
# Usage: bench/sim10k.sh BINARY OUTDIR [PORT] [SECONDS]
# Every ~5 s appends to OUTDIR/samples: hub and sim VmHWM/VmRSS/Threads and
# the hub's ping-round metrics and units by state; sim's /usr/bin/time -v in
# OUTDIR/sim.err.
bin=${1:?usage: bench/sim10k.sh BINARY OUTDIR [PORT] [SECONDS]}; d=${2:?OUTDIR}; port=${3:-18951}; dur=${4:-300}
rm -rf "$d"; mkdir -p "$d"
$bin hub --listen 127.0.0.1:$port --data $d/hub --admin-token T0123456789abcdefT --ping-interval 10 --ping-timeout 5 --log-level warn >$d/hub.log 2>&1 &
hp=$!
sleep 2
/usr/bin/time -v $bin sim --hub http://127.0.0.1:$port --admin-token T0123456789abcdefT --units 10000 --data $d/sim --presence poll --offline-fraction 0.05 --events-per-minute 1 --log-level warn >$d/sim.log 2>$d/sim.err &
sp=$!
sleep 1; simpid=$(pgrep -P $sp)
t0=$(date +%s)
while (( $(date +%s) - t0 < dur )); do
  sleep 5
  h=$(awk '/^(VmRSS|VmHWM|Threads)/{printf "%s%s ",$1,$2}' /proc/$hp/status)
  s=$(awk '/^(VmRSS|VmHWM|Threads)/{printf "%s%s ",$1,$2}' /proc/$simpid/status 2>/dev/null)
  m=$(curl -s -m 3 http://127.0.0.1:$port/metrics | grep -E '^lockerfleet_ping_round_seconds_(sum|count)|^lockerfleet_units' | tr '\n' ' ')
  echo "t=$(( $(date +%s) - t0 )) HUB $h SIM $s $m" >> $d/samples
done
kill -TERM $simpid; wait $sp; kill -TERM $hp; wait $hp
echo done >> $d/samples
