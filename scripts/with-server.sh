#!/usr/bin/env bash
# with-server.sh BACKEND CMD... — run CMD against a real, private server.
#
#   BACKEND: postgres | redis | nats | nats-cluster
#
# Starts the server on 127.0.0.1 on free ports (asked from the kernel, never
# fixed), with its data in a fresh temp dir, waits until it answers, runs CMD
# with these variables exported, then stops the server by PID (EXIT trap) and
# removes the temp dir. CMD's exit status is the script's.
#
#   LF_TEST_STORE_URL       store URL for lf_store_open
#   LF_TEST_BACKEND         the BACKEND argument
#   LF_TEST_SERVER_PIDFILE  file holding the server's PID (one line per node
#                           for nats-cluster), for tests that kill -9 it
#   LF_TEST_SERVER_RESTART  a script that starts the killed server(s) again on
#                           the same ports and data; waits until ready.
#                           `$LF_TEST_SERVER_RESTART N` restarts only node N
#                           (1-based) of nats-cluster.
#
# Works as root (CI): PostgreSQL refuses to run as root, so its data dir is
# owned by the postgres user and the server runs through runuser.
#
# Durability settings (docs/ARCHITECTURE.md, "Other backends"):
#   postgres: fsync=on, synchronous_commit=on (the defaults, stated).
#   redis:    appendonly yes, appendfsync always: a reply comes after the AOF
#             is fsynced, so an acknowledged append survives kill -9 and power
#             loss. (everysec would lose up to ~1 s of acknowledged appends
#             on power loss; kill -9 alone loses nothing with either.)
#   nats:     file storage; nats-server 2.9 has no per-message fsync (see docs).
#
# LF_NATS_SERVER: the nats-server binary (default: nats-server on PATH, and
# for nats-cluster the 2.10 one of scripts/nats-server-2.10.sh).
# LF_NATS_SYNC: JetStream's sync_interval (nats-server >= 2.10; "always"
# fsyncs every message before the ack); unset keeps the server's default.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 postgres|redis|nats|nats-cluster CMD..." >&2
    exit 2
fi
backend=$1
shift

tmp=$(mktemp -d "${TMPDIR:-/tmp}/lf-$backend.XXXXXX")
chmod 755 "$tmp"
pidfile=$tmp/server.pids
: >"$pidfile"

