"""test_auth_matrix.py — who may call what (DESIGN §7, §9; issue 7).

Every hub endpoint is called with no token, a wrong token, and each role
(admin, two users, two units): a missing or unknown token is 401 (with
WWW-Authenticate), a role outside the route's rights 403, a unit acting as
another unit 403, a user on another user's reservation 404; denied answers
carry only {"error":{...}} and none of the other party's data. The unit
agent's hub-facing endpoints need its hub credential. Finally, with debug
logging on everywhere and a real unit talking to the hub both ways, no
token and no booking code appears in any process's output."""
import datetime
import json
import os
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402
import lfraw  # noqa: E402
import lfunit  # noqa: E402

_now = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
T0 = (_now + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
T1 = (_now + datetime.timedelta(days=1, hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
WRONG = "f" * 64


def ev(seq):
    return {"seq": seq, "id": str(uuid.uuid4()), "type": "DoorOpened",
            "time": "2026-01-02T03:04:05Z", "data": {"locker": "A01"}}


def call(hub, method, path, body, tok):
    data = json.dumps(body).encode() if body is not None else b""
    hdrs = {"Authorization": "Bearer " + tok} if tok else {}
    st, h, raw = lfraw.call(hub.url, method, path, data, hdrs)
    return st, h, raw


def denied(st, h, raw, want, what, secrets):
    assert st == want, (what, st, raw[:300])
    b = lfraw.json_of(raw)
    assert isinstance(b, dict) and list(b.keys()) == ["error"], (what, raw[:300])
    assert set(b["error"].keys()) <= {"code", "message"}, (what, b)
    if want == 401:
        assert h.get("www-authenticate", "").lower().startswith("bearer"), (what, h)
    text = raw.decode(errors="replace")
    for s in secrets:
        assert s not in text, (what, "leaks", s, text)


def test_hub_matrix():
    with lfhub.Hub(["--ping-interval", "3600"], log_level="debug") as hub:
        adm = hub.admin_token
        alice, bob = hub.create_user("alice"), hub.create_user("bob")
        ua = hub.create_unit("auth-a", heartbeat_interval_ms=86400000)
        ub = hub.create_unit("auth-b", heartbeat_interval_ms=86400000)
        st, r, _ = hub.post("/v1/reservations", {"unit": "auth-a", "size": "S", "from": T0,
                                                 "to": T1}, token=alice["token"])
        assert st == 201, (st, r)
        rid = r["id"]
        st, conf, _ = hub.post("/v1/reservations/%s/confirm" % rid, token=alice["token"])
        assert st == 200 and conf["code"].startswith("LF1"), conf
        code = conf["code"]
        secrets_of_alice = [rid, code, alice["user_id"], alice["token"]]
        toks = {"none": None, "wrong": WRONG, "admin": adm, "alice": alice["token"],
                "bob": bob["token"], "unit-a": ua["token"], "unit-b": ub["token"]}
        all_secrets = [adm, alice["token"], bob["token"], ua["token"], ub["token"],
                       ua["hub_token"], ub["hub_token"], ua["booking_key"], ub["booking_key"], code]
        A, U, N = {"admin"}, {"alice", "bob"}, set()
        hb = {"seq_head": 0, "config_version": 0}
        res_body = {"unit": "auth-a", "size": "M", "from": T0, "to": T1}
        # (method, path, body, allowed roles, owner-only: who else gets 403/404)
        matrix = [
            ("POST", "/v1/users", {"name": "x"}, A),
            ("POST", "/v1/units", {"name": "auth-new", "lockers": [{"id": "A1", "size": "S"}]}, A),
            ("GET", "/v1/units", None, A),
            ("GET", "/v1/units/auth-a", None, A),
            ("GET", "/v1/alerts", None, A),
            ("PUT", "/v1/units/auth-a/config?mode=queued", {"config": {"k": 1}}, A),
            ("GET", "/v1/units/auth-a/config", None, A),
            ("POST", "/v1/units/auth-a/heartbeat", hb, {"unit-a"}),
            ("POST", "/v1/units/auth-a/events", {"events": [ev(1)]}, {"unit-a"}),
            ("GET", "/v1/availability?unit=auth-a&size=S&from=%s&to=%s" % (T0, T1), None,
             A | U),
            ("POST", "/v1/reservations", res_body, U),
            ("GET", "/v1/reservations", None, A | U),
            ("GET", "/v1/reservations/" + rid, None, {"admin", "alice"}),
            ("GET", "/v1/events?after=0&limit=5", None, A),
            ("GET", "/v1/events/live?after=999999999", None, A),
            ("GET", "/v1/projections", None, A),
            ("POST", "/v1/projections/nope/rebuild", None, A),
            ("POST", "/v1/reservations/%s/confirm" % rid, None, {"alice"}),
        ]
        n = 0
        for method, path, body, allowed in matrix:
            for who, tok in toks.items():
                what = "%s %s as %s" % (method, path, who)
                if who in allowed and path.startswith("/v1/events/live"):
                    continue  # a stream; the allowed case is tested in test_hub_core
                st, h, raw = call(hub, method, path, body, tok)
                n += 1
                if who in ("none", "wrong"):
                    denied(st, h, raw, 401, what, all_secrets)
                elif who in allowed:
                    assert st not in (401, 403), (what, st, raw[:300])
                elif path.startswith("/v1/units/auth-a/") and who == "unit-b":
                    denied(st, h, raw, 403, what, all_secrets)  # a unit acting as another
                elif "/v1/reservations/" in path and who == "bob":
                    denied(st, h, raw, 404, what, all_secrets)  # not yours: as if absent
                else:
                    denied(st, h, raw, 403, what, all_secrets)
        # bob's own listing does not show alice's reservation; cancel by bob is 404
        st, b, _ = hub.get("/v1/reservations", token=bob["token"])
        assert st == 200 and all(x["id"] != rid for x in b["reservations"]), b
        st, h, raw = call(hub, "POST", "/v1/reservations/%s/cancel" % rid, None, bob["token"])
        denied(st, h, raw, 404, "bob cancels alice's", secrets_of_alice)
        # an unknown id and another user's id answer the same (no existence oracle)
        st2, _, raw2 = call(hub, "GET", "/v1/reservations/%s" % uuid.uuid4(), None, bob["token"])
        st1, _, raw1 = call(hub, "GET", "/v1/reservations/%s" % rid, None, bob["token"])
        assert st1 == st2 == 404 and raw1 == raw2, (raw1, raw2)
        # a user token is not an admin's ?user= filter
        st, h, raw = call(hub, "GET", "/v1/reservations?user=" + alice["user_id"], None,
                          bob["token"])
        assert rid not in raw.decode(), raw[:300]
        st, b, _ = hub.get("/v1/reservations/" + rid, token=alice["token"])
        assert st == 200 and b["status"] == "confirmed", b
        st, h, raw = call(hub, "POST", "/v1/reservations/%s/cancel" % rid, None, alice["token"])
        assert st == 200, raw
        # tokens in odd places are not tokens
        for hdr in ["Bearer", "Bearer ", "bearer " + adm + " x", "Token " + adm, adm,
                    "Bearer " + adm[:-1], "Bearer " + adm.upper(), "Bearer " + adm + "\t"]:
            st, h, raw = lfraw.call(hub.url, "GET", "/v1/units", b"", {"Authorization": hdr})
            assert st == 401, (hdr, st, raw[:200])
        st, h, raw = lfraw.call(hub.url, "GET", "/v1/units?token=" + adm, b"", {})
        assert st == 401, raw[:200]
        print("hub: %d calls checked" % n)
        time.sleep(0.5)
        logs = hub.stderr_tail(10 ** 8) + "\n".join(hub.output)
        assert "GET /v1/units" in logs or "/v1/units" in logs, "debug log has request lines"
        for s in all_secrets + [alice["token"], bob["token"]]:
            assert s not in logs, ("secret in hub log", s[:8])


def test_unit_agent_and_logs():
    """A real unit talking to the hub both ways (ping, config, reservation,
    pushes), every process at debug level; then grep all their output."""
    with lfhub.Hub(["--ping-interval", "0.3", "--ping-timeout", "2", "--retry-schedule", "1,1"],
                   log_level="debug") as hub:
        port = lfhub.free_port()
        reg = hub.create_unit("auth-u", presence="poll", url="http://127.0.0.1:%d" % port,
                              lockers=[("A01", "S"), ("A02", "M")])
        other = hub.create_unit("auth-v", heartbeat_interval_ms=86400000)
        user = hub.create_user("carol")
        ud = tempfile.mkdtemp(prefix="lf-e2e-auth-")
        u = lfunit.Proc(["unit", "--name", "auth-u", "--listen", "127.0.0.1:%d" % port,
                         "--data", os.path.join(ud, "unit"),
                         "--hub", hub.url, "--token", reg["token"], "--hub-token", reg["hub_token"],
                         "--booking-key", reg["booking_key"], "--lockers", "A01:S,A02:M",
                         "--push-interval", "0.3", "--log-level", "debug"], data_dir=ud,
                        name="unit-auth-u")
        u.own_dir = True
        with u:
            u.start()
            # hub-facing endpoints of the unit: hub credential only
            for method, path, body in [("GET", "/status", None), ("GET", "/events", None),
                                       ("PUT", "/config", {"version": 1, "config": {}}),
                                       ("POST", "/reservations", {"id": str(uuid.uuid4()),
                                                                  "locker": "A01", "from": T0,
                                                                  "to": T1}),
                                       ("POST", "/reservations/%s/cancel" % uuid.uuid4(), None)]:
                for tok in [None, WRONG, reg["token"], other["hub_token"], hub.admin_token,
                            reg["hub_token"][:-1]]:
                    st, h, raw = call(u, method, path, body, tok)
                    denied(st, h, raw, 401, "unit %s %s" % (method, path),
                           [reg["hub_token"], reg["token"]])
            st, b, _ = u.get("/ping")
            assert st == 200 and b["name"] == "auth-u", b
            # real traffic: config live, a reservation delivered, a pickup, pushes
            hub.wait_for(lambda: hub.get("/v1/units/auth-u", token=hub.admin_token)[1]
                         .get("online"), timeout=60, what="unit online")
            st, b, _ = hub.put("/v1/units/auth-u/config?mode=live", {"config": {"x": 1}},
                               token=hub.admin_token)
            assert st in (200, 202), b
            st, r, _ = hub.post("/v1/reservations", {"unit": "auth-u", "size": "S", "from": T0,
                                                     "to": T1}, token=user["token"])
            assert st == 201, r
            st, c, _ = hub.post("/v1/reservations/%s/confirm" % r["id"], token=user["token"])
            assert st == 200, c
            hub.wait_for(lambda: hub.get("/v1/reservations/" + r["id"], token=user["token"])[1]
                         .get("delivery") == "delivered", timeout=60, what="delivered")
            st, p, _ = u.post("/screen/pickup", {"code": c["code"]})
            assert st in (200, 403), p  # the window is tomorrow: outside_window
            st, rent, _ = u.post("/screen/rent", {"size": "M", "minutes": 30})
            assert st == 200, rent
            st, p, _ = u.post("/screen/pickup", {"code": rent["code"]})
            assert st == 200, p
            hub.wait_for(lambda: any(e["type"] == "RentalStarted" or e["type"] == "LockerOpened"
                                     for e in hub.events(stream="unitlog-auth-u")["events"]),
                         timeout=60, what="pushed events")
            time.sleep(1)
            u.terminate()
            unit_logs = u.stderr_tail(10 ** 8) + "\n".join(u.output)
        hub.terminate()
        hub_logs = hub.stderr_tail(10 ** 8) + "\n".join(hub.output)
        secrets = {"unit token": reg["token"], "hub token": reg["hub_token"],
                   "booking key": reg["booking_key"], "admin token": hub.admin_token,
                   "user token": user["token"], "booking code": c["code"],
                   "rental code": rent["code"], "other unit": other["token"]}
        assert len(hub_logs) > 200 and len(unit_logs) > 50, (len(hub_logs), len(unit_logs))
        for what, s in secrets.items():
            assert s not in hub_logs, ("hub log has the " + what)
            assert s not in unit_logs, ("unit log has the " + what)
        print("logs: hub %d bytes, unit %d bytes, no secret" % (len(hub_logs), len(unit_logs)))


if __name__ == "__main__":
    lfhub.run_tests([test_hub_matrix, test_unit_agent_and_logs])
