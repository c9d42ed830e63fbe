"""test_openapi.py — docs/openapi.yaml against the real tools and servers.

1. `redocly lint` (npm @redocly/cli) passes with no error and no warning.
2. Every route of the hub's route tables (src/hub/*.c, lf_route entries)
   and every endpoint of the unit's dispatcher (src/unit/unit_api.c) is
   an operation of the document.
3. A real hub and a real `lockerfleet unit` (poll presence, hub
   credential, booking key) are driven through every operation's success
   path and its main error paths; each exchange (status, content type, JSON
   body) is validated with ajv against the document's response schemas
   (tests/openapi/validate.mjs), which also fails if an operation of the
   document was never exercised or never answered its success status.

Needs node and tests/openapi/node_modules (scripts/setup.sh --all).
"""
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402
import lfunit  # noqa: E402

SRC = os.environ.get("LF_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
OA_DIR = os.path.join(SRC, "tests", "openapi")
DOC = os.path.join(SRC, "docs", "openapi.yaml")


def need_tools():
    if not os.path.isdir(os.path.join(OA_DIR, "node_modules", "@redocly")):
        raise AssertionError("tests/openapi/node_modules missing: run scripts/setup.sh --all")


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_redocly_lint():
    need_tools()
    p = subprocess.run([os.path.join(OA_DIR, "node_modules", ".bin", "redocly"), "lint",
                        "--format", "stylish", DOC], cwd=OA_DIR, capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, REDOCLY_TELEMETRY="off",
                                             REDOCLY_SUPPRESS_UPDATE_NOTICE="true"))
    out = p.stdout + p.stderr
    print(out.strip()[-2000:])
    assert p.returncode == 0, "redocly lint failed"
    assert not re.search(r"You have \d+ warning", out), "redocly lint reported warnings"


def code_routes():
    """(server, METHOD, /template) of every route in the code."""
    routes = []
    hub_dir = os.path.join(SRC, "src", "hub")
    for fn in sorted(os.listdir(hub_dir)):
        if not fn.endswith(".c"):
            continue
        text = open(os.path.join(hub_dir, fn)).read()
        for m, p in re.findall(r'\{\s*"(GET|POST|PUT|DELETE|PATCH)",\s*"(/[^"]*)"', text):
            tpl = re.sub(r":([a-z_]+)", r"{\1}", p)
            routes.append({"server": "hub", "method": m, "template": tpl, "where": fn})
    # The unit's dispatcher: `n == K && strcmp(s[0], "x") ...` followed by
    # method_is(req, resp, "M"); segment 1 is a parameter unless compared.
    text = open(os.path.join(SRC, "src", "unit", "unit_api.c")).read()
    body = text[text.index("void lf_unit_handle"):]
    for cond, m in re.findall(r"if \((n == \d[^\n]*?)\) \{\s*\n\s*if \(method_is\(req, resp, \"(\w+)\"",
                              body):
        n = int(re.search(r"n == (\d)", cond).group(1))
        segs = []
        for i in range(n):
            lit = re.search(r'strcmp\(s\[%d\], "([^"]+)"\)' % i, cond)
            segs.append(lit.group(1) if lit else ("{action}" if i == 1 and "hardware" in cond
                                                  else "{id}"))
        routes.append({"server": "unit", "method": m, "template": "/" + "/".join(segs),
                       "where": "unit_api.c"})
    return routes


