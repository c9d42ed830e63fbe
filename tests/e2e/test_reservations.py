#!/usr/bin/env python3
"""End-to-end: reservations against a real hub process.

Every endpoint's success and error paths, the 64-way race on the last free
locker (repeated), a hold expiring by itself, confirm after cancel,
another user's reservation invisible, Idempotency-Key, read-your-writes
with min_position, and a walk-up rental conflict resolved with
compensating events.
"""
import datetime
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def window(start_min=60, length_min=60):
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    f = now + datetime.timedelta(minutes=start_min)
    return iso(f), iso(f + datetime.timedelta(minutes=length_min))


HUB = None
U1 = U2 = None


def reserve(tok, unit, size="S", frm=None, to=None, key=None):
    if frm is None:
        frm, to = window()
    hdr = {"Idempotency-Key": key} if key else None
    return HUB.post("/v1/reservations", {"unit": unit, "size": size, "from": frm, "to": to},
                    token=tok, headers=hdr)


def avail(tok, unit, size, frm, to, extra=""):
    q = urllib.parse.urlencode({"unit": unit, "size": size, "from": frm, "to": to})
    return HUB.get("/v1/availability?" + q + extra, token=tok)


def test_availability_and_reserve():
    lfhub_unit = "res-a"
    HUB.create_unit(lfhub_unit, lockers=[("A01", "S"), ("A02", "S"), ("B01", "M")])
    frm, to = window()
    st, b, _ = avail(U1["token"], lfhub_unit, "S", frm, to)
    assert st == 200, (st, b)
    assert b["free"] == 2 and b["unit"] == lfhub_unit and b["size"] == "S", b
    st, b, _ = reserve(U1["token"], lfhub_unit, "S", frm, to)
    assert st == 201, (st, b)
    assert b["status"] == "held" and b["locker"] == "A01", b
    assert b["position"] > 0 and b["hold_expires_at"].endswith("Z") and len(b["id"]) == 36
    st, b2, _ = avail(U1["token"], lfhub_unit, "S", frm, to)
    assert b2["free"] == 1, b2
    # half-open: the window right after is fully free
    st, b3, _ = avail(U1["token"], lfhub_unit, "S", to, window(180)[0])
    assert b3["free"] == 2, b3


def test_validation_errors():
    HUB.create_unit("res-v", lockers=[("A01", "S")])
    frm, to = window()
    tok = U1["token"]
    cases = [
        ({"unit": "res-v", "size": "X", "from": frm, "to": to}, "size"),
        ({"unit": "res-v", "size": "S", "from": "yesterday", "to": to}, "from"),
        ({"unit": "res-v", "size": "S", "from": frm}, "to"),
        ({"unit": "Bad Name", "size": "S", "from": frm, "to": to}, "unit"),
        ({"unit": "res-v", "size": "S", "from": to, "to": frm}, "to"),
        ({"unit": "res-v", "size": "S", "from": frm, "to": window(60 * 24 * 31)[1]}, "to"),
        ({"unit": "res-v", "size": "S", "from": window(-120)[0], "to": to}, "from"),
    ]
    for body, field in cases:
        st, b, _ = HUB.post("/v1/reservations", body, token=tok)
        assert st == 400, (body, st, b)
        assert field in b["error"]["message"], (field, b)
    st, b, _ = HUB.post("/v1/reservations", "{not json", token=tok)
    assert st == 400, (st, b)
    st, b, _ = reserve(tok, "no-such-unit")
    assert st == 404, (st, b)
    st, b, _ = avail(tok, "res-v", "Q", frm, to)
    assert st == 400 and "size" in b["error"]["message"], b
    st, b, _ = HUB.get("/v1/availability?unit=res-v&size=S", token=tok)
    assert st == 400 and "from" in b["error"]["message"], b
    # auth
    st, _, _ = HUB.post("/v1/reservations", {"unit": "res-v"})
    assert st == 401
    st, _, _ = HUB.post("/v1/reservations", {"unit": "res-v"}, token="nope")
    assert st == 401
    st, b, _ = reserve(tok, "res-v", key="k" * 200)
    assert st == 400 and "Idempotency-Key" in b["error"]["message"], b
    st, b, _ = HUB.post("/v1/reservations/not-a-uuid/confirm", token=tok)
    assert st == 404, (st, b)


