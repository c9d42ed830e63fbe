"""test_overload.py — admission control of ingestion (DESIGN §9, issue 7).

With --ingest-inflight 1, concurrent pushes beyond the budget are answered
429 {"error":{"code":"overloaded"}} with Retry-After; clients that honour it
(with jitter) all get through, and every event is stored exactly once.
Then a reconnect storm of real `lockerfleet unit` agents, each with a
backlog made while the hub was down: they get 429s, back off, and end with
their whole log on the hub once. The hub stays up; its peak RSS is measured
(/proc/PID/status VmHWM) and must stay bounded."""
import os
import random
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402
import lfunit  # noqa: E402

RSS_LIMIT_MB = 1024  # generous: sanitizer builds roughly double memory


def metric(hub, name):
    st, text, _ = hub.get("/metrics")
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def peak_rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def unit_log_len(hub, name):
    n, after, ids = 0, 0, set()
    while True:
        b = hub.events(after=after, limit=1000, stream="unitlog-" + name)
        for e in b["events"]:
            assert e["id"] not in ids, "duplicate"
            ids.add(e["id"])
            assert e["version"] == n + 1, (name, e["version"], n)
            n += 1
        if len(b["events"]) < 1000:
            return n
        after = b["events"][-1]["position"]


def test_429_and_retry():
    with lfhub.Hub(["--ingest-inflight", "1", "--ping-interval", "3600"]) as hub:
        n_clients, batches, per = 12, 4, 400
        regs = [hub.create_unit("ovl-%02d" % i, heartbeat_interval_ms=86400000)
                for i in range(n_clients)]
        stats = {"429": 0, "ok": 0, "retry_after": set(), "other": []}
        lock = threading.Lock()
        go = threading.Barrier(n_clients)

        def client(i):
            r = random.Random(i)
            name, tok = regs[i]["name"], regs[i]["token"]
            go.wait()
            seq = 1
            for b in range(batches):
                evs = [{"seq": seq + k, "id": str(uuid.uuid4()), "type": "DoorOpened",
                        "time": "2026-01-02T03:04:05Z", "data": {"locker": "A01", "pad": "x" * 200}}
                       for k in range(per)]
                while True:
                    st, body, h = hub.post("/v1/units/%s/events" % name, {"events": evs},
                                           token=tok, timeout=120)
                    with lock:
                        if st == 429:
                            stats["429"] += 1
                            stats["retry_after"].add(h.get("retry-after"))
                            assert body["error"]["code"] == "overloaded", body
                        elif st == 200:
                            stats["ok"] += 1
                        else:
                            stats["other"].append((st, body))
                    if st == 200:
                        assert body["acked_seq"] == seq + per - 1, body
                        break
                    assert st in (429, 503), (st, body)
                    ra = float(h.get("retry-after", "1"))
                    time.sleep(ra * r.uniform(0.2, 1.0))  # honour it, with jitter
                seq += per

        ths = [threading.Thread(target=client, args=(i,)) for i in range(n_clients)]
        for t in ths:
            t.start()
        for t in ths:
            t.join(timeout=300)
        assert not any(t.is_alive() for t in ths), "clients stuck"
        assert not stats["other"], stats["other"][:3]
        assert stats["ok"] == n_clients * batches, stats
        assert stats["429"] > 0, "no 429 with an in-flight budget of 1 and 12 clients"
        assert stats["retry_after"] and all(ra and int(ra) >= 1 for ra in stats["retry_after"])
        for r in regs:
            assert unit_log_len(hub, r["name"]) == batches * per, r["name"]
        rejected = metric(hub, "lockerfleet_ingest_rejected_total")
        assert rejected >= stats["429"], (rejected, stats["429"])
        st, _, _ = hub.get("/healthz")
        assert st == 200
        print("429s: %d, batches stored: %d, peak RSS %.0f MB" % (
            stats["429"], stats["ok"], peak_rss_mb(hub.proc.pid)))


def test_reconnect_storm_of_agents():
    port = lfhub.free_port()
    hub = lfhub.Hub(["--listen", "127.0.0.1:%d" % port, "--ingest-inflight", "1",
                     "--ping-interval", "3600", "--quiet-http"])
    units = []
    try:
        n_units, per_unit = 6, 250
        regs = [hub.create_unit("storm-%d" % i, heartbeat_interval_ms=86400000)
                for i in range(n_units)]
        hub.kill()  # the hub goes away; units keep working offline
        for r in regs:
            u = lfunit.Unit(r["name"], ["--hub", "http://127.0.0.1:%d" % port,
                                        "--token", r["token"], "--lockers", "A01:S,A02:M,A03:L",
                                        "--push-interval", "0.2", "--backoff-max", "2"])
            units.append(u)

        def make(u):
            rr = random.Random(u.name)
            for k in range(per_unit):
                st, b, _ = u.post("/hardware/door-" + ("open" if k % 2 == 0 else "close"),
                                  {"locker": rr.choice(["A01", "A02", "A03"])})
                assert st == 200, b
        ths = [threading.Thread(target=make, args=(u,)) for u in units]
        for t in ths:
            t.start()
        for t in ths:
            t.join(timeout=300)
        heads = {}
        for u in units:
            st, s, _ = u.get("/status")
            assert s["acked_seq"] == 0 and s["seq_head"] >= per_unit, s
            heads[u.name.split("-", 1)[1]] = s["seq_head"]
        time.sleep(2.5)  # every unit is now in backoff, due within ~2 s: a storm
        hub.restart()
        t0 = time.time()

        def drained():
            return all(u.get("/status")[1]["acked_seq"] == heads[u.name.split("-", 1)[1]]
                       for u in units)
        hub.wait_for(drained, timeout=240, interval=0.3, what="all units drained")
        took = time.time() - t0
        for name, head in heads.items():
            assert unit_log_len(hub, name) == head, name
        rejected = metric(hub, "lockerfleet_ingest_rejected_total")
        failed = sum(u.get("/status")[1]["pushes_failed"] for u in units)
        rss = peak_rss_mb(hub.proc.pid)
        assert rss < RSS_LIMIT_MB, "hub peak RSS %.0f MB" % rss
        assert hub.get("/healthz")[0] == 200 and hub.proc.poll() is None
        print("storm: %d units x %d events drained in %.1fs; %d rejected (429), %d failed pushes "
              "seen by units; hub peak RSS %.0f MB" % (n_units, per_unit, took, rejected, failed,
                                                        rss))
    except BaseException:
        sys.stderr.write("--- hub stderr ---\n" + hub.stderr_tail() + "\n")
        raise
    finally:
        for u in units:
            u.cleanup()
        hub.cleanup()


if __name__ == "__main__":
    lfhub.run_tests([test_429_and_retry, test_reconnect_storm_of_agents])
