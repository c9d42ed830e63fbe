"""test_fleet.py — the hub's fleet side with real processes: presence,
config delivery (live and queued), unit auth, push ingestion (duplicates,
gaps, validation) and kill -9 of the hub in the middle of pushes."""
import hashlib
import hmac
import os
import socket
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402
import lfunit  # noqa: E402

FAST = ["--ping-interval", "0.3", "--ping-timeout", "0.5", "--retry-schedule", "1,2",
        "--pull-interval", "0.5"]


def hub_token(hub, reg, name):
    """The hub token of a unit: from the registration answer, else derived
    the documented way from the hub secret (HMAC-SHA256 'hubtoken:'+name)."""
    if reg.get("hub_token"):
        return reg["hub_token"]
    with open(os.path.join(hub.data_dir, "hub.secret"), "rb") as f:
        secret = f.read()
    return hmac.new(secret, b"hubtoken:" + name.encode(), hashlib.sha256).hexdigest()


def stream(hub, name):
    out, after = [], 0
    while True:
        b = hub.events(after=after, limit=1000, stream=name)
        out += b["events"]
        if len(b["events"]) < 1000:
            return out
        after = b["events"][-1]["position"]


def types(hub, name):
    return [e["type"] for e in stream(hub, name)]


def ev(seq, typ="DoorOpened", eid=None):
    return {"seq": seq, "id": eid or str(uuid.uuid4()), "type": typ,
            "time": "2026-01-02T03:04:05.000Z", "data": {"locker": "A01", "n": seq}}


def unit_proc(name, port, reg, hub, data_dir=None):
    return lfunit.Proc(["unit", "--name", name, "--listen", "127.0.0.1:%d" % port,
                        "--hub-token", hub_token(hub, reg, name), "--log-level", "warn",
                        "--lockers", "A01:S,A02:M,A03:L"],
                       data_dir=data_dir, name="unit-" + name)


def test_unit_acts_only_for_itself():
    with lfhub.Hub(FAST) as hub:
        a = hub.create_unit("unit-a")
        hub.create_unit("unit-b")
        st, body, _ = hub.post("/v1/units/unit-b/heartbeat", {"seq_head": 0, "config_version": 0},
                               token=a["token"])
        assert st == 403, (st, body)
        st, body, _ = hub.post("/v1/units/unit-b/events", {"events": [ev(1)]}, token=a["token"])
        assert st == 403, (st, body)
        assert stream(hub, "unitlog-unit-b") == []
        st, body, _ = hub.post("/v1/units/unit-a/heartbeat", {"seq_head": 0, "config_version": 0},
                               token=a["token"])
        assert st == 200 and body["desired_config_version"] == 0, (st, body)
        st, body, _ = hub.post("/v1/units/unit-a/events", {"events": [ev(1)]}, token="nope")
        assert st == 401, (st, body)
        st, body, _ = hub.post("/v1/units/unit-a/events", {"events": [ev(1)]},
                               token=hub.admin_token)
        assert st in (403, 401), (st, body)