def test_unavailable_and_lifecycle():
    HUB.create_unit("res-l", lockers=[("A01", "M")])
    tok = U1["token"]
    frm, to = window()
    st, r, _ = reserve(tok, "res-l", "M", frm, to)
    assert st == 201, r
    st, b, _ = reserve(tok, "res-l", "M", frm, to)
    assert st == 409 and b["error"]["code"] == "unavailable", (st, b)
    st, c, _ = HUB.post("/v1/reservations/%s/confirm" % r["id"], token=tok)
    assert st == 200, (st, c)
    assert c["status"] == "confirmed" and c["code"].startswith("LF1") and c["position"] > 0, c
    # confirm again: idempotent, same code
    st, c2, _ = HUB.post("/v1/reservations/%s/confirm" % r["id"], token=tok)
    assert st == 200 and c2["code"] == c["code"], c2
    # GET with read-your-writes
    st, g, _ = HUB.get("/v1/reservations/%s?min_position=%d" % (r["id"], c["position"]),
                       token=tok)
    assert st == 200, (st, g)
    assert g["status"] == "confirmed" and g["locker"] == "A01" and g["unit"] == "res-l", g
    assert g["from"] == frm and g["to"] == to and g["delivery"] in ("pending", "delivered"), g
    assert g["code"] == c["code"], g
    st, x, _ = HUB.post("/v1/reservations/%s/cancel" % r["id"], token=tok)
    assert st == 200 and x["status"] == "cancelled" and x["position"] > c["position"], x
    st, x2, _ = HUB.post("/v1/reservations/%s/cancel" % r["id"], token=tok)
    assert st == 409 and x2["error"]["code"] == "already_cancelled", x2
    st, c3, _ = HUB.post("/v1/reservations/%s/confirm" % r["id"], token=tok)
    assert st == 409 and c3["error"]["code"] == "reservation_cancelled", c3
    st, g, _ = HUB.get("/v1/reservations/%s?min_position=%d" % (r["id"], x["position"]),
                       token=tok)
    assert g["status"] == "cancelled" and "code" not in g, g
    # the locker is free again
    st, r2, _ = reserve(tok, "res-l", "M", frm, to)
    assert st == 201, r2
    # the list of mine
    st, lst, _ = HUB.get("/v1/reservations?min_position=%d" % r2["position"], token=tok)
    assert st == 200, lst
    ids = [e["id"] for e in lst["reservations"]]
    assert r["id"] in ids and r2["id"] in ids, ids
    # admin reads too
    st, g, _ = HUB.get("/v1/reservations/%s?min_position=%d" % (r2["id"], r2["position"]),
                       token=HUB.admin_token)
    assert st == 200 and g["id"] == r2["id"], g
    st, b, _ = HUB.get("/v1/reservations/%s?min_position=abc" % r2["id"], token=tok)
    assert st == 400, (st, b)


def test_other_user_invisible():
    HUB.create_unit("res-o", lockers=[("A01", "S")])
    st, r, _ = reserve(U1["token"], "res-o")
    assert st == 201
    st, b, _ = HUB.get("/v1/reservations/%s?min_position=%d" % (r["id"], r["position"]),
                       token=U2["token"])
    assert st == 404, (st, b)
    st, b, _ = HUB.post("/v1/reservations/%s/cancel" % r["id"], token=U2["token"])
    assert st == 404, (st, b)
    st, b, _ = HUB.post("/v1/reservations/%s/confirm" % r["id"], token=U2["token"])
    assert st == 404, (st, b)
    st, lst, _ = HUB.get("/v1/reservations?min_position=%d" % r["position"], token=U2["token"])
    assert r["id"] not in [e["id"] for e in lst["reservations"]]
    # still held for its owner
    st, g, _ = HUB.get("/v1/reservations/%s" % r["id"], token=U1["token"])
    assert st == 200 and g["status"] == "held", g


