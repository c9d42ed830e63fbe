"""test_bad_input.py — the bad-input matrix (DESIGN §9, issue 7): for every
hub endpoint and every endpoint of `lockerfleet unit`, malformed JSON, wrong
types, missing and extra fields, empty and huge bodies, invalid UTF-8,
impossible times, negative and overflowing numbers, names with '/', '..',
NUL, overlong headers. Each must get a 4xx with {"error":{"code","message"}}
naming the problem; afterwards the log's last position is unchanged and the
process still answers.

Extra fields: the API ignores unknown fields (forward compatibility); the
matrix checks instead that extra fields cannot smuggle server-chosen values
(a client-chosen token, user_id, position, status...)."""
import datetime
import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402
import lfraw  # noqa: E402
import lfunit  # noqa: E402

BODY_MAX = 262144
ARGS = ["--body-max", str(BODY_MAX), "--ping-interval", "3600", "--pull-interval", "3600"]
_now = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
T0 = (_now + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
T1 = (_now + datetime.timedelta(days=1, hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")

# Bodies wrong for any JSON endpoint: (label, bytes).
GENERIC = [
    ("empty", b""),
    ("not json", b"{not json"),
    ("truncated", b'{"name":"x"'),
    ("array", b"[]"),
    ("null", b"null"),
    ("number", b"12"),
    ("string", b'"x"'),
    ("invalid utf-8", b'{"name":"\xff\xfe\xc3("}'),
    ("overlong utf-8", b'{"name":"\xc0\xaf"}'),
    ("lone surrogate", b'{"name":"\\ud800"}'),
    ("nul escape", b'{"name":"a\\u0000b"}'),
    ("raw nul", b'{"name":"a\x00b"}'),
    ("duplicate keys", b'{"name":"a","name":"b"}'),
    ("deep nesting", b"[" * 20000 + b"]" * 20000),
    ("trailing garbage", b'{"name":"a"} x'),
    ("nan", b'{"name":NaN}'),
    ("huge number", b'{"name":1' + b"0" * 400 + b"}"),
]


def check_error(st, body, what, field=None, statuses=None):
    assert 400 <= st < 500, (what, st, body)
    if statuses:
        assert st in statuses, (what, st, body)
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), (what, st, body)
    e = body["error"]
    assert isinstance(e.get("code"), str) and e["code"], (what, body)
    assert isinstance(e.get("message"), str) and e["message"], (what, body)
    if field:
        assert field in e["message"] or field == e.get("field"), (what, field, body)


class Probe:
    """Sends bad requests to a hub and checks that nothing changed."""

    def __init__(self, hub):
        self.hub = hub
        self.pos = self.position()
        self.n = 0

    def position(self):
        st, b, _ = self.hub.get("/healthz")
        assert st == 200 and b["status"] == "ok", (st, b)
        return b["position"]

    def send(self, method, path, body=b"", token=None, field=None, statuses=None, headers=None,
             what=None):
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            import json
            body = json.dumps(body).encode()
        st, h, raw = lfraw.call(self.hub.url, method, path, body, hdrs)
        what = what or "%s %r %r" % (method, path, body[:80])
        check_error(st, lfraw.json_of(raw), what, field, statuses)
        if st != 413 and st != 431:
            assert "json" in h.get("content-type", ""), (what, h)
        self.n += 1
        if self.n % 10 == 0:
            self.check()
        return st

    def check(self):
        pos = self.position()
        assert pos == self.pos, "log position moved from %d to %d" % (self.pos, pos)


def test_hub_matrix():
    with lfhub.Hub(ARGS) as hub:
        adm = hub.admin_token
        user = hub.create_user("alice")
        unit = hub.create_unit("bad-u", heartbeat_interval_ms=86400000)
        utok = unit["token"]
        # bring the unit online now, so a (rejected) push is not a presence transition
        st, b, _ = hub.post("/v1/units/bad-u/heartbeat", {"seq_head": 0, "config_version": 0},
                            token=utok)
        assert st == 200, (st, b)
        st, r, _ = hub.post("/v1/reservations", {"unit": "bad-u", "size": "S", "from": T0,
                                                 "to": T1}, token=user["token"])
        assert st == 201, (st, r)
        rid = r["id"]
        silent = hub.create_unit("bad-v", heartbeat_interval_ms=86400000)  # never seen online
        p = Probe(hub)
        # garbage from a unit that was never online: no presence event either
        for label, raw in GENERIC:
            p.send("POST", "/v1/units/bad-v/events", raw, silent["token"],
                   what="offline unit push: " + label)
        p.send("POST", "/v1/units/bad-v/events", {"events": [{"seq": 1}]}, silent["token"],
               field="events[0]")
        p.check()

        body_endpoints = [
            ("POST", "/v1/users", adm),
            ("POST", "/v1/units", adm),
            ("PUT", "/v1/units/bad-u/config", adm),
            ("POST", "/v1/units/bad-u/heartbeat", utok),
            ("POST", "/v1/units/bad-u/events", utok),
            ("POST", "/v1/reservations", user["token"]),
        ]
        for m, path, tok in body_endpoints:
            for label, raw in GENERIC:
                if label == "empty" and path.endswith("/heartbeat"):
                    continue  # an empty heartbeat is allowed ({} fields optional)
                p.send(m, path, raw, tok, what="%s %s: %s" % (m, path, label))
            # huge: declared and real
            p.send(m, path, b'{"x":"' + b"a" * BODY_MAX + b'"}', tok, statuses=[413])
            p.send(m, path, b"{}", tok, statuses=[413],
                   headers={"Content-Length": str(BODY_MAX * 1000)}, what="lying length")
            p.check()

        # ---- POST /v1/users
        # a user's name is display text (its stream is user-{uuid}): '/', '..'
        # are harmless there; control characters, empty and overlong are not
        for bad in [{}, {"name": 1}, {"name": None}, {"name": ""}, {"name": "a\nb"},
                    {"name": "a\u0001"}, {"name": "x" * 129}, {"name": ["a"]},
                    {"name": {"a": 1}}, {"nam": "a"}]:
            p.send("POST", "/v1/users", bad, adm, field="name")
        # ---- POST /v1/units
        ok_unit = {"name": "nu-1", "display_name": "N", "presence": "heartbeat",
                   "lockers": [{"id": "A01", "size": "S"}]}
        cases = [
            ({"name": "a/b"}, "name"), ({"name": ".."}, "name"), ({"name": "a%00"}, "name"),
            ({"name": 7}, "name"), ({"name": None}, "name"), ({"display_name": 5}, "display_name"),
            ({"display_name": "a\nb"}, "display_name"), ({"url": "ftp://x"}, "url"),
            ({"url": "http://a\u0001b"}, "url"), ({"url": "http://a\u0000b"}, "u0000"), ({"presence": "sometimes"}, "presence"),
            ({"presence": "poll"}, "url"), ({"uplink": "carrier-pigeon"}, "uplink"),
            ({"heartbeat_interval_ms": -1}, "heartbeat_interval_ms"),
            ({"heartbeat_interval_ms": 2 ** 63}, "too big"),
            ({"heartbeat_interval_ms": 1e300}, "heartbeat_interval_ms"),
            ({"heartbeat_interval_ms": "100"}, "heartbeat_interval_ms"),
            ({"lockers": []}, "lockers"), ({"lockers": "A01"}, "lockers"),
            ({"lockers": [{"id": "A/1", "size": "S"}]}, "lockers[0].id"),
            ({"lockers": [{"id": "..", "size": "S"}]}, "lockers[0].id"),
            ({"lockers": [{"id": "A01", "size": "XL"}]}, "lockers[0].size"),
            ({"lockers": [{"id": "A01", "size": "S"}, {"id": "A01", "size": "M"}]}, "lockers[1].id"),
            ({"lockers": [{"id": "A%d" % i, "size": "S"} for i in range(129)]}, "lockers"),
            ({"lockers": [1]}, "lockers[0].id"), ({"allotment": ["Z9"]}, "allotment[0]"),
            ({"allotment": "A01"}, "allotment"),
        ]
        for patch, field in cases:
            p.send("POST", "/v1/units", dict(ok_unit, **patch), adm, field=field)
        b = dict(ok_unit)
        del b["name"]
        p.send("POST", "/v1/units", b, adm, field="name")
        b = dict(ok_unit)
        del b["lockers"]
        p.send("POST", "/v1/units", b, adm, field="lockers")
        p.send("POST", "/v1/units", dict(ok_unit, name="bad-u"), adm, statuses=[409])
        # ---- PUT config
        for q, bad, field in [("", {}, "config"), ("", {"config": 1}, "config"),
                              ("", {"config": [1]}, "config"), ("?mode=later", {"config": {}}, "mode"),
                              ("?mode=%00", {"config": {}}, "mode")]:
            p.send("PUT", "/v1/units/bad-u/config" + q, bad, adm, field=field)
        for name in ["nope", "a%2Fb", "..", "%2E%2E", "a%00b", "x" * 300]:
            p.send("PUT", "/v1/units/%s/config" % name, {"config": {}}, adm, statuses=[400, 404])
            p.send("GET", "/v1/units/%s/config" % name, b"", adm, statuses=[400, 404])
            p.send("GET", "/v1/units/%s" % name, b"", adm, statuses=[400, 404])
        # ---- heartbeat
        for bad, field in [({"seq_head": -1}, "seq_head"), ({"seq_head": "1"}, "seq_head"),
                           ({"seq_head": 1.5}, "seq_head"), ({"config_version": -5}, "config_version"),
                           ({"config_version": [1]}, "config_version")]:
            p.send("POST", "/v1/units/bad-u/heartbeat", bad, utok, field=field)
        # ---- events
        def ev(seq, **kw):
            e = {"seq": seq, "id": str(uuid.uuid4()), "type": "DoorOpened", "time": T0,
                 "data": {"locker": "A01"}}
            e.update(kw)
            return e
        ev_cases = [
            ({}, "events"), ({"events": None}, "events"), ({"events": {}}, "events"),
            ({"events": []}, "events"), ({"events": [1]}, "events[0]"),
            ({"events": [ev(-1)]}, "events[0].seq"), ({"events": [ev(0)]}, "events[0].seq"),
            ({"events": [ev("1")]}, "events[0].seq"), ({"events": [ev(1.0)]}, "events[0].seq"),
            ({"events": [ev(1), ev(3)]}, "events[1].seq"),
            ({"events": [ev(1, id="../../x")]}, "events[0].id"),
            ({"events": [ev(1, id=None)]}, "events[0].id"),
            ({"events": [ev(1, type="Door/Opened")]}, "events[0].type"),
            ({"events": [ev(1, type="")]}, "events[0].type"),
            ({"events": [ev(1, type="A" * 65)]}, "events[0].type"),
            ({"events": [ev(1, time="2026-02-30T10:00:00Z")]}, "events[0].time"),
            ({"events": [ev(1, time="2026-01-01T25:00:00Z")]}, "events[0].time"),
            ({"events": [ev(1, time="yesterday")]}, "events[0].time"),
            ({"events": [ev(1, time=12)]}, "events[0].time"),
            ({"events": [ev(1, data=[])]}, "events[0].data"),
            ({"events": [ev(1, data="x")]}, "events[0].data"),
            ({"events": [ev(1) for _ in range(1001)]}, "events"),
        ]
        for bad, field in ev_cases:
            p.send("POST", "/v1/units/bad-u/events", bad, utok, field=field)
        # overflowing seq: int64 max then one more (must not overflow in the check)
        big = 2 ** 63 - 1
        p.send("POST", "/v1/units/bad-u/events", {"events": [ev(big), ev(big + 1)]}, utok)
        p.send("POST", "/v1/units/bad-u/events", {"events": [ev(big), ev(big)]}, utok)
        p.send("POST", "/v1/units/bad-u/events", {"events": [ev(big)]}, utok, statuses=[409])
        p.send("POST", "/v1/units/bad-u/events",
               b'{"events":[{"seq":99999999999999999999999,"id":"%s","type":"A","time":"%s",'
               b'"data":{}}]}' % (str(uuid.uuid4()).encode(), T0.encode()), utok)
        # ---- reservations
        ok_r = {"unit": "bad-u", "size": "S", "from": T0, "to": T1}
        r_cases = [
            ({"unit": None}, "unit"), ({"unit": "../bad-u"}, "unit"), ({"unit": "bad-u/x"}, "unit"),
            ({"unit": 3}, "unit"), ({"size": "XL"}, "size"), ({"size": ["S"]}, "size"),
            ({"from": "2026-02-30T10:00:00Z"}, "from"), ({"from": "2030-13-01T10:00:00Z"}, "from"),
            ({"to": "2030-01-01T24:61:00Z"}, "to"), ({"from": 1893492000000}, "from"),
            ({"from": T1, "to": T0}, None), ({"from": "1999-01-01T00:00:00Z"}, None),
            ({"to": "2099-01-01T00:00:00Z"}, None),
        ]
        for patch, field in r_cases:
            p.send("POST", "/v1/reservations", dict(ok_r, **patch), user["token"], field=field)
        for k in ok_r:
            b = dict(ok_r)
            del b[k]
            p.send("POST", "/v1/reservations", b, user["token"], field=k)
        p.send("POST", "/v1/reservations", ok_r, user["token"], field="Idempotency-Key",
               headers={"Idempotency-Key": "k" * 200})
        p.send("POST", "/v1/reservations", dict(ok_r, unit="no-such"), user["token"],
               statuses=[404])
        for bad_id in ["x", "..", "%2E%2E", "a%2Fb", "%00", "00000000-0000-0000-0000-000000000000",
                       rid.upper(), rid + "x"]:
            for verb in ["confirm", "cancel"]:
                p.send("POST", "/v1/reservations/%s/%s" % (bad_id, verb), b"", user["token"],
                       statuses=[400, 404])
            p.send("GET", "/v1/reservations/%s" % bad_id, b"", user["token"], statuses=[400, 404])
        # ---- query strings
        q_cases = [
            ("/v1/availability", user["token"], ["", "?unit=bad-u", "?unit=bad-u&size=S",
                                                  "?unit=../x&size=S&from=%s&to=%s" % (T0, T1),
                                                  "?unit=bad-u&size=S&from=2026-02-30T00:00:00Z&to=%s" % T1,
                                                  "?unit=bad-u&size=Q&from=%s&to=%s" % (T0, T1),
                                                  "?unit=bad-u&size=S&from=%s&to=%s&min_position=-1" % (T0, T1),
                                                  "?unit=%00&size=S&from=" + T0 + "&to=" + T1]),
            ("/v1/events", adm, ["?after=-1", "?after=abc", "?after=99999999999999999999",
                                 "?limit=0", "?limit=-5", "?limit=1e3", "?limit=%00",
                                 "?after=1%00"]),
            ("/v1/events/live", adm, ["?after=-1", "?after=x"]),
            ("/v1/units", adm, ["?limit=-1", "?limit=99999999999999999999", "?online=maybe",
                                "?after=../x", "?shard=zz9"]),
            ("/v1/reservations", user["token"], ["?limit=0", "?limit=100000", "?min_position=-3",
                                                  "?min_position=x"]),
            ("/v1/reservations/" + rid, user["token"], ["?min_position=-1",
                                                         "?min_position=99999999999999999999"]),
            ("/v1/alerts", adm, ["?limit=-1", "?kind=" + "k" * 500]),
        ]
        for path, tok, qs in q_cases:
            for q in qs:
                p.send("GET", path + q, b"", tok)
        for name in ["nope", "..", "%2E%2E", "a%2Fb", "%00"]:
            p.send("POST", "/v1/projections/%s/rebuild" % name, b"", adm, statuses=[400, 404])
        # ---- paths and headers
        for path in ["/v1/../v1/users", "/v1/units/bad-u/../../users", "/v1/%00", "/v1/units/a%00b",
                     "/" + "a/" * 40, "/v1/units/" + "x" * 5000, "/v1/units/%ff%fe",
                     "/v1/units/\xff\xfe"]:
            p.send("GET", path, b"", adm, statuses=[400, 404, 405, 414])
        p.send("GET", "/v1/units", b"", "x" * 20000, statuses=[401, 431])
        p.send("GET", "/v1/units", b"", None, statuses=[401],
               headers={"Authorization": "Bearer " + adm + "\x01"})
        p.send("GET", "/v1/units", b"", None, statuses=[401], headers={"Authorization": "Basic eA=="})
        p.send("DELETE", "/v1/units", b"", adm, statuses=[405])
        # a header section too large for the server's memory pool: 4xx, still serving
        st, h, raw = lfraw.call(hub.url, "GET", "/healthz", b"", {"X-Big": "y" * 200000})
        assert st in (400, 413, 431) or st == 0, (st, raw[:200])
        st, h, raw = lfraw.call(hub.url, "GET", "/healthz", b"",
                                {"X-H%d" % i: "v" * 100 for i in range(2000)})
        assert st in (400, 413, 431) or st == 0, (st, raw[:200])
        p.check()
        # ---- JSONTestSuite's must-reject documents (read at run time if present)
        jts = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared",
                           "testdata", "JSONTestSuite", "test_parsing")
        if os.path.isdir(jts):
            for fn in sorted(os.listdir(jts)):
                if not fn.startswith("n_"):
                    continue
                with open(os.path.join(jts, fn), "rb") as f:
                    doc = f.read()
                if not doc:
                    continue
                p.send("POST", "/v1/units/bad-u/events", doc, utok, statuses=[400],
                       what="JSONTestSuite " + fn)
            p.check()
        # ---- extra fields cannot pick server-chosen values
        st, b, _ = hub.admin("POST", "/v1/users", {"name": "bob", "token": "mine-mine-mine-mine",
                                                  "user_id": "forged", "position": 1})
        assert st == 201 and b["token"] != "mine-mine-mine-mine" and b["user_id"] != "forged", b
        st, b, _ = hub.get("/v1/reservations", token="mine-mine-mine-mine")
        assert st == 401, (st, b)
        st, b, _ = hub.post("/v1/reservations", dict(ok_r, size="M", status="confirmed", locker="Z9",
                                                     user_id="forged", id=str(uuid.uuid4())),
                            token=user["token"])
        assert st == 201 and b["status"] == "held" and b["locker"] != "Z9", b
        st, g, _ = hub.get("/v1/reservations/%s?min_position=%d" % (b["id"], b["position"]),
                           token=user["token"])
        assert st == 200 and g["user_id"] == user["user_id"], g
        print("hub: %d bad requests, position stayed %d" % (p.n, p.pos))
        st, _, _ = hub.get("/healthz")
        assert st == 200 and hub.proc.poll() is None


def test_unit_matrix():
    hub_token = "hub-token-for-bad-input-0123456789"
    with lfunit.Unit("bad-unit", ["--hub-token", hub_token, "--lockers", "A01:S,A02:M"]) as u:
        def status():
            st, b, _ = u.get("/status", token=hub_token)
            assert st == 200, (st, b)
            return (b["seq_head"], b["config_version"], b["rentals"], b["reservations"])

        before = status()
        n = 0

        def send(method, path, body=b"", field=None, statuses=None, tok=hub_token, headers=None):
            nonlocal n
            hdrs = dict(headers or {})
            if tok:
                hdrs["Authorization"] = "Bearer " + tok
            if isinstance(body, (dict, list)):
                import json
                body = json.dumps(body).encode()
            st, h, raw = lfraw.call(u.url, method, path, body, hdrs)
            check_error(st, lfraw.json_of(raw), "unit %s %s %r" % (method, path, body[:60]), field,
                        statuses)
            n += 1
            if n % 10 == 0:
                assert status() == before, (status(), before)

        for path, m in [("/config", "PUT"), ("/reservations", "POST"), ("/screen/rent", "POST"),
                        ("/screen/pickup", "POST"), ("/hardware/door-open", "POST"),
                        ("/hardware/error", "POST"), ("/hardware/payment-start", "POST")]:
            for label, raw in GENERIC:
                send(m, path, raw)
            send(m, path, b'{"x":"' + b"a" * (256 * 1024) + b'"}', statuses=[413])
        for bad, field in [({"version": 0, "config": {}}, "version"),
                           ({"version": -1, "config": {}}, "version"),
                           ({"version": "2", "config": {}}, "version"),
                           ({"version": 2 ** 64, "config": {}}, "too big"),
                           ({"version": 1.5, "config": {}}, "version"),
                           ({"version": 2}, "config"), ({"version": 2, "config": []}, "config")]:
            send("PUT", "/config", bad, field)
        rid = str(uuid.uuid4())
        ok = {"id": rid, "locker": "A01", "from": T0, "to": T1, "code": "LF1xyz"}
        for patch, field in [({"id": "../x"}, "id"), ({"id": 5}, "id"), ({"id": None}, "id"),
                             ({"locker": "A" * 40}, "locker"), ({"locker": ""}, "locker"),
                             ({"from": "2026-02-30T10:00:00Z"}, "from"),
                             ({"to": "2030-01-01T10:00:61Z"}, "to"), ({"from": T1, "to": T0}, "to"),
                             ({"code": 12}, "code")]:
            send("POST", "/reservations", dict(ok, **patch), field)
        for k in ["id", "locker", "from", "to"]:
            b = dict(ok)
            del b[k]
            send("POST", "/reservations", b, k)
        for bad_id in ["x", "..", "%2E%2E", "a%2Fb", "%00"]:
            send("POST", "/reservations/%s/cancel" % bad_id, b"", statuses=[400, 404])
        for bad, field in [({"size": "XL", "minutes": 10}, "size"), ({"minutes": 10}, "size"),
                           ({"size": "S", "minutes": -1}, "minutes"),
                           ({"size": "S", "minutes": 0}, "minutes"),
                           ({"size": "S", "minutes": 2 ** 63}, "too big"),
                           ({"size": "S", "minutes": 1e30}, "minutes"),
                           ({"size": "S", "minutes": "10"}, "minutes"),
                           ({"size": "S", "minutes": 10, "payment": "maybe"}, "payment")]:
            send("POST", "/screen/rent", bad, field)
        for bad in [{}, {"code": 1}, {"code": None}]:
            send("POST", "/screen/pickup", bad, "code")
        for code in ["", "LF1", "LF1" + "A" * 200, "LF1////", "LF1\u00e9\u00e9", "../../etc/passwd"]:
            send("POST", "/screen/pickup", {"code": code}, statuses=[400, 403, 404])
        # a rejected pickup is recorded (PickupRejected: an audit trail, by design)
        before = status()
        for bad, field in [({}, "locker"), ({"locker": "ZZ"}, None), ({"locker": 1}, "locker")]:
            send("POST", "/hardware/door-open", bad, field, statuses=[400, 404])
        send("POST", "/hardware/payment-start", {"rental_id": "r", "amount_cents": -1},
             "amount_cents")
        send("POST", "/hardware/payment-start", {"rental_id": "r", "amount_cents": 2 ** 64},
             "too big")
        send("POST", "/hardware/%2E%2E", {}, statuses=[404])
        send("POST", "/hardware/a%00b", {}, statuses=[404])
        for q in ["?after=-1", "?after=x", "?limit=0", "?limit=99999999999999999999", "?after=1%00"]:
            send("GET", "/events" + q, statuses=[400])
        send("GET", "/events", tok="wrong", statuses=[401])
        send("PUT", "/config", {"version": 5, "config": {}}, tok=None, statuses=[401])
        send("GET", "/../ping", statuses=[400, 404])
        send("DELETE", "/config", statuses=[405])
        st, h, raw = lfraw.call(u.url, "GET", "/ping", b"", {"X-Big": "y" * 200000})
        assert st in (400, 413, 431) or st == 0, (st, raw[:200])
        assert status() == before
        st, b, _ = u.get("/ping")
        assert st == 200 and b["name"] == "bad-unit", (st, b)
        print("unit: %d bad requests, state unchanged %s" % (n, before))


if __name__ == "__main__":
    lfhub.run_tests([test_hub_matrix, test_unit_matrix])