def test_push_duplicates_gap_and_validation():
    with lfhub.Hub(FAST) as hub:
        u = hub.create_unit("pusher")
        tok = u["token"]
        evs = [ev(i) for i in range(1, 8)]
        st, b, _ = hub.post("/v1/units/pusher/events", {"events": evs[0:5]}, token=tok)
        assert st == 200 and b["accepted"] == 5 and b["duplicates"] == 0 and b["acked_seq"] == 5, b
        assert b["position"] > 0
        # a retry overlapping what is stored: the prefix is acknowledged, not stored
        st, b, _ = hub.post("/v1/units/pusher/events", {"events": evs[2:7]}, token=tok)
        assert st == 200 and b["accepted"] == 2 and b["duplicates"] == 3 and b["acked_seq"] == 7, b
        st, b, _ = hub.post("/v1/units/pusher/events", {"events": evs[0:3]}, token=tok)
        assert st == 200 and b["accepted"] == 0 and b["duplicates"] == 3 and b["acked_seq"] == 7, b
        # a gap
        st, b, _ = hub.post("/v1/units/pusher/events", {"events": [ev(10), ev(11)]}, token=tok)
        assert st == 409 and b["error"]["code"] == "seq_gap" and b["expected_seq"] == 8, b
        # bad fields: 400 naming the field and index, nothing stored
        bad = [ev(8), dict(ev(9), type="Door-Opened")]
        st, b, _ = hub.post("/v1/units/pusher/events", {"events": bad}, token=tok)
        assert st == 400 and "events[1].type" in b["error"]["message"], b
        for field, val, want in [("id", "x", "events[0].id"), ("time", "2026-13-01T00:00:00Z",
                                                               "events[0].time"),
                                 ("data", [1], "events[0].data"), ("seq", "8", "events[0].seq")]:
            st, b, _ = hub.post("/v1/units/pusher/events", {"events": [dict(ev(8), **{field: val})]},
                                token=tok)
            assert st == 400 and want in b["error"]["message"], (field, b)
        st, b, _ = hub.post("/v1/units/pusher/events", {"events": [ev(8), ev(10)]}, token=tok)
        assert st == 400 and "events[1].seq" in b["error"]["message"], b
        st, b, _ = hub.post("/v1/units/pusher/events", {"events": [ev(i) for i in range(8, 1009)]},
                            token=tok)
        assert st == 400 and "events" in b["error"]["message"], b
        st, b, _ = hub.post("/v1/units/pusher/events", "{not json", token=tok)
        assert st == 400, b
        got = stream(hub, "unitlog-pusher")
        assert [e["version"] for e in got] == list(range(1, 8)), got
        assert [e["id"] for e in got] == [e["id"] for e in evs]
        assert got[0]["meta"]["source"] == "unit" and got[0]["meta"]["unit_seq"] == 1
        assert got[0]["meta"]["via"] == "push" and got[0]["meta"]["unit"] == "pusher"
        # a push is a sign of life
        assert "UnitCameOnline" in types(hub, "unit-pusher")


def test_presence_refused_timeout_heartbeat():
    # a port nobody listens on (held bound, not listening, so no other
    # process can take it meanwhile: connects are refused); a socket that
    # accepts and never answers
    refusing = socket.socket()
    refusing.bind(("127.0.0.1", 0))
    dead = refusing.getsockname()[1]
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    try:
        with lfhub.Hub(FAST + ["--heartbeat-grace", "1"]) as hub:
            hub.create_unit("refuser", presence="poll", url="http://127.0.0.1:%d" % dead)
            hub.create_unit("sleeper", presence="poll",
                            url="http://127.0.0.1:%d" % silent.getsockname()[1])
            hb = hub.create_unit("beater", presence="heartbeat")

            def reason(name):
                for e in stream(hub, "unit-" + name):
                    if e["type"] == "UnitWentOffline":
                        return e["data"]["reason"]
                return None
            assert hub.wait_for(lambda: reason("refuser"), 20) == "refused"
            assert hub.wait_for(lambda: reason("sleeper"), 20) == "timeout"
            st, _, _ = hub.post("/v1/units/beater/heartbeat", {"seq_head": 0, "config_version": 0},
                                token=hb["token"])
            assert st == 200
            hub.wait_for(lambda: "UnitCameOnline" in types(hub, "unit-beater"), 10)
            assert hub.wait_for(lambda: reason("beater"), 20) == "heartbeat_missed"
            # only transitions are events: many failed pings, one event each
            time.sleep(2)
            assert types(hub, "unit-refuser").count("UnitWentOffline") == 1
            st, body, _ = hub.get("/metrics")
            assert 'lockerfleet_units{state="offline"}' in body, body[:2000]
    finally:
        silent.close()
        refusing.close()


def test_live_config_to_online_unit():
    with lfhub.Hub(FAST) as hub:
        port = lfhub.free_port()
        reg = hub.create_unit("live-1", presence="poll", url="http://127.0.0.1:%d" % port)
        with unit_proc("live-1", port, reg, hub).start() as u:
            hub.wait_for(lambda: "UnitCameOnline" in types(hub, "unit-live-1"), 20, what="online")
            st, b, _ = hub.admin("PUT", "/v1/units/live-1/config?mode=live",
                                 {"config": {"price_cents": 250}})
            assert st == 200 and b["delivered"] is True and b["version"] == 1, (st, b)
            assert b["position"] > 0
            st, b, _ = hub.admin("GET", "/v1/units/live-1/config")
            assert st == 200 and b["applied_version"] == 1 and b["state"] == "applied", b
            assert b["config"] == {"price_cents": 250} and b["attempts"][0]["result"] == "sent", b
            st, p, _ = u.get("/ping")
            assert p["config_version"] == 1, p
            t = types(hub, "unit-live-1")
            assert t.count("ConfigDesired") == 1 and t.count("ConfigApplied") == 1, t
            # bad requests name the field
            st, b, _ = hub.admin("PUT", "/v1/units/live-1/config?mode=live", {"config": 3})
            assert st == 400 and "config" in b["error"]["message"], b
            st, b, _ = hub.admin("PUT", "/v1/units/live-1/config?mode=soon", {"config": {}})
            assert st == 400 and "mode" in b["error"]["message"], b
            st, b, _ = hub.admin("PUT", "/v1/units/nobody/config", {"config": {}})
            assert st == 404, b


