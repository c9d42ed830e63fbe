"""test_fleet_delivery.py — reservations and config delivered by a real hub
to a real `lockerfleet unit`, the pull worker against a pull-mode unit, and
pending deliveries across a hub restart.

- a confirmed reservation reaches the unit (ReservationDelivered accepted,
  GET /v1/reservations/{id} delivery "delivered"); with the unit cut off
  from the hub, its code still opens the locker (verified offline), even
  for a reservation that never reached it; a cancellation is delivered;
- the unit rejects a reservation (locker in use by a walk-up rental the hub
  does not know of): the booking side moves it to another locker, the
  fleet re-delivers the same id with the new locker, the unit accepts it as
  an update; with no other locker free, it is cancelled (unit_rejected);
- a pull-mode unit: every event stored once, in order, via pull; a pusher
  racing the pull worker with the same events stores nothing twice;
- a queued config and a pending reservation survive a hub kill -9: nothing
  is attempted while the unit is offline, both are delivered once when it
  comes online.
"""
import json
import os
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402
import lfunit  # noqa: E402

FAST = ["--ping-interval", "0.3", "--ping-timeout", "1", "--retry-schedule", "1,2",
        "--pull-interval", "0.5"]


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def window(minutes=60):
    now = datetime.now(timezone.utc)
    return iso(now - timedelta(seconds=5)), iso(now + timedelta(minutes=minutes))


def stream(hub, name):
    out, after = [], 0
    while True:
        b = hub.events(after=after, limit=1000, stream=name)
        out += b["events"]
        if len(b["events"]) < 1000:
            return out
        after = b["events"][-1]["position"]


def delivered(hub, unit, rid, action="reserve"):
    return [e["data"] for e in stream(hub, "unit-" + unit)
            if e["type"] == "ReservationDelivered" and e["data"]["reservation_id"] == rid
            and e["data"]["action"] == action]


def presence(hub, unit):
    """The unit's last presence transition: "online", "offline" or None."""
    last = None
    for e in stream(hub, "unit-" + unit):
        if e["type"] in ("UnitCameOnline", "UnitWentOffline"):
            last = "online" if e["type"] == "UnitCameOnline" else "offline"
    return last


def attempts(hub, unit, typ):
    return [e for e in stream(hub, "unit-" + unit) if e["type"] == typ]


class Fleet:
    """A hub-registered unit with its own port and data dir."""

    def __init__(self, hub, name, lockers, presence="poll", uplink="push"):
        self.hub, self.name = hub, name
        self.port = lfhub.free_port()
        self.lockers = lockers
        self.reg = hub.create_unit(name, lockers=lockers, presence=presence,
                                   url="http://127.0.0.1:%d" % self.port, uplink=uplink)
        assert self.reg.get("hub_token") and self.reg.get("booking_key"), self.reg
        self.data = os.path.join(hub.data_dir, "unit-" + name)
        os.makedirs(self.data, exist_ok=True)
        self.proc = None

    def start(self, with_hub=True, uplink="push"):
        args = ["unit", "--name", self.name, "--listen", "127.0.0.1:%d" % self.port,
                "--data", os.path.join(self.data, "db"), "--log-level", "warn",
                "--hub-token", self.reg["hub_token"], "--booking-key", self.reg["booking_key"],
                "--lockers", ",".join("%s:%s" % l for l in self.lockers),
                "--uplink", uplink, "--push-interval", "0.3"]
        if with_hub:
            args += ["--hub", self.hub.url, "--token", self.reg["token"]]
        self.proc = lfunit.Proc(args, data_dir=self.data, name="unit-" + self.name).start()
        return self.proc

    def kill(self):
        if self.proc:
            self.proc.kill()
            self.proc = None

    def unit_events(self):
        st, b, _ = self.proc.get("/events?after=0&limit=1000", token=self.reg["hub_token"])
        assert st == 200, (st, b)
        return b["events"]


