"""End-to-end: `lockerfleet unit` alone (no hub). Ping, config idempotency,
events paging, walk-up rent + pickup, reservations with offline-verified
codes, hub credential (401), pruning after the hub's ack, restart on the
same data (state from snapshot + remaining events), clean SIGTERM."""
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402
import lfunit  # noqa: E402

HT = "hub-credential-for-e2e-0123456789"
KEY = "11" * 32
ARGS = ["--hub-token", HT, "--uplink", "pull", "--booking-key", KEY,
        "--lockers", "A01:S,A02:S,A03:M,A04:L"]


def all_events(u, after=0, limit=3):
    out = []
    while True:
        st, b, _ = u.get("/events?after=%d&limit=%d" % (after, limit), token=HT)
        assert st == 200, (st, b)
        assert len(b["events"]) <= limit
        if not b["events"]:
            return out, b["head"]
        for e in b["events"]:
            assert e["seq"] == after + 1, (e, after)  # contiguous, in order
            assert set(e) == {"seq", "id", "type", "time", "data"}, e
            after = e["seq"]
            out.append(e)


def test_agent():
    with lfunit.Unit("unit-e2e-1", ARGS) as u:
        # ping: no auth needed
        st, b, _ = u.get("/ping")
        assert st == 200 and b["name"] == "unit-e2e-1", b
        assert b["seq_head"] == 1 and b["config_version"] == 0, b  # UnitProvisioned
        assert b["time"].endswith("Z")

        # hub credential
        for tok in (None, "wrong", HT + "x"):
            st, b, _ = u.put("/config", {"version": 1, "config": {}}, token=tok)
            assert st == 401 and b["error"]["code"] == "unauthorized", (tok, st, b)
            st, b, _ = u.get("/events?after=0", token=tok)
            assert st == 401, (tok, st)
        # bad input names the field
        st, b, _ = u.put("/config", {"version": "2", "config": {}}, token=HT)
        assert st == 400 and "version" in b["error"]["message"], b
        st, b, _ = u.put("/config", {"version": 2, "config": []}, token=HT)
        assert st == 400 and "config" in b["error"]["message"], b
        st, b, _ = u.put("/config", "{not json", token=HT)
        assert st == 400 and b["error"]["code"] == "invalid_json", b

        # config: applied once, older and equal versions ignored
        st, b, _ = u.put("/config", {"version": 2, "config": {"currency": "CHF"}}, token=HT)
        assert st == 200 and b["applied_version"] == 2, b
        head = u.get("/ping")[1]["seq_head"]
        for v in (2, 1):
            st, b, _ = u.put("/config", {"version": v, "config": {"x": v}}, token=HT)
            assert st == 200 and b["applied_version"] == 2, b
        assert u.get("/ping")[1]["seq_head"] == head  # no new event
        assert u.get("/ping")[1]["config_version"] == 2

        # walk-up rental + pickup by code
        st, r, _ = u.post("/screen/rent", {"size": "S", "minutes": 90, "payment": "ok"})
        assert st == 200, (st, r)
        assert r["locker"] in ("A01", "A02") and len(r["code"]) == 8, r
        st, b, _ = u.post("/screen/pickup", {"code": "00000000" if r["code"] != "00000000" else "1"})
        assert st == 403, b
        st, b, _ = u.post("/screen/pickup", {"code": r["code"]})
        assert st == 200 and b["locker"] == r["locker"] and b["kind"] == "rental", b
        st, b, _ = u.post("/screen/pickup", {"code": r["code"]})
        assert st == 403, b  # the rental ended
        st, b, _ = u.post("/hardware/door-close", {"locker": r["locker"]})
        assert st == 200 and b["door"] == "closed", b

        # payment fails -> 402, no rental
        st, b, _ = u.post("/screen/rent", {"size": "M", "minutes": 30, "payment": "fail"})
        assert st == 402 and b["error"]["code"] == "payment_failed", b
        # bad inputs
        for body, field in (({"size": "X", "minutes": 30}, "size"),
                            ({"size": "S", "minutes": 0}, "minutes"),
                            ({"size": "S", "minutes": 5, "payment": "maybe"}, "payment")):
            st, b, _ = u.post("/screen/rent", body)
            assert st == 400 and field in b["error"]["message"], (body, b)
        # the only L locker, twice
        st, r_l, _ = u.post("/screen/rent", {"size": "L", "minutes": 60})
        assert st == 200 and r_l["locker"] == "A04", r_l
        st, b, _ = u.post("/screen/rent", {"size": "L", "minutes": 60})
        assert st == 409 and b["error"]["code"] == "no_locker_available", b

        # reservations from the hub
        now = int(time.time() * 1000)
        rid = str(uuid.uuid4())
        t1 = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now / 1000 - 60))
        t2 = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now / 1000 + 3600))
        resv = {"id": rid, "locker": "A03", "from": t1, "to": t2}
        st, b, _ = u.post("/reservations", resv, token=HT)
        assert st == 200 and b["status"] == "accepted", b
        st, b, _ = u.post("/reservations", resv, token=HT)  # idempotent
        assert st == 200, b
        st, b, _ = u.post("/reservations", dict(resv, id=str(uuid.uuid4())), token=HT)
        assert st == 409 and b["error"]["code"] == "locker_in_use", b
        st, b, _ = u.post("/reservations", dict(resv, locker="Z99", id=str(uuid.uuid4())), token=HT)
        assert st == 409, b
        st, b, _ = u.post("/reservations", dict(resv, id="nope"), token=HT)
        assert st == 400 and "id" in b["error"]["message"], b
        # M walk-up must avoid A03 (reserved now)
        st, b, _ = u.post("/screen/rent", {"size": "M", "minutes": 30})
        assert st == 409, b
        # booking code verified offline
        from_ms, to_ms = now - 60000, now + 3600000
        code = lfunit.make_code(KEY, rid, "A03", from_ms, to_ms)
        st, b, _ = u.post("/screen/pickup", {"code": code})
        assert st == 200 and b["locker"] == "A03" and b["kind"] == "reservation", b
        bad = lfunit.make_code("22" * 32, rid, "A03", from_ms, to_ms)
        st, b, _ = u.post("/screen/pickup", {"code": bad})
        assert st == 403, b
        late = lfunit.make_code(KEY, rid, "A03", now + 3600000, now + 7200000)
        st, b, _ = u.post("/screen/pickup", {"code": late})
        assert st == 403 and b["error"]["code"] == "outside_window", b
        # a reservation the unit rejected (its locker A03 is in use here):
        # its code must not open A03, which holds someone else's things
        rid3 = str(uuid.uuid4())
        st, b, _ = u.post("/reservations", dict(resv, id=rid3), token=HT)
        assert st == 409 and b["error"]["code"] == "locker_in_use", b
        code3 = lfunit.make_code(KEY, rid3, "A03", from_ms, to_ms)
        st, b, _ = u.post("/screen/pickup", {"code": code3})
        assert st == 403 and "rejected" in b["error"]["message"], b
        # a reservation the unit never saw, cancelled: its code no longer opens
        rid2 = str(uuid.uuid4())
        code2 = lfunit.make_code(KEY, rid2, "A02", from_ms, to_ms)
        st, b, _ = u.post("/reservations/%s/cancel" % rid2, None, token=HT)
        assert st == 200 and b["status"] == "cancelled", b
        st, b, _ = u.post("/screen/pickup", {"code": code2})
        assert st == 403, b

        st, b, _ = u.post("/hardware/error", {"component": "door-controller", "message": "jam",
                                              "locker": "A01"})
        assert st == 200, b
        st, b, _ = u.post("/hardware/door-open", {"locker": "nope"})
        assert st == 404, b

        # events: paging, order, types
        evs, head = all_events(u)
        assert len(evs) == head and head == u.get("/ping")[1]["seq_head"]
        types = [e["type"] for e in evs]
        assert types[0] == "UnitProvisioned"
        assert types.count("ConfigApplied") == 1
        i = types.index("PaymentStarted")
        assert types[i:i + 4] == ["PaymentStarted", "PaymentSucceeded", "RentalStarted",
                                  "DoorOpened"], types
        assert "PaymentFailed" in types and "RentalEnded" in types
        assert "ReservationAccepted" in types and "ReservationRejected" in types
        assert "PickupOpened" in types and "PickupRejected" in types
        assert "ReservationCancelledLocally" in types and "HardwareError" in types
        assert len({e["id"] for e in evs}) == len(evs)

        # the hub acknowledges everything (pull: after=head) -> pruned
        st, b, _ = u.get("/events?after=%d" % head, token=HT)
        assert st == 200 and b["events"] == [] and b["head"] == head
        lfunit.wait_for(lambda: u.get("/status", token=HT)[1]["pruned_seq"] == head,
                        timeout=20, what="pruning")
        st, b, _ = u.get("/events?after=0", token=HT)
        assert st == 410 and b["error"]["code"] == "pruned", b
        st, b, _ = u.get("/events?after=%d" % head, token=HT)
        assert st == 200 and b["events"] == []

        # restart on the same data: state from the snapshot, nothing lost
        assert u.terminate() == 0
        u.start()
        st, b, _ = u.get("/ping")
        assert b["seq_head"] == head and b["config_version"] == 2, b
        st, b, _ = u.post("/screen/rent", {"size": "L", "minutes": 60})
        assert st == 409, b  # A04 still rented
        st, b, _ = u.post("/screen/pickup", {"code": r_l["code"]})
        assert st == 200 and b["locker"] == "A04", b
        st, b, _ = u.post("/screen/pickup", {"code": code2})
        assert st == 403, b  # the cancellation survived the snapshot
        st, b, _ = u.get("/events?after=%d" % head, token=HT)
        assert [e["seq"] for e in b["events"]] == list(range(head + 1, b["head"] + 1)), b
        assert u.terminate() == 0


if __name__ == "__main__":
    lfhub.run_tests([test_agent])