def test_queued_config_waits_for_the_unit():
    with lfhub.Hub(FAST) as hub:
        port = lfhub.free_port()
        reg = hub.create_unit("q-1", presence="poll", url="http://127.0.0.1:%d" % port)
        hub.wait_for(lambda: "UnitWentOffline" in types(hub, "unit-q-1"), 20, what="offline")
        # live to an unreachable unit falls back to queued and says so
        st, b, _ = hub.admin("PUT", "/v1/units/q-1/config?mode=live", {"config": {"v": 1}})
        assert st == 202 and b["delivery"] == "queued" and b["next_attempt_at"], (st, b)
        st, b, _ = hub.admin("PUT", "/v1/units/q-1/config?mode=queued", {"config": {"v": 2}})
        assert st == 202 and b["delivery"] == "queued" and b["version"] == 2, (st, b)
        time.sleep(4)  # several retry periods: nothing may be attempted while offline
        n_attempts = types(hub, "unit-q-1").count("ConfigDeliveryAttempted")
        assert n_attempts == 1, types(hub, "unit-q-1")  # only the live try
        data = os.path.join(hub.data_dir, "unitdata")
        os.makedirs(data, exist_ok=True)
        t0 = time.time()
        with unit_proc("q-1", port, reg, hub, data_dir=data).start() as u:
            def applied():
                st, b, _ = hub.admin("GET", "/v1/units/q-1/config")
                return b["applied_version"] == 2 and b["state"] == "applied"
            hub.wait_for(applied, 15, what="config applied after return")
            took = time.time() - t0
            assert took < 10, took
            st, p, _ = u.get("/ping")
            assert p["config_version"] == 2, p
        t = types(hub, "unit-q-1")
        assert t.count("ConfigApplied") == 1, t


def test_kill9_mid_push():
    """Pushes 20,000 events in batches of 200 like a unit (resend on any
    failure, resume from expected_seq on a gap) while the hub is killed -9
    twice: every event is stored exactly once, in order."""
    total, batch = 20000, 200
    with lfhub.Hub(FAST) as hub:
        u = hub.create_unit("crashy")
        tok = u["token"]
        evs = [ev(i, "PaymentStarted") for i in range(1, total + 1)]
        state = {"acked": 0, "errors": 0, "done": False}

        def pusher():
            while state["acked"] < total:
                first = state["acked"] + 1
                body = {"events": evs[first - 1:first - 1 + batch]}
                try:
                    st, b, _ = lfhub.request("POST", hub.url + "/v1/units/crashy/events", body,
                                             tok, timeout=10)
                except Exception:
                    state["errors"] += 1
                    time.sleep(0.05)
                    continue
                if st == 200:
                    state["acked"] = b["acked_seq"]
                elif st == 409 and b["error"]["code"] == "seq_gap":
                    state["acked"] = b["expected_seq"] - 1
                else:
                    state["errors"] += 1
                    time.sleep(0.05)
            state["done"] = True

        th = threading.Thread(target=pusher, daemon=True)
        th.start()
        for _ in range(2):
            target = min(total - 1000, state["acked"] + 3000)
            hub.wait_for(lambda: state["acked"] > target, 60, interval=0.01)
            before = state["acked"]
            hub.kill()
            hub.start()
            assert before <= total
            time.sleep(0.5)
        th.join(120)
        assert state["done"], state
        got = stream(hub, "unitlog-crashy")
        assert len(got) == total, len(got)
        assert [e["version"] for e in got] == list(range(1, total + 1))
        assert [e["id"] for e in got] == [e["id"] for e in evs]


if __name__ == "__main__":
    lfhub.run_tests([test_unit_acts_only_for_itself, test_push_duplicates_gap_and_validation,
                     test_presence_refused_timeout_heartbeat, test_live_config_to_online_unit,
                     test_queued_config_waits_for_the_unit, test_kill9_mid_push])