class Recorder:
    def __init__(self):
        self.samples = []

    def call(self, server, base, method, path, body=None, token=None, headers=None,
             expect=None):
        st, resp, h = lfhub.request(method, base + path, body, token, headers)
        ctype = h.get("content-type", "")
        if "json" not in ctype:
            resp = None
        self.samples.append({"server": server, "method": method, "path": path, "status": st,
                             "content_type": ctype, "body": resp})
        if expect is not None:
            exp = expect if isinstance(expect, (list, tuple)) else [expect]
            assert st in exp, "%s %s: want %s, got %s %s" % (method, path, expect, st, resp)
        return st, resp, h

    def stream_headers(self, server, base, path, token, expect):
        """For text/event-stream: status and content type, then hang up."""
        host, port = base.split("//")[1].split(":")
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        c.request("GET", path, headers={"Authorization": "Bearer " + token})
        r = c.getresponse()
        ctype = r.getheader("content-type", "")
        body = None
        if "json" in ctype:
            body = json.loads(r.read())
        c.close()
        self.samples.append({"server": server, "method": "GET", "path": path,
                             "status": r.status, "content_type": ctype, "body": body})
        assert r.status == expect, "GET %s: want %s got %s" % (path, expect, r.status)


def exercise(rec, hub, unit_url, hub_token, key_hex):
    H = lambda *a, **kw: rec.call("hub", hub.url, *a, **kw)  # noqa: E731
    U = lambda *a, **kw: rec.call("unit", unit_url, *a, **kw)  # noqa: E731
    A = hub.admin_token
    now = datetime.now(timezone.utc)
    f, t = iso(now + timedelta(hours=1)), iso(now + timedelta(hours=3))

    # core
    H("GET", "/healthz", expect=200)
    H("POST", "/healthz", expect=405)
    H("GET", "/metrics", expect=200)
    H("PUT", "/metrics", expect=405)
    H("GET", "/", expect=200)
    H("POST", "/", expect=405)
    H("GET", "/app", expect=200)
    H("POST", "/app", expect=405)
    H("GET", "/assets/dashboard.js", expect=200)
    H("GET", "/assets/no-such.js", expect=404)
    H("GET", "/dashboard.css", expect=200)
    H("GET", "/no-such.txt", expect=404)

    # users
    st, alice, _ = H("POST", "/v1/users", {"name": "alice"}, A, expect=201)
    _, bob, _ = H("POST", "/v1/users", {"name": "bob"}, A, expect=201)
    H("POST", "/v1/users", {}, A, expect=400)
    H("POST", "/v1/users", "{not json", A, expect=400)
    H("POST", "/v1/users", {"name": "x"}, alice["token"], expect=403)
    H("POST", "/v1/users", {"name": "x"}, None, expect=401)
    H("POST", "/v1/users", {"name": "x"}, "wrong-token", expect=401)
    try:
        H("POST", "/v1/users", {"name": "x" * 70000}, A, expect=413)
    except OSError:
        pass  # the hub may close before the body is sent whole

    # units
    _, hb, _ = H("POST", "/v1/units", {"name": "u-hb", "presence": "heartbeat",
                                       "lockers": [{"id": "B01", "size": "S"}]}, A, expect=201)
    H("POST", "/v1/units", {"name": "u-hb", "lockers": [{"id": "B01", "size": "S"}]}, A,
      expect=409)
    H("POST", "/v1/units", {"name": "Bad Name", "lockers": []}, A, expect=400)
    H("GET", "/v1/units", token=A, expect=200)
    H("GET", "/v1/units?online=true&limit=10", token=A, expect=200)
    H("GET", "/v1/units?limit=0", token=A, expect=400)
    H("GET", "/v1/units", token=alice["token"], expect=403)
    H("GET", "/v1/units/u-poll", token=A, expect=200)
    H("GET", "/v1/units/u-nope", token=A, expect=404)
    H("GET", "/v1/alerts", token=A, expect=200)
    H("GET", "/v1/alerts?limit=0", token=A, expect=400)

    # fleet: config
    H("PUT", "/v1/units/u-poll/config?mode=live", {"config": {"price": 200}}, A, expect=200)
    H("PUT", "/v1/units/u-poll/config", {"config": {"price": 250}}, A, expect=202)
    H("PUT", "/v1/units/u-hb/config?mode=live", {"config": {"price": 1}}, A, expect=202)
    H("PUT", "/v1/units/u-poll/config?mode=later", {"config": {}}, A, expect=400)
    H("PUT", "/v1/units/u-poll/config", {"config": 5}, A, expect=400)
    H("PUT", "/v1/units/u-nope/config", {"config": {}}, A, expect=404)
    H("GET", "/v1/units/u-poll/config", token=A, expect=200)
    H("GET", "/v1/units/u-nope/config", token=A, expect=404)
    H("GET", "/v1/units/u-poll/config", token=alice["token"], expect=403)

    # fleet: heartbeat and push
    ut = hb["token"]
    H("POST", "/v1/units/u-hb/heartbeat", {"seq_head": 0, "config_version": 0}, ut, expect=200)
    H("POST", "/v1/units/u-hb/heartbeat", {"seq_head": -1}, ut, expect=400)
    H("POST", "/v1/units/u-poll/heartbeat", {}, ut, expect=403)
    H("POST", "/v1/units/u-hb/heartbeat", {}, None, expect=401)
    ev = lambda seq: {"seq": seq, "id": str(uuid.uuid4()), "type": "DoorOpened",  # noqa: E731
                      "time": iso(datetime.now(timezone.utc)), "data": {"locker": "B01"}}
    H("POST", "/v1/units/u-hb/events", {"events": [ev(1), ev(2)]}, ut, expect=200)
    H("POST", "/v1/units/u-hb/events", {"events": [ev(9)]}, ut, expect=409)
    H("POST", "/v1/units/u-hb/events", {"events": [{"seq": "x"}]}, ut, expect=400)
    H("POST", "/v1/units/u-poll/events", {"events": [ev(1)]}, ut, expect=403)

    # log and projections
    H("GET", "/v1/events?limit=5", token=A, expect=200)
    H("GET", "/v1/events?stream=unitlog-u-hb", token=A, expect=200)
    H("GET", "/v1/events?limit=0", token=A, expect=400)
    H("GET", "/v1/events", token=alice["token"], expect=403)
    rec.stream_headers("hub", hub.url, "/v1/events/live?after=0", A, 200)
    rec.stream_headers("hub", hub.url, "/v1/events/live?after=x", A, 400)
    H("GET", "/v1/cluster", token=A, expect=200)
    H("GET", "/v1/cluster", token=alice["token"], expect=403)
    H("GET", "/v1/projections", token=A, expect=200)
    H("GET", "/v1/projections?digest=1", token=A, expect=200)
    H("POST", "/v1/projections/revenue/rebuild", token=A, expect=(202, 409))
    H("POST", "/v1/projections/nope/rebuild", token=A, expect=404)

    # reservations
    U_ = alice["token"]
    q = "/v1/availability?unit=u-poll&size=S&from=%s&to=%s" % (f, t)
    H("GET", q, token=U_, expect=200)
    H("GET", q, token=A, expect=200)
    H("GET", "/v1/availability?unit=u-poll&from=%s&to=%s" % (f, t), token=U_, expect=400)
    H("GET", "/v1/availability?unit=u-nope&size=S&from=%s&to=%s" % (f, t), token=U_, expect=404)
    H("GET", q, token=ut, expect=403)
    body = {"unit": "u-poll", "size": "S", "from": f, "to": t}
    _, r1, _ = H("POST", "/v1/reservations", body, U_, headers={"Idempotency-Key": "k1"},
                 expect=201)
    H("POST", "/v1/reservations", body, U_, headers={"Idempotency-Key": "k1"}, expect=201)
    H("POST", "/v1/reservations", dict(body, size="M"), U_, headers={"Idempotency-Key": "k1"},
      expect=409)
    H("POST", "/v1/reservations", dict(body, unit="u-nope"), U_, expect=404)
    H("POST", "/v1/reservations", dict(body, size="XL"), U_, expect=400)
    H("POST", "/v1/reservations", body, A, expect=403)
    H("POST", "/v1/reservations", {"unit": "u-hb", "size": "S", "from": f, "to": t}, U_,
      expect=201)
    H("POST", "/v1/reservations", {"unit": "u-hb", "size": "S", "from": f, "to": t}, U_,
      expect=409)
    rid = r1["id"]
    H("POST", "/v1/reservations/%s/confirm" % rid, token=U_, expect=200)
    H("POST", "/v1/reservations/%s/confirm" % rid, token=U_, expect=200)
    H("POST", "/v1/reservations/%s/confirm" % rid, token=bob["token"], expect=404)
    _, r2, _ = H("POST", "/v1/reservations", dict(body, size="M"), U_, expect=201)
    H("POST", "/v1/reservations/%s/cancel" % r2["id"], token=U_, expect=200)
    H("POST", "/v1/reservations/%s/cancel" % r2["id"], token=U_, expect=409)
    H("POST", "/v1/reservations/%s/confirm" % r2["id"], token=U_, expect=409)
    H("POST", "/v1/reservations/%s/cancel" % str(uuid.uuid4()), token=U_, expect=404)
    _, r3, _ = H("POST", "/v1/reservations", dict(body, size="L"), U_, expect=201)
    time.sleep(2.5)  # --hold-seconds 2
    H("POST", "/v1/reservations/%s/confirm" % r3["id"], token=U_, expect=409)
    _, w, _ = H("POST", "/v1/reservations/%s/cancel" % rid, token=U_, expect=200)
    H("GET", "/v1/reservations/%s?min_position=%d" % (rid, w["position"]), token=U_, expect=200)
    H("GET", "/v1/reservations/%s" % rid, token=A, expect=200)
    H("GET", "/v1/reservations/%s" % rid, token=bob["token"], expect=404)
    H("GET", "/v1/reservations/%s?min_position=99999999" % rid, token=U_, expect=503)
    H("GET", "/v1/reservations?limit=10", token=U_, expect=200)
    H("GET", "/v1/reservations?user=%s" % alice["user_id"], token=A, expect=200)
    H("GET", "/v1/reservations?limit=0", token=U_, expect=400)
    H("GET", "/v1/reservations", token=None, expect=401)
    # a confirmed one read back carries its code
    _, r4, _ = H("POST", "/v1/reservations", dict(body, size="M"), U_, expect=201)
    _, c4, _ = H("POST", "/v1/reservations/%s/confirm" % r4["id"], token=U_, expect=200)
    _, g4, _ = H("GET", "/v1/reservations/%s?min_position=%d" % (r4["id"], c4["position"]),
                 token=U_, expect=200)
    assert g4.get("code") == c4["code"], g4

    # the unit's own API
    U("GET", "/ping", expect=200)
    U("POST", "/ping", expect=405)
    _, ust, _ = U("GET", "/status", token=hub_token, expect=200)
    U("GET", "/status", expect=401)
    U("PUT", "/config", {"version": 7, "config": {"a": 1}}, hub_token, expect=200)
    U("PUT", "/config", {"version": 0, "config": {}}, hub_token, expect=400)
    U("PUT", "/config", {"version": 8, "config": {}}, "nope", expect=401)
    U("GET", "/events?after=%d&limit=10" % ust["pruned_seq"], token=hub_token, expect=200)
    if ust["pruned_seq"] > 0:
        U("GET", "/events?after=0", token=hub_token, expect=410)
    U("GET", "/events?limit=0", token=hub_token, expect=400)
    U("POST", "/events", token=hub_token, expect=405)
    later_f, later_t = iso(now + timedelta(days=2)), iso(now + timedelta(days=2, hours=1))
    xid = str(uuid.uuid4())
    U("POST", "/reservations", {"id": xid, "locker": "A03", "from": later_f, "to": later_t},
      hub_token, expect=200)
    U("POST", "/reservations", {"id": str(uuid.uuid4()), "locker": "A03", "from": later_f,
                                "to": later_t}, hub_token, expect=409)
    U("POST", "/reservations", {"id": str(uuid.uuid4()), "locker": "Z99", "from": later_f,
                                "to": later_t}, hub_token, expect=409)
    U("POST", "/reservations", {"id": "not-a-uuid", "locker": "A03", "from": later_f,
                                "to": later_t}, hub_token, expect=400)
    U("POST", "/reservations/%s/cancel" % xid, token=hub_token, expect=200)
    U("POST", "/reservations/not-a-uuid/cancel", token=hub_token, expect=400)
    _, rent, _ = U("POST", "/screen/rent", {"size": "L", "minutes": 30}, expect=200)
    U("POST", "/screen/rent", {"size": "L", "minutes": 30}, expect=409)
    U("POST", "/screen/rent", {"size": "M", "minutes": 30, "payment": "fail"}, expect=402)
    U("POST", "/screen/rent", {"size": "XL", "minutes": 30}, expect=400)
    U("POST", "/screen/pickup", {"code": rent["code"]}, expect=200)
    U("POST", "/screen/pickup", {"code": "000000"}, expect=403)
    U("POST", "/screen/pickup", {}, expect=400)
    U("POST", "/hardware/door-close", {"locker": rent["locker"]}, expect=200)
    U("POST", "/hardware/door-open", {"locker": "Z99"}, expect=404)
    U("POST", "/hardware/error", {"component": "printer", "message": "jam"}, expect=200)
    U("POST", "/hardware/payment-start", {"rental_id": rent["rental_id"], "amount_cents": 100},
      expect=200)
    U("POST", "/hardware/payment-success", {"rental_id": rent["rental_id"], "amount_cents": 100},
      expect=200)
    U("POST", "/hardware/payment-fail", {"rental_id": rent["rental_id"]}, expect=200)
    U("POST", "/hardware/online", {"component": "printer"}, expect=200)
    U("POST", "/hardware/offline", {"component": "printer"}, expect=200)
    U("POST", "/hardware/teleport", {}, expect=404)
    U("GET", "/hardware/door-open", expect=405)