def reserve(hub, user, unit, size="S", confirm=True):
    frm, to = window()
    st, b, _ = hub.post("/v1/reservations", {"unit": unit, "size": size, "from": frm, "to": to},
                        token=user["token"])
    assert st == 201, (st, b)
    rid = b["id"]
    if not confirm:
        return rid, b["locker"], None
    st, c, _ = hub.post("/v1/reservations/%s/confirm" % rid, token=user["token"])
    assert st == 200 and c["code"], (st, c)
    return rid, b["locker"], c["code"]


def get_resv(hub, user, rid):
    st, b, _ = hub.get("/v1/reservations/" + rid, token=user["token"])
    assert st == 200, (st, b)
    return b


def wait_resv(hub, user, rid, pred, what, timeout=20):
    # the reservations projection follows the log: a reservation just made
    # may not be there yet (404) when read without ?min_position
    def look():
        st, b, _ = hub.get("/v1/reservations/" + rid, token=user["token"])
        assert st in (200, 404), (st, b)
        return b if st == 200 and pred(b) else None
    return hub.wait_for(look, timeout, what=what)


def test_reservation_delivered_then_offline_pickup_and_cancel():
    with lfhub.Hub(FAST) as hub:
        user = hub.create_user("alice")
        f = Fleet(hub, "dl-1", [("A01", "S"), ("A02", "S"), ("A03", "M")])
        f.start()
        try:
            hub.wait_for(lambda: attempts(hub, "dl-1", "UnitCameOnline"), 20, what="online")
            rid, locker, code = reserve(hub, user, "dl-1")
            d = hub.wait_for(lambda: delivered(hub, "dl-1", rid), 20, what="delivered")
            assert [(x["result"], x["locker"]) for x in d] == [("accepted", locker)], d
            wait_resv(hub, user, rid, lambda r: r["delivery"] == "delivered", "delivery state")
            # the unit folded it: an accepted reservation in its own log
            acc = [e for e in f.unit_events() if e["type"] == "ReservationAccepted"]
            assert [e["data"]["reservation_id"] for e in acc] == [rid], acc

            # the unit goes offline; a second reservation never reaches it
            f.kill()
            hub.wait_for(lambda: presence(hub, "dl-1") == "offline", 20, what="offline")
            rid2, locker2, code2 = reserve(hub, user, "dl-1")
            assert locker2 != locker
            time.sleep(3)  # retry periods pass: nothing is attempted while offline
            assert not [e for e in attempts(hub, "dl-1", "ReservationDeliveryAttempted")
                        if e["data"]["reservation_id"] == rid2]

            # the unit restarts without any hub: both codes open their lockers
            f.proc = None
            p = f.start(with_hub=False)
            # the hub may deliver rid2 as soon as it pings the unit: check the
            # offline verification first, for the very first request
            st, b, _ = p.post("/screen/pickup", {"code": code2})
            assert st == 200 and b["locker"] == locker2, (st, b)
            st, b, _ = p.post("/screen/pickup", {"code": code})
            assert st == 200 and b["locker"] == locker, (st, b)
            st, b, _ = p.post("/screen/pickup", {"code": code[:-2] + ("AA" if code[-2:] != "AA"
                                                                      else "BB")})
            assert st == 403, (st, b)
            opened = [e["data"] for e in f.unit_events() if e["type"] == "PickupOpened"]
            assert [o["reservation_id"] for o in opened] == [rid2, rid], opened

            # the hub reaches it again (pings): the pending reservation is delivered
            hub.wait_for(lambda: delivered(hub, "dl-1", rid2), 20, what="rid2 delivered")
            assert delivered(hub, "dl-1", rid2)[0]["result"] == "accepted"

            # a cancellation is delivered, and the code stops working
            st, b, _ = hub.post("/v1/reservations/%s/cancel" % rid, token=user["token"])
            assert st == 200, (st, b)
            c = hub.wait_for(lambda: delivered(hub, "dl-1", rid, "cancel"), 20,
                             what="cancel delivered")
            assert c[0]["result"] == "accepted", c
            st, b, _ = p.post("/screen/pickup", {"code": code})
            assert st == 403, (st, b)
            assert [e["data"]["reservation_id"] for e in f.unit_events()
                    if e["type"] == "ReservationCancelledLocally"] == [rid]
            # one delivery per action, no repeats
            time.sleep(1.5)
            assert len(delivered(hub, "dl-1", rid)) == 1
            assert len(delivered(hub, "dl-1", rid, "cancel")) == 1
            assert len(delivered(hub, "dl-1", rid2)) == 1
        finally:
            f.kill()