# stop_pid PID [SIGNAL]: signal, wait up to 10 s, then KILL.
stop_pid() {
    local pid=$1 sig=${2:-TERM}
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -"$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local sig=TERM
    [ "$backend" = postgres ] && sig=INT # fast shutdown
    while read -r pid; do stop_pid "$pid" "$sig"; done <"$pidfile"
    if [ "$rc" -ne 0 ] && [ -z "${LF_KEEP_SERVER_LOGS:-}" ]; then
        for f in "$tmp"/*.log; do
            [ -f "$f" ] || continue
            echo "---- tail of $f (route dial errors left out)" >&2
            grep -v 'Error trying to connect to route' "$f" | tail -n 30 >&2
        done
    fi
    rm -rf "$tmp"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port the kernel just handed out (bind to 0), so no fixed port can clash.
free_port() {
    python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# One NATS message carries a whole append; the default 1 MB would cap a
# batch at 1 MB (store_nats.c refuses larger ones with LF_EINVAL).
nats_max_payload=67108864
# nats-server: $LF_NATS_SERVER, else for nats-cluster the 2.10 build that
# scripts/setup.sh --all fetches from Debian 13 (nats-server 2.9.10, Debian
# 12's, checks a clustered stream's expected sequence against applied state
# only: concurrent appends to one stream can both win there; see
# docs/ARCHITECTURE.md), else the nats-server on PATH.
nats_bin=${LF_NATS_SERVER:-}
if [ -z "$nats_bin" ] && [ "$backend" = nats-cluster ]; then
    nats_bin=$(bash "$(dirname "$0")/nats-server-2.10.sh" --path) || {
        echo "with-server: nats-cluster needs nats-server >= 2.9.21; run" \
            "scripts/nats-server-2.10.sh (scripts/setup.sh --all does), or set" \
            "LF_NATS_SERVER" >&2
        exit 1
    }
fi
nats_bin=${nats_bin:-nats-server}
nats_sync=${LF_NATS_SYNC:+, sync_interval: $LF_NATS_SYNC}
# NATS positions jump between messages (seq * 100000 + offset), documented.
case "$backend" in nats*) export LF_TEST_ALLOW_GAPS=1 ;; esac

# The restart script re-runs this file's start step with the same state.
restart=$tmp/restart.sh

case "$backend" in
postgres)
    pgbin=${LF_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
    [ -x "$pgbin/initdb" ] || {
        echo "with-server: PostgreSQL binaries not found (set LF_PG_BIN)" >&2
        exit 1
    }
    port=$(free_port)
    as=()
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$tmp"
        as=(runuser -u postgres --)
    fi
    "${as[@]}" "$pgbin/initdb" -D "$tmp/pg" -U postgres -A trust -E UTF8 --locale=C \
        >"$tmp/initdb.log" 2>&1
    cat >"$restart" <<EOF
#!/usr/bin/env bash
set -e
${as[*]} "$pgbin/pg_ctl" -D "$tmp/pg" -l "$tmp/postgres.log" -w -t 60 start \\
  -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$tmp \\
      -c fsync=on -c synchronous_commit=on -c max_connections=400" >/dev/null
head -1 "$tmp/pg/postmaster.pid" >"$pidfile"
EOF
    url="postgres://postgres@127.0.0.1:$port/postgres"
    ;;
redis)
    port=$(free_port)
    mkdir -p "$tmp/redis"
    # Before a restart the AOF is repaired with redis-check-aof --fix, as an
    # operator should after a crash: redis 7.0's loader cuts a torn tail
    # inside a MULTI/EXEC block (an append script's effects) after the last
    # whole command, not before the MULTI, so the block stays open in the
    # file and the next load merges it with the following append's block
    # ("MULTI calls can not be nested", then "ID specified in XADD is equal
    # or smaller": an unacknowledged partial append replayed over an
    # acknowledged one). redis-check-aof cuts before the MULTI. A torn tail
    # is never acknowledged (the reply follows the fsync), so nothing
    # acknowledged is cut; server_kill checks that every acked batch is read
    # back. See docs/ARCHITECTURE.md, "Other backends".
    manifest=$tmp/redis/appendonlydir/appendonly.aof.manifest
    cat >"$restart" <<EOF
#!/usr/bin/env bash
set -e
if [ -f "$manifest" ]; then
  yes | redis-check-aof --fix "$manifest" >"$tmp/check-aof.log" 2>&1 ||
    { echo "redis-check-aof failed:" >&2; cat "$tmp/check-aof.log" >&2; exit 1; }
  if grep -q "Successfully truncated" "$tmp/check-aof.log"; then
    echo "with-server: redis-check-aof cut a torn AOF tail:" >&2
    grep -E "^AOF analyzed|^0x" "$tmp/check-aof.log" >&2 || true
  fi
fi
redis-server --bind 127.0.0.1 --port $port --dir "$tmp/redis" --appendonly yes \\
  --appendfsync always --save '' --daemonize no --logfile "$tmp/redis.log" &
echo \$! >"$pidfile"
for _ in \$(seq 1 300); do
  redis-cli -h 127.0.0.1 -p $port ping 2>/dev/null | grep -q PONG && exit 0
  kill -0 \$(cat "$pidfile") 2>/dev/null || { echo "redis-server died" >&2; exit 1; }
  sleep 0.1
done
echo "redis-server never answered" >&2; exit 1
EOF
    url="redis://127.0.0.1:$port"
    ;;
nats)
    port=$(free_port)
    mon=$(free_port)
    # max_payload: one message carries a whole append (see store_nats.c).
    cat >"$tmp/nats.conf" <<EOF
listen: 127.0.0.1:$port
http: 127.0.0.1:$mon
max_payload: $nats_max_payload
jetstream { store_dir: "$tmp/nats"$nats_sync }
EOF
    cat >"$restart" <<EOF
#!/usr/bin/env bash
set -e
"$nats_bin" -c "$tmp/nats.conf" -l "$tmp/nats.log" &
echo \$! >"$pidfile"
for _ in \$(seq 1 300); do
  curl -sf "http://127.0.0.1:$mon/healthz?js-enabled=true" >/dev/null 2>&1 && exit 0
  kill -0 \$(cat "$pidfile") 2>/dev/null || { echo "nats-server died" >&2; exit 1; }
  sleep 0.1
done
echo "nats-server never became healthy" >&2; exit 1
EOF
    url="nats://127.0.0.1:$port"
    ;;
nats-cluster)
    # Three JetStream servers in one cluster on loopback; the store is opened
    # with replicas=3 so every append is on a quorum before it is acked.
    ports=() cports=() mons=()
    for i in 1 2 3; do
        ports+=("$(free_port)")
        cports+=("$(free_port)")
        mons+=("$(free_port)")
    done
    routes="nats-route://127.0.0.1:${cports[0]},nats-route://127.0.0.1:${cports[1]},nats-route://127.0.0.1:${cports[2]}"
    for i in 1 2 3; do
        j=$((i - 1))
        cat >"$tmp/n$i.conf" <<EOF
server_name: n$i
max_payload: $nats_max_payload
listen: 127.0.0.1:${ports[$j]}
http: 127.0.0.1:${mons[$j]}
jetstream { store_dir: "$tmp/n$i"$nats_sync }
cluster {
  name: lf
  listen: 127.0.0.1:${cports[$j]}
  routes: [ ${routes//,/, } ]
}
EOF
    done
    # The waiter: every node given healthy (/healthz: JetStream current with
    # the meta leader and with the streams it holds) and the cluster formed
    # (2.10 can answer /healthz before its meta group knows every peer: a
    # meta leader that sees both others current). Exit 0 when so; else
    # prints the nodes to start again (the unhealthy ones; all given when
    # all are healthy but the cluster did not form) and exits 1.
    cat >"$tmp/wait_cluster.py" <<'PY'
import json, sys, time, urllib.request, urllib.error
secs, mons, nodes = float(sys.argv[1]), sys.argv[2].split(), [int(n) for n in sys.argv[3:]]
def get(mon, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{mon}{path}", timeout=5) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except Exception as e:
        return 0, str(e)
deadline = time.time() + secs
while True:
    bad = {}
    for n in nodes:
        code, body = get(mons[n - 1], "/healthz")
        if code != 200:
            bad[n] = f"{code} {body[:200]}"
    formed = False
    if not bad:
        for mon in mons:
            code, body = get(mon, "/jsz")
            if code != 200:
                continue
            m = json.loads(body).get("meta_cluster") or {}
            reps = m.get("replicas") or []
            if m.get("leader") and len(reps) == 2 and all(x.get("current") for x in reps):
                formed = True
    if formed:
        sys.exit(0)
    if time.time() > deadline:
        for n, why in bad.items():
            print(f"with-server: nats node {n} not healthy: {why}", file=sys.stderr)
        if not bad:
            print("with-server: the nats cluster did not form", file=sys.stderr)
        print(" ".join(str(n) for n in (bad or nodes)))
        sys.exit(1)
    time.sleep(0.1)
PY
    cat >"$restart" <<EOF
#!/usr/bin/env bash
# restart.sh [N]: start node N (1..3), or every node, and wait until the
# cluster is whole. A node that is not healthy after 45 s is killed and
# started again (seen with 2.10.27 under load: a node that never became
# current with the meta leader), three times at most.
set -e
nodes=\${1:-1 2 3}
mons="${mons[*]}"
touch "$pidfile"
start_node() {
  "$nats_bin" -c "$tmp/n\$1.conf" -l "$tmp/n\$1.log" &
  # line i of the pid file is node i
  python3 - "$pidfile" "\$1" "\$!" <<'PY'
import sys
path, i, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = open(path).read().split("\n")[:3]
lines += [""] * (3 - len(lines))
lines[i - 1] = pid
open(path, "w").write("\n".join(lines) + "\n")
PY
}
for i in \$nodes; do start_node \$i; done
for attempt in 1 2 3; do
  if again=\$(python3 "$tmp/wait_cluster.py" 45 "\$mons" \$nodes); then exit 0; fi
  [ \$attempt = 3 ] && break
  echo "with-server: starting nats node(s) \$again again" >&2
  for i in \$again; do
    pid=\$(sed -n "\${i}p" "$pidfile")
    [ -n "\$pid" ] && kill -9 "\$pid" 2>/dev/null || true
    while [ -n "\$pid" ] && kill -0 "\$pid" 2>/dev/null; do sleep 0.1; done
    start_node \$i
  done
done
echo "with-server: the nats cluster did not become whole" >&2
exit 1
EOF
    url="nats://127.0.0.1:${ports[0]},nats://127.0.0.1:${ports[1]},nats://127.0.0.1:${ports[2]}/LF?replicas=3"
    ;;
*)
    echo "with-server: unknown backend '$backend' (postgres|redis|nats|nats-cluster)" >&2
    exit 2
    ;;
esac

chmod +x "$restart"
"$restart"

export LF_TEST_STORE_URL=$url
export LF_TEST_BACKEND=$backend
export LF_TEST_SERVER_PIDFILE=$pidfile
export LF_TEST_SERVER_RESTART=$restart
set +e
"$@"
rc=$?
set -e
exit "$rc"
