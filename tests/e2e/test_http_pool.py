#!/usr/bin/env python3
"""End-to-end: the hub with --http-threads 2 (epoll polling threads instead
of one thread per connection).

The reservation suite of test_reservations.py again (the 64-way race on
the last locker included), then what pool mode must not break: requests
that wait (?min_position, server-sent events, a live config call to a
unit that does not answer) never hold a polling thread, so with more
waiting requests than threads every other request is still answered at
once; and each waiting request gets its answer.
"""
import http.client
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402
import test_reservations as tr  # noqa: E402

HUB = None
ADMIN = None
THREADS = 2
WAITERS = 6  # more than THREADS


def quick_requests_answered(n=20, limit=2.0):
    """n requests in a row, each answered within limit seconds."""
    for _ in range(n):
        t0 = time.time()
        st, b, _ = HUB.get("/healthz", timeout=10)
        assert st == 200, (st, b)
        frm, to = tr.window()
        st, b, _ = tr.avail(tr.U1["token"], "pool-a", "S", frm, to)
        assert st == 200, (st, b)
        dt = time.time() - t0
        assert dt < limit, "a quick request took %.2f s while others waited" % dt


def test_min_position_does_not_hold_a_thread():
    HUB.create_unit("pool-a", lockers=[("A01", "S"), ("A02", "S")])
    head = HUB.events(limit=1)["head"]
    results = []

    def waiter():
        t0 = time.time()
        st, b, h = HUB.get("/v1/reservations?min_position=%d" % (head + 1000000),
                           token=tr.U1["token"], timeout=30)
        results.append((st, b, h, time.time() - t0))

    ts = [threading.Thread(target=waiter) for _ in range(WAITERS)]
    for t in ts:
        t.start()
    time.sleep(0.5)  # all of them waiting now
    quick_requests_answered()
    for t in ts:
        t.join()
    assert len(results) == WAITERS
    for st, b, h, dt in results:
        assert st == 503 and b["error"]["code"] == "projection_lagging", (st, b)
        assert h.get("retry-after") == "1", h
        assert 4.5 <= dt < 15, dt  # the 5 s bound, counted from arrival


def test_min_position_answers_when_reached():
    st, r, _ = tr.reserve(tr.U1["token"], "pool-a")
    assert st == 201, (st, r)
    st, b, _ = HUB.get("/v1/reservations/%s?min_position=%d" % (r["id"], r["position"]),
                       token=tr.U1["token"])
    assert st == 200 and b["id"] == r["id"] and b["status"] == "held", (st, b)
    frm, to = tr.window()
    st, b, _ = tr.avail(tr.U1["token"], "pool-a", "S", frm, to,
                        "&min_position=%d" % r["position"])
    assert st == 200, (st, b)
    st, b, _ = HUB.get("/v1/units?min_position=%d" % r["position"], token=ADMIN)
    assert st == 200, (st, b)


class Sse:
    """A raw /v1/events/live stream."""

    def __init__(self):
        self.conn = http.client.HTTPConnection("127.0.0.1", HUB.port, timeout=20)
        self.conn.request("GET", "/v1/events/live", headers={"Authorization": "Bearer " + ADMIN})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200, self.resp.status
        assert self.resp.getheader("Content-Type") == "text/event-stream"
        self.text = ""

    def wait_for(self, needle, timeout=15):
        deadline = time.time() + timeout
        while needle not in self.text:
            assert time.time() < deadline, "no %r in the stream: %r" % (needle, self.text)
            chunk = self.resp.fp.read1(65536)
            if not chunk:
                raise AssertionError("stream ended: %r" % self.text)
            self.text += chunk.decode()
        return self.text

    def close(self):
        self.conn.close()


def test_idle_streams_do_not_hold_threads():
    streams = [Sse() for _ in range(WAITERS)]
    for s in streams:
        s.wait_for("stream after position")
    quick_requests_answered()
    HUB.create_user("sse-witness")  # one more event in the log
    for s in streams:
        s.wait_for("event: UserCreated")
    for s in streams:
        s.close()
    quick_requests_answered(5)


def test_live_config_call_is_offloaded():
    # a "unit" that accepts connections and never answers
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(64)
    url = "http://127.0.0.1:%d" % sink.getsockname()[1]
    HUB.create_unit("pool-mute", url=url, presence="poll")
    results = []

    def put():
        t0 = time.time()
        st, b, _ = HUB.admin("PUT", "/v1/units/pool-mute/config?mode=live",
                             {"config": {"price": 1}}, timeout=60)
        results.append((st, b, time.time() - t0))

    ts = [threading.Thread(target=put) for _ in range(WAITERS)]
    for t in ts:
        t.start()
    time.sleep(0.5)
    quick_requests_answered()
    for t in ts:
        t.join()
    sink.close()
    assert len(results) == WAITERS
    for st, b, dt in results:
        assert st == 202 and b["delivery"] == "queued", (st, b)
        assert dt >= 1.5, dt  # it did wait for the unit (--ping-timeout 2)