def test_rejection_reassigns_then_cancels():
    with lfhub.Hub(FAST) as hub:
        user = hub.create_user("bob")
        f = Fleet(hub, "rj-1", [("A01", "S"), ("A02", "S"), ("B01", "M")])
        # no uplink: the walk-up rentals stay on the unit, the hub never hears of them
        p = f.start(with_hub=False)
        st, r1, _ = p.post("/screen/rent", {"size": "S", "minutes": 120, "payment": "ok"})
        assert st in (200, 201) and r1["locker"] == "A01", (st, r1)
        st, r2, _ = p.post("/screen/rent", {"size": "M", "minutes": 120, "payment": "ok"})
        assert st in (200, 201) and r2["locker"] == "B01", (st, r2)
        hub.wait_for(lambda: attempts(hub, "rj-1", "UnitCameOnline"), 20, what="online")

        # the hub books A01 (it knows of no rental); the unit says locker_in_use
        rid, locker, code = reserve(hub, user, "rj-1")
        assert locker == "A01"
        r = wait_resv(hub, user, rid, lambda r: r["locker"] == "A02" and
                      r["delivery"] == "delivered", "reassigned and re-delivered")
        assert r["status"] == "confirmed" and r["reassigned"] == 1, r
        d = delivered(hub, "rj-1", rid)
        assert [(x["result"], x["locker"]) for x in d] == [("rejected", "A01"),
                                                           ("accepted", "A02")], d
        assert d[0]["reason"] == "locker_in_use", d
        moves = [e["data"] for e in stream(hub, "bookings-rj-1")
                 if e["type"] == "ReservationReassigned"]
        assert moves == [{"reservation_id": rid, "from_locker": "A01", "to_locker": "A02",
                          "reason": "unit_rejected"}], moves
        # the unit holds the reservation (same id) on A02 now; the new code opens A02
        ue = [e["data"] for e in f.unit_events() if e["type"].startswith("Reservation")]
        assert [(x["reservation_id"], x.get("locker")) for x in ue] == [(rid, "A01"),
                                                                        (rid, "A02")], ue
        st, b, _ = hub.get("/v1/reservations/" + rid, token=user["token"])
        st, o, _ = p.post("/screen/pickup", {"code": b["code"]})
        assert st == 200 and o["locker"] == "A02", (st, o)

        # the hub keeps A01 blocked for that window now: no S locker left
        frm, to = window()
        st, b, _ = hub.post("/v1/reservations", {"unit": "rj-1", "size": "S", "from": frm,
                                                 "to": to}, token=user["token"])
        assert st == 409 and b["error"]["code"] == "unavailable", (st, b)
        # the only M locker is in use on the unit: cancelled with unit_rejected
        rid2, locker2, _ = reserve(hub, user, "rj-1", size="M")
        assert locker2 == "B01"
        r = wait_resv(hub, user, rid2, lambda r: r["status"] == "cancelled", "cancelled")
        assert r["reason"] == "unit_rejected" and r["delivery"] == "rejected", r
        bk = [e for e in stream(hub, "bookings-rj-1")
              if e["data"].get("reservation_id") == rid2]
        assert [e["type"] for e in bk] == ["ReservationHeld", "ReservationConfirmed",
                                           "ReservationCancelled", "RefundIssued"], bk
        # a rejected reservation is not "cancelled" on the unit: nothing more to deliver
        time.sleep(2)
        assert delivered(hub, "rj-1", rid2, "cancel") == []
        assert len(delivered(hub, "rj-1", rid2)) == 1
        f.kill()