def test_responses_match_the_document():
    need_tools()
    rec = Recorder()
    with lfhub.Hub(["--ping-interval", "1", "--ping-timeout", "1", "--hold-seconds", "2",
                    "--body-max", "65536", "--retry-schedule", "1"]) as hub:
        port = lfhub.free_port()
        unit_url = "http://127.0.0.1:%d" % port
        st, reg, _ = hub.admin("POST", "/v1/units", {
            "name": "u-poll", "presence": "poll", "url": unit_url,
            "lockers": [{"id": "A01", "size": "S"}, {"id": "A02", "size": "M"},
                        {"id": "A03", "size": "L"}, {"id": "A04", "size": "M"}]})
        assert st == 201, reg
        rec.samples.append({"server": "hub", "method": "POST", "path": "/v1/units", "status": st,
                            "content_type": "application/json", "body": reg})
        unit = lfunit.Proc(["unit", "--name", "u-poll", "--listen", "127.0.0.1:%d" % port,
                            "--hub", hub.url, "--token", reg["token"], "--hub-token",
                            reg["hub_token"], "--booking-key", reg["booking_key"],
                            "--lockers", "A01:S,A02:M,A03:L,A04:M", "--log-level", "warn"],
                           name="unit-u-poll")
        unit.base_args += ["--data", os.path.join(unit.data_dir, "unit")]
        with unit:
            unit.start()
            hub.wait_for(lambda: hub.admin("GET", "/v1/units/u-poll")[1].get("online"),
                         what="u-poll online")
            exercise(rec, hub, unit.url, reg["hub_token"], reg["booking_key"])
    fd, path = tempfile.mkstemp(prefix="lf-openapi-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump({"routes": code_routes(), "samples": rec.samples}, fh)
    try:
        p = subprocess.run(["node", os.path.join(OA_DIR, "validate.mjs"), DOC, path], cwd=OA_DIR,
                           capture_output=True, text=True, timeout=300)
    finally:
        os.unlink(path)
    print(p.stdout.strip()[-6000:])
    if p.stderr.strip():
        print(p.stderr.strip()[-3000:])
    assert p.returncode == 0, "responses do not match docs/openapi.yaml"


if __name__ == "__main__":
    lfhub.run_tests([test_redocly_lint, test_responses_match_the_document])