def test_idempotency_key():
    HUB.create_unit("res-i", lockers=[("A01", "S"), ("A02", "S")])
    frm, to = window()
    st, a, _ = reserve(U1["token"], "res-i", "S", frm, to, key="order-42")
    st2, b, _ = reserve(U1["token"], "res-i", "S", frm, to, key="order-42")
    assert st == 201 and st2 == 201, (a, b)
    assert a["id"] == b["id"] and a["locker"] == b["locker"], (a, b)
    st, av, _ = avail(U1["token"], "res-i", "S", frm, to)
    assert av["free"] == 1, av
    # another user with the same key gets their own reservation
    st, c, _ = reserve(U2["token"], "res-i", "S", frm, to, key="order-42")
    assert st == 201 and c["id"] != a["id"], c
    # same key, different request -> 409
    st, d, _ = reserve(U1["token"], "res-i", "M", frm, to, key="order-42")
    assert st == 409, (st, d)


def test_race_last_locker():
    for rnd in range(5):
        unit = "race-%d" % rnd
        HUB.create_unit(unit, lockers=[("A01", "L")])
        frm, to = window()
        results = []
        lock = threading.Lock()
        start = threading.Barrier(64)

        def worker():
            start.wait()
            st, b, _ = reserve(U1["token"], unit, "L", frm, to)
            with lock:
                results.append((st, b))

        ts = [threading.Thread(target=worker) for _ in range(64)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        codes = sorted(st for st, _ in results)
        assert codes.count(201) == 1 and codes.count(409) == 63, codes
        for st, b in results:
            if st == 409:
                assert b["error"]["code"] == "unavailable", b
        ev = HUB.events(stream="bookings-" + unit)
        held = [e for e in ev["events"] if e["type"] == "ReservationHeld"]
        assert len(held) == 1, held


def test_hold_expires_by_itself():
    # this hub runs with --hold-seconds 1
    HUB.create_unit("res-x", lockers=[("A01", "S")])
    st, r, _ = reserve(U1["token"], "res-x")
    assert st == 201

    def expired():
        ev = HUB.events(stream="bookings-res-x")
        return [e for e in ev["events"] if e["type"] == "ReservationExpired"]

    got = HUB.wait_for(expired, timeout=20, what="ReservationExpired")
    assert got[0]["data"]["reservation_id"] == r["id"], got
    st, c, _ = HUB.post("/v1/reservations/%s/confirm" % r["id"], token=U1["token"])
    assert st == 409 and c["error"]["code"] == "hold_expired", (st, c)
    st, x, _ = HUB.post("/v1/reservations/%s/cancel" % r["id"], token=U1["token"])
    assert st == 409 and x["error"]["code"] == "reservation_expired", (st, x)
    st, g, _ = HUB.get("/v1/reservations/%s?min_position=%d" % (r["id"], got[0]["position"]),
                       token=U1["token"])
    assert g["status"] == "expired", g


def test_metrics():
    st, text, _ = HUB.get("/metrics")
    assert st == 200
    for action in ("hold", "confirm", "cancel"):
        assert 'lockerfleet_reservations_total{action="%s"}' % action in text, text[:2000]


def test_metrics_expire():
    st, text, _ = HUB.get("/metrics")
    assert 'lockerfleet_reservations_total{action="expire"}' in text, text[:2000]


def push_rental(unit_tok, unit, seq, rental_id, locker, frm, to):
    ev = {"seq": seq, "id": lfhub_uuid(), "type": "RentalStarted",
          "time": iso(datetime.datetime.utcnow()),
          "data": {"rental_id": rental_id, "locker": locker, "size": "S", "from": frm, "to": to,
                   "offline": True}}
    return HUB.post("/v1/units/%s/events" % unit, {"events": [ev]}, token=unit_tok)


def lfhub_uuid():
    import uuid
    return str(uuid.uuid4())


def test_conflict_reassign_then_cancel():
    u = HUB.create_unit("res-c", lockers=[("A01", "S"), ("A02", "S")])
    tok = U1["token"]
    frm, to = window(60, 60)
    st, r1, _ = reserve(tok, "res-c", "S", frm, to)
    st, c1, _ = HUB.post("/v1/reservations/%s/confirm" % r1["id"], token=tok)
    assert r1["locker"] == "A01"
    st, b, _ = push_rental(u["token"], "res-c", 1, "rent-1", "A01", window(30)[0], window(120)[0])
    assert st == 200, (st, b)

    def events_of(t):
        ev = HUB.events(stream="bookings-res-c")
        return [e for e in ev["events"] if e["type"] == t]

    ra = HUB.wait_for(lambda: events_of("ReservationReassigned"), timeout=20,
                      what="ReservationReassigned")
    assert ra[0]["data"]["to_locker"] == "A02" and ra[0]["data"]["reservation_id"] == r1["id"]
    cd = events_of("ConflictDetected")
    assert cd and cd[0]["data"]["resolution"] == "reassigned", cd
    st, g, _ = HUB.get("/v1/reservations/%s?min_position=%d" % (r1["id"], cd[-1]["position"]),
                       token=tok)
    assert g["locker"] == "A02" and g["status"] == "confirmed" and g["reassigned"] == 1, g
    # a second rental on A02 overlapping: nowhere to go -> cancelled + refund
    st, b, _ = push_rental(u["token"], "res-c", 2, "rent-2", "A02", frm, to)
    assert st == 200, (st, b)
    rf = HUB.wait_for(lambda: events_of("RefundIssued"), timeout=20, what="RefundIssued")
    assert rf[0]["data"]["reason"] == "conflict" and rf[0]["data"]["amount_cents"] > 0, rf
    cc = [e for e in events_of("ReservationCancelled") if e["data"]["reason"] == "conflict"]
    assert len(cc) == 1, cc
    st, g, _ = HUB.get("/v1/reservations/%s?min_position=%d" % (r1["id"], rf[0]["position"]),
                       token=tok)
    assert g["status"] == "cancelled" and g["reason"] == "conflict", g


def test_restart_keeps_state():
    # idempotent conflict processing and the index survive a restart
    frm, to = window()
    HUB.create_unit("res-r", lockers=[("A01", "S")])
    st, r, _ = reserve(U1["token"], "res-r", "S", frm, to, key="restart-key")
    assert st == 201
    n_before = len(HUB.events(stream="bookings-res-c")["events"])
    HUB.restart()
    st, g, _ = HUB.get("/v1/reservations/%s?min_position=%d" % (r["id"], r["position"]),
                       token=U1["token"])
    assert st == 200, (st, g)
    st, again, _ = reserve(U1["token"], "res-r", "S", frm, to, key="restart-key")
    assert st == 201 and again["id"] == r["id"], again
    st, c, _ = HUB.post("/v1/reservations/%s/cancel" % r["id"], token=U1["token"])
    assert st == 200, c
    time.sleep(1.0)
    assert len(HUB.events(stream="bookings-res-c")["events"]) == n_before


def main():
    global HUB, U1, U2
    with lfhub.Hub(extra_args=["--hold-seconds", "600"]) as hub:
        HUB = hub
        U1 = hub.create_user("alice")
        U2 = hub.create_user("bob")
        tests = [test_availability_and_reserve, test_validation_errors,
                 test_unavailable_and_lifecycle, test_other_user_invisible,
                 test_idempotency_key, test_race_last_locker, test_metrics,
                 test_conflict_reassign_then_cancel, test_restart_keeps_state]
        failed = run(tests)
    with lfhub.Hub(extra_args=["--hold-seconds", "1"]) as hub:
        HUB = hub
        U1 = hub.create_user("carol")
        failed += run([test_hold_expires_by_itself, test_metrics_expire])
    print("FAILED %d" % failed if failed else "all passed")
    sys.exit(1 if failed else 0)


def run(tests):
    failed = 0
    for t in tests:
        t0 = time.time()
        try:
            t()
            print("ok   %s (%.1fs)" % (t.__name__, time.time() - t0), flush=True)
        except Exception:
            import traceback
            failed += 1
            print("FAIL %s" % t.__name__, flush=True)
            traceback.print_exc()
    return failed


if __name__ == "__main__":
    main()