def test_pull_mode_unit_and_push_racing_pull():
    with lfhub.Hub(FAST) as hub:
        f = Fleet(hub, "pl-1", [("A01", "S"), ("A02", "M"), ("A03", "L")], uplink="pull")
        p = f.start(with_hub=True, uplink="pull")
        try:
            hub.wait_for(lambda: attempts(hub, "pl-1", "UnitCameOnline"), 20, what="online")
            for i in range(20):
                st, r, _ = p.post("/screen/rent", {"size": "SML"[i % 3], "minutes": 5,
                                                   "payment": "fail" if i % 4 == 3 else "ok"})
                assert st in (200, 201, 402, 409, 503), (st, r)
                if st in (200, 201):
                    p.post("/hardware/door-close", {"locker": r["locker"]})
                    st, _, _ = p.post("/screen/pickup", {"code": r["code"]})
                    assert st == 200
                    p.post("/hardware/door-close", {"locker": r["locker"]})
            local = f.unit_events()
            n = local[-1]["seq"]
            assert n >= 40, n

            def caught_up():
                got = stream(hub, "unitlog-pl-1")
                return got if len(got) >= n else None
            got = hub.wait_for(caught_up, 30, what="pulled")
            assert [e["version"] for e in got] == list(range(1, len(got) + 1))
            assert [e["id"] for e in got[:n]] == [e["id"] for e in local]
            assert all(e["meta"]["via"] == "pull" for e in got), {e["meta"]["via"] for e in got}

            # a pusher races the pull worker with the unit's own events
            stop = threading.Event()
            errors = []

            def rent_loop():
                while not stop.is_set():
                    p.post("/screen/rent", {"size": "S", "minutes": 1, "payment": "fail"})
                    time.sleep(0.01)

            def push_loop():
                while not stop.is_set():
                    ev = [{k: e[k] for k in ("seq", "id", "type", "time", "data")}
                          for e in f.unit_events()]
                    for i in range(0, len(ev), 50):
                        st, b, _ = hub.post("/v1/units/pl-1/events", {"events": ev[i:i + 50]},
                                            token=f.reg["token"])
                        if st not in (200, 409, 429):
                            errors.append((st, b))
            ths = [threading.Thread(target=rent_loop), threading.Thread(target=push_loop)]
            for t in ths:
                t.start()
            time.sleep(6)
            stop.set()
            for t in ths:
                t.join(30)
            assert not errors, errors[:3]
            local = f.unit_events()
            n = local[-1]["seq"]
            got = hub.wait_for(caught_up, 30, what="caught up after the race")
            assert len(got) == n, (len(got), n)
            assert [e["version"] for e in got] == list(range(1, n + 1))
            assert [e["id"] for e in got] == [e["id"] for e in local]
            vias = {e["meta"]["via"] for e in got}
            assert vias == {"push", "pull"}, vias
        finally:
            f.kill()


def test_pending_deliveries_survive_hub_restart():
    with lfhub.Hub(FAST) as hub:
        user = hub.create_user("carol")
        f = Fleet(hub, "rs-1", [("A01", "S"), ("A02", "M")])
        hub.wait_for(lambda: attempts(hub, "rs-1", "UnitWentOffline"), 20, what="offline")
        st, b, _ = hub.admin("PUT", "/v1/units/rs-1/config?mode=queued", {"config": {"p": 7}})
        assert st == 202, (st, b)
        rid, locker, code = reserve(hub, user, "rs-1")
        time.sleep(1)
        hub.kill()
        hub.start()
        time.sleep(3)  # pings fail, retry periods pass: nothing attempted while offline
        assert attempts(hub, "rs-1", "ReservationDeliveryAttempted") == []
        assert attempts(hub, "rs-1", "ConfigDeliveryAttempted") == []
        st, b, _ = hub.admin("GET", "/v1/units/rs-1/config")
        assert b["state"] == "pending" and b["desired_version"] == 1, b
        assert get_resv(hub, user, rid)["delivery"] == "pending"

        t0 = time.time()
        f.start(with_hub=True)
        try:
            hub.wait_for(lambda: delivered(hub, "rs-1", rid), 15, what="reservation delivered")
            hub.wait_for(lambda: hub.admin("GET", "/v1/units/rs-1/config")[1]["state"] ==
                         "applied", 15, what="config applied")
            assert time.time() - t0 < 12
            # a second restart with everything delivered: nothing is sent again
            hub.kill()
            hub.start()
            time.sleep(3)
            assert [d["result"] for d in delivered(hub, "rs-1", rid)] == ["accepted"]
            assert len(attempts(hub, "rs-1", "ReservationDeliveryAttempted")) == 1
            assert len(attempts(hub, "rs-1", "ConfigApplied")) == 1
            assert len(attempts(hub, "rs-1", "ConfigDeliveryAttempted")) == 1
            st, pg, _ = f.proc.get("/ping")
            assert pg["config_version"] == 1, pg
            # the unit accepted it once: its log is the hub's copy up to the
            # last seq the hub stored, then the unit's own /events after it
            # (the unit prunes what the hub acknowledged, so its /events may
            # no longer start at 0)
            for _ in range(5):  # a prune may land between the two reads
                up = stream(hub, "unitlog-rs-1")
                st, b, _ = f.proc.get("/events?after=%d&limit=1000" % len(up),
                                      token=f.reg["hub_token"])
                if st != 410:
                    break
            assert st == 200, (st, b)
            assert [e["data"]["reservation_id"] for e in up + b["events"]
                    if e["type"] == "ReservationAccepted"] == [rid]
        finally:
            f.kill()


