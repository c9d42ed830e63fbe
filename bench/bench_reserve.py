#!/usr/bin/env python3
"""bench_reserve.py — reserve+confirm throughput across many units.

Starts a hub (LF_BIN, quiet request log), registers --units units with 8
lockers each, then --procs client processes (each with --conns keep-alive
connections on threads) reserve a random locker size on a random unit for a
random future window and confirm it, for --seconds. Prints completed
reserve+confirm pairs per second (409 unavailable answers are counted
apart) and then, if `wrk` is installed, GET /v1/availability at 64
connections for 10 s.

    LF_BIN=build-rel/lockerfleet python3 bench/bench_reserve.py --units 1000

Standard library only (uses tests/e2e/lfhub.py).
"""
import argparse
import datetime
import http.client
import json
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
import lfhub  # noqa: E402


def iso(ts):
    dt = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def client_proc(port, token, nunits, seconds, conns, seed, q):
    ok = unavailable = errors = 0
    lock = threading.Lock()
    stop_at = time.time() + seconds

    def worker(i):
        nonlocal ok, unavailable, errors
        rnd = random.Random(seed * 1000 + i)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        hdr = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
        a = b = e = 0
        base = time.time() + 3600
        while time.time() < stop_at:
            unit = "bench-%04d" % rnd.randrange(nunits)
            start = base + rnd.randrange(0, 28 * 24) * 3600
            body = json.dumps({"unit": unit, "size": rnd.choice("SML"), "from": iso(start),
                               "to": iso(start + 3600)})
            try:
                c.request("POST", "/v1/reservations", body, hdr)
                r = c.getresponse()
                data = r.read()
                if r.status == 409:
                    b += 1
                    continue
                if r.status != 201:
                    e += 1
                    continue
                rid = json.loads(data)["id"]
                c.request("POST", "/v1/reservations/%s/confirm" % rid, "", hdr)
                r = c.getresponse()
                r.read()
                if r.status == 200:
                    a += 1
                else:
                    e += 1
            except (OSError, http.client.HTTPException):
                e += 1
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        with lock:
            ok += a
            unavailable += b
            errors += e

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put((ok, unavailable, errors))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--units", type=int, default=1000)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--conns", type=int, default=8, help="connections per process")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--no-wrk", action="store_true")
    args = ap.parse_args()

    with lfhub.Hub(extra_args=["--quiet-http"],
                   log_level="error") as hub:
        user = hub.create_user("bench")
        t0 = time.time()
        sizes = "SSSMMMLL"
        for i in range(args.units):
            hub.create_unit("bench-%04d" % i,
                            lockers=[("A%02d" % j, sizes[j]) for j in range(len(sizes))],
                            allotment=["A01"])
        print("registered %d units in %.1fs" % (args.units, time.time() - t0), flush=True)
        q = multiprocessing.Queue()
        ps = [multiprocessing.Process(target=client_proc,
                                      args=(hub.port, user["token"], args.units, args.seconds,
                                            args.conns, p, q)) for p in range(args.procs)]
        t0 = time.time()
        for p in ps:
            p.start()
        res = [q.get() for _ in ps]
        for p in ps:
            p.join()
        el = time.time() - t0
        ok = sum(r[0] for r in res)
        un = sum(r[1] for r in res)
        er = sum(r[2] for r in res)
        print("reserve+confirm: %d in %.1fs = %.0f/s (unavailable %d, errors %d), "
              "%d units, %d client connections" % (ok, el, ok / el, un, er, args.units,
                                                   args.procs * args.conns), flush=True)
        if not args.no_wrk and shutil.which("wrk"):
            start = time.time() + 7200
            url = "%s/v1/availability?unit=bench-0001&size=S&from=%s&to=%s" % (
                hub.url, iso(start), iso(start + 3600))
            cmd = ["wrk", "-t2", "-c64", "-d10s", "--latency", "-H",
                   "Authorization: Bearer " + user["token"], url]
            print("$ " + " ".join(c if "Bearer" not in c else "'Authorization: Bearer …'"
                                  for c in cmd), flush=True)
            subprocess.run(cmd)


if __name__ == "__main__":
    main()