def test_busy_units_queue_requests():
    """Reserve, confirm and cancel answer once durable without a thread;
    a request for a unit whose append is still in flight is queued and
    run again. 48 clients hammer 3 units of 2 lockers over 3 overlapping
    windows: every request is answered (within the client's timeout),
    every answer is 201/200 or a clean 409, and the log of each unit holds
    no two live reservations of one locker over overlapping windows."""
    units = ["pool-busy-%d" % i for i in range(3)]
    for u in units:
        HUB.create_unit(u, lockers=[("A01", "S"), ("A02", "S")])
    wins = [tr.window(60 + 30 * k, 60) for k in range(3)]  # overlapping hours
    answers = []
    lock = threading.Lock()
    start = threading.Barrier(48)

    def client(i):
        tok = (tr.U1 if i % 2 else tr.U2)["token"]
        start.wait()
        for j in range(6):
            unit = units[(i + j) % 3]
            frm, to = wins[(i * 7 + j) % 3]
            st, b, _ = tr.reserve(tok, unit, "S", frm, to)
            got = [("reserve", st, b)]
            if st == 201:
                act = "cancel" if (i + j) % 4 == 0 else "confirm"
                st2, b2, _ = HUB.post("/v1/reservations/%s/%s" % (b["id"], act), None,
                                      token=tok, timeout=30)
                got.append((act, st2, b2))
            with lock:
                answers.extend(got)

    ts = [threading.Thread(target=client, args=(i,)) for i in range(48)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
        assert not t.is_alive(), "a request was never answered"
    assert len([a for a in answers if a[0] == "reserve"]) == 48 * 6
    for what, st, b in answers:
        if what == "reserve":
            assert st in (201, 409), (what, st, b)
            if st == 409:
                assert b["error"]["code"] == "unavailable", b
        else:
            assert st == 200, (what, st, b)
    assert any(st == 201 for _, st, _ in answers) and any(st == 409 for _, st, _ in answers)
    # no double booking: fold each unit's log
    for u in units:
        ev = HUB.events(stream="bookings-" + u, limit=10000)["events"]
        live = {}
        for e in ev:
            d = e["data"]
            if e["type"] == "ReservationHeld":
                live[d["reservation_id"]] = (d["locker"], d["from"], d["to"])
            elif e["type"] in ("ReservationCancelled", "ReservationExpired"):
                live.pop(d["reservation_id"], None)
        rs = sorted(live.values())
        for a, b in zip(rs, rs[1:]):
            assert not (a[0] == b[0] and b[1] < a[2]), ("double booked", u, a, b)
    st, text, _ = HUB.get("/metrics")
    queued = [l for l in text.splitlines() if l.startswith("lockerfleet_reservation_queued_total")]
    assert queued and float(queued[0].split()[-1]) > 0, queued  # the queue was used
    quick_requests_answered(5)


def test_projection_digests():
    st, b, _ = HUB.get("/v1/projections?digest=1", token=ADMIN)
    assert st == 200, (st, b)
    assert {p["name"] for p in b} >= {"units", "availability", "reservations"}, b
    assert all(len(p["digest"]) == 64 for p in b), b


def main():
    global HUB, ADMIN
    failed = 0
    with lfhub.Hub(extra_args=["--hold-seconds", "600", "--http-threads", str(THREADS),
                               "--ping-timeout", "2"]) as hub:
        HUB = tr.HUB = hub
        ADMIN = hub.admin_token
        tr.U1 = hub.create_user("alice")
        tr.U2 = hub.create_user("bob")
        failed += tr.run([tr.test_availability_and_reserve, tr.test_validation_errors,
                          tr.test_unavailable_and_lifecycle, tr.test_other_user_invisible,
                          tr.test_idempotency_key, tr.test_race_last_locker,
                          test_min_position_does_not_hold_a_thread,
                          test_min_position_answers_when_reached,
                          test_idle_streams_do_not_hold_threads,
                          test_live_config_call_is_offloaded, test_busy_units_queue_requests,
                          test_projection_digests])
        # a graceful stop (SIGTERM) with everything above behind it
        rc = hub.terminate()
        assert rc == 0, "hub exit status %s: %s" % (rc, hub.stderr_tail())
    print("FAILED %d" % failed if failed else "all passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