class SlowUnit:
    """A fake unit on loopback: answers /ping at once, but takes `delay`
    seconds to accept a reservation (a unit on a poor connection)."""

    def __init__(self, delay):
        import http.server
        outer = self
        self.received = []

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._send(200, {"name": "slow", "seq_head": 0, "config_version": 0})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                outer.received.append((time.time(), self.path, body))
                time.sleep(delay)
                self._send(200, {})

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_slow_units_do_not_hold_up_their_group():
    slow = [SlowUnit(5) for _ in range(4)]
    try:
        with lfhub.Hub(["--ping-interval", "0.3", "--ping-timeout", "8", "--retry-schedule",
                        "1,2"], env={"LF_FLEET_GROUPS": "1"}) as hub:
            user = hub.create_user("dave")
            for i, s in enumerate(slow):
                hub.create_unit("slow-%d" % i, lockers=[("A01", "S")], presence="poll",
                                url=s.url)
            f = Fleet(hub, "fast-1", [("A01", "S")])
            f.start()
            try:
                for i in range(4):
                    hub.wait_for(lambda: attempts(hub, "slow-%d" % i, "UnitCameOnline"), 20)
                hub.wait_for(lambda: attempts(hub, "fast-1", "UnitCameOnline"), 20)
                slow_ids = [reserve(hub, user, "slow-%d" % i)[0] for i in range(4)]
                hub.wait_for(lambda: all(s.received for s in slow), 10, interval=0.02,
                             what="slow deliveries started")
                t0 = time.time()
                rid, _, _ = reserve(hub, user, "fast-1")
                hub.wait_for(lambda: delivered(hub, "fast-1", rid), 10, interval=0.02,
                             what="fast unit delivered")
                took = time.time() - t0
                # the four slow calls (5 s each) are still in flight
                assert took < 3, took
                assert not any(delivered(hub, "slow-%d" % i, slow_ids[i]) for i in range(4))
                for i in range(4):
                    d = hub.wait_for(lambda: delivered(hub, "slow-%d" % i, slow_ids[i]), 20)
                    assert [x["result"] for x in d] == ["accepted"], d
                # the four slow ones ran side by side, not one after another
                starts = sorted(s.received[0][0] for s in slow)
                assert starts[-1] - starts[0] < 3, starts
                assert all(len(s.received) == 1 for s in slow), [s.received for s in slow]
            finally:
                f.kill()
    finally:
        for s in slow:
            s.close()


if __name__ == "__main__":
    lfhub.run_tests([test_reservation_delivered_then_offline_pickup_and_cancel,
                     test_rejection_reassigns_then_cancels,
                     test_pull_mode_unit_and_push_racing_pull,
                     test_pending_deliveries_survive_hub_restart,
                     test_slow_units_do_not_hold_up_their_group])
