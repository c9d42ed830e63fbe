"""End-to-end tests of the hub core: auth and error contract, users and
units, the log over HTTP (paged and SSE), projections (min_position,
rebuild over HTTP and offline, kill -9 during a rebuild), metrics, assets,
graceful stop. Each test starts its own hub (lfhub.py)."""
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402


def err_code(body):
    return body["error"]["code"] if isinstance(body, dict) and "error" in body else None


def test_health_metrics_assets():
    with lfhub.Hub() as hub:
        st, body, _ = hub.get("/healthz")
        assert st == 200 and body["status"] == "ok", body
        st, text, h = hub.get("/metrics")
        assert st == 200 and h["content-type"].startswith("text/plain"), h
        for name in ("lockerfleet_http_requests_total", "lockerfleet_log_position",
                     "lockerfleet_projection_position", "lockerfleet_projection_lag",
                     "lockerfleet_http_request_duration_seconds_bucket",
                     "lockerfleet_events_appended_total"):
            assert name in text, name
        # Every sample line belongs to a family declared by a TYPE line.
        types = {l.split()[2] for l in text.splitlines() if l.startswith("# TYPE")}
        for l in text.splitlines():
            if l and not l.startswith("#"):
                metric = l.split("{")[0].split()[0]
                base = metric
                for suf in ("_bucket", "_sum", "_count"):
                    if metric.endswith(suf) and metric[: -len(suf)] in types:
                        base = metric[: -len(suf)]
                assert base in types, l
        st, page, h = hub.get("/")
        assert st == 200 and "text/html" in h["content-type"] and "<html" in page.lower()
        st, body, _ = hub.get("/assets/no-such-file.js")
        assert st == 404 and err_code(body) == "not_found"


def test_auth_and_errors():
    with lfhub.Hub(extra_args=["--body-max", "4096"]) as hub:
        # 401: no token, unknown token
        st, body, h = hub.get("/v1/units")
        assert st == 401 and err_code(body) == "unauthorized", body
        st, body, _ = hub.get("/v1/units", token="nope" * 10)
        assert st == 401
        # 403: a user's and a unit's token on an admin endpoint
        user = hub.create_user("bob")
        st, body, _ = hub.get("/v1/units", token=user["token"])
        assert st == 403 and err_code(body) == "forbidden", body
        unit = hub.create_unit("u-auth")
        st, body, _ = hub.post("/v1/users", {"name": "x"}, token=unit["token"])
        assert st == 403
        # 404 unknown path, 405 wrong method with Allow
        st, body, _ = hub.admin("GET", "/v1/nothing-here")
        assert st == 404 and err_code(body) == "not_found"
        st, body, h = hub.admin("DELETE", "/v1/units")
        assert st == 405 and "GET" in h["allow"] and "POST" in h["allow"], h
        # 413 over the body limit, answered before the handler runs
        st, body, _ = hub.admin("POST", "/v1/users", {"name": "x" * 10000})
        assert st == 413 and err_code(body) == "body_too_large", body
        # 400: malformed JSON, missing/invalid fields named
        st, body, _ = hub.admin("POST", "/v1/users", "{not json")
        assert st == 400 and err_code(body) == "invalid_json"
        st, body, _ = hub.admin("POST", "/v1/users", {})
        assert st == 400 and "'name'" in body["error"]["message"]
        # bad query parameters are named
        st, body, _ = hub.admin("GET", "/v1/events?limit=0")
        assert st == 400 and "limit" in body["error"]["message"]
        st, body, _ = hub.admin("GET", "/v1/units?online=maybe")
        assert st == 400 and "online" in body["error"]["message"]
        st, body, _ = hub.admin("GET", "/v1/units?min_position=-3")
        assert st == 400 and "min_position" in body["error"]["message"]
        # the request log never carries a token
        hub.terminate()
        assert user["token"] not in hub.stderr_tail(10 ** 6)
        assert lfhub.ADMIN_TOKEN not in hub.stderr_tail(10 ** 6)


def test_users_and_units():
    with lfhub.Hub(extra_args=["--shard-digits", "2"]) as hub:
        st, u, _ = hub.admin("POST", "/v1/users", {"name": "alice"})
        assert st == 201 and u["user_id"] and len(u["token"]) == 64 and u["position"] >= 1
        unit = hub.create_unit("locker-1", lockers=[("A01", "S"), ("A02", "S"), ("B01", "L")],
                               display_name="Main station")
        assert unit["name"] == "locker-1" and len(unit["shard"]) == 2
        assert len(unit["token"]) == 64 and len(unit["booking_key"]) == 64
        pos = unit["position"]
        # duplicate -> 409, nothing written
        st, body, _ = hub.admin("POST", "/v1/units", {"name": "locker-1",
                                                     "lockers": [{"id": "A", "size": "S"}]})
        assert st == 409 and err_code(body) == "exists"
        bad = [
            ({"name": "Bad_Name", "lockers": [{"id": "A", "size": "S"}]}, "'name'"),
            ({"name": "x" * 65, "lockers": [{"id": "A", "size": "S"}]}, "'name'"),
            ({"name": "ok", "lockers": []}, "'lockers'"),
            ({"name": "ok", "lockers": [{"id": "A", "size": "S"}, {"id": "B", "size": "XL"}]},
             "'lockers[1].size'"),
            ({"name": "ok", "lockers": [{"id": "A", "size": "S"}, {"id": "A", "size": "S"}]},
             "'lockers[1].id'"),
            ({"name": "ok", "presence": "poll", "lockers": [{"id": "A", "size": "S"}]}, "'url'"),
            ({"name": "ok", "url": "ftp://x", "lockers": [{"id": "A", "size": "S"}]}, "'url'"),
            ({"name": "ok", "lockers": [{"id": "A", "size": "S"}], "allotment": ["Z"]},
             "'allotment[0]'"),
        ]
        for req, field in bad:
            st, body, _ = hub.admin("POST", "/v1/units", req)
            assert st == 400 and field in body["error"]["message"], (req, body)
        st, ev, _ = hub.admin("GET", "/v1/events?after=%d" % pos)
        assert ev["events"] == [], "a rejected request wrote events"
        for i in range(5):
            hub.create_unit("unit-%d" % i)
        head = hub.events(after=0, limit=1000)["head"]
        # read-your-writes: min_position waits for the projection
        st, body, _ = hub.admin("GET", "/v1/units?min_position=%d" % head)
        assert st == 200, body
        names = [x["name"] for x in body["units"]]
        assert names == sorted(names) and len(names) == 6
        row = [x for x in body["units"] if x["name"] == "locker-1"][0]
        assert row["display_name"] == "Main station" and row["lockers"]["count"] == 3
        assert row["lockers"]["S"] == 2 and row["lockers"]["L"] == 1
        assert row["online"] is False and row["last_response_ms"] is None
        assert row["shard"] == unit["shard"]
        for k in ("last_config_pushed_at", "config_version", "last_online_at", "offline_reason"):
            assert k in row, k
        # paging
        st, p1, _ = hub.admin("GET", "/v1/units?limit=4")
        assert len(p1["units"]) == 4 and p1["next"] == p1["units"][-1]["name"]
        st, p2, _ = hub.admin("GET", "/v1/units?limit=4&after=" + p1["next"])
        assert len(p2["units"]) == 2 and p2["next"] is None
        assert [x["name"] for x in p1["units"] + p2["units"]] == names
        # filters: shard, online (live state; nobody has reported in)
        st, f, _ = hub.admin("GET", "/v1/units?shard=" + unit["shard"])
        assert "locker-1" in [x["name"] for x in f["units"]]
        assert all(x["shard"] == unit["shard"] for x in f["units"])
        st, f, _ = hub.admin("GET", "/v1/units?online=true")
        assert f["units"] == []
        st, f, _ = hub.admin("GET", "/v1/units?online=false")
        assert len(f["units"]) == 6
        # one unit
        st, one, _ = hub.admin("GET", "/v1/units/locker-1")
        assert st == 200 and [l["id"] for l in one["locker_list"]] == ["A01", "A02", "B01"]
        assert "config" in one and one["config"]["desired_version"] == 0
        st, body, _ = hub.admin("GET", "/v1/units/nope")
        assert st == 404
        # the unit's token authenticates as that unit (not admin)
        st, _, _ = hub.get("/v1/units/locker-1", token=unit["token"])
        assert st == 403
        # a min_position the log never reaches: bounded wait, then 503
        t0 = time.time()
        st, body, _ = hub.admin("GET", "/v1/units?min_position=%d" % (head + 1000))
        assert st == 503 and err_code(body) == "projection_lagging", body
        assert time.time() - t0 < 30
        # restart: users, units and tokens survive (rebuilt from the log)
        hub.restart()
        st, _, _ = hub.get("/v1/units", token=u["token"])
        assert st == 403  # known user, wrong role -> still recognised after restart
        st, body, _ = hub.admin("GET", "/v1/units")
        assert len(body["units"]) == 6


def test_events_paging_and_stream():
    with lfhub.Hub() as hub:
        for i in range(3):
            hub.create_unit("ev-%d" % i)
        all_ = hub.events(after=0, limit=10)
        pos = [e["position"] for e in all_["events"]]
        assert pos[:3] == [1, 2, 3] and pos == sorted(pos), pos
        e = all_["events"][0]
        for k in ("position", "stream", "version", "id", "type", "time", "data", "meta"):
            assert k in e, k
        assert "token_hash" in e["data"] and "token" not in e["data"]
        page = hub.events(after=1, limit=1)
        assert [e["position"] for e in page["events"]] == [2] and page["last_position"] == 2
        s = hub.events(after=0, stream="unit-ev-2")
        assert s["events"][0]["stream"] == "unit-ev-2" and s["events"][0]["version"] == 1
        assert all(e["stream"] == "unit-ev-2" for e in s["events"])
        p = s["events"][0]["position"]
        s = hub.events(after=p, stream="unit-ev-2")
        assert all(e["position"] > p for e in s["events"])


class SSEReader:
    """Reads a text/event-stream in a thread, collecting messages."""

    def __init__(self, url, token, last_event_id=None):
        headers = {"Authorization": "Bearer " + token}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                           timeout=60)
        self.headers = self.resp.headers
        self.messages = []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        cur = {}
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\n")
                if line == "":
                    if "id" in cur:
                        self.messages.append(cur)
                    cur = {}
                elif line.startswith(":"):
                    continue
                else:
                    k, _, v = line.partition(": ")
                    cur[k] = v
        except Exception:
            pass

    def close(self):
        # Shut the socket down first: close() alone would wait for the
        # reader thread, blocked until the next keepalive (15 s).
        try:
            self.resp.fp.raw._sock.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass
        self.t.join(10)
        self.resp.close()


def test_sse_live_and_resume():
    # Other modules (fleet) may append events of their own, so positions
    # are checked relative to each other, and our events by stream.
    def regs(msgs):
        return [m for m in msgs if m.get("event") == "UnitRegistered"]

    with lfhub.Hub() as hub:
        hub.create_unit("sse-0")
        r = SSEReader(hub.url + "/v1/events/live?after=0", hub.admin_token)
        assert r.headers["Content-Type"].startswith("text/event-stream")
        hub.create_unit("sse-1")
        hub.create_unit("sse-2")
        hub.wait_for(lambda: len(regs(r.messages)) >= 3, timeout=30, what="3 SSE messages")
        ids = [int(m["id"]) for m in r.messages]
        assert ids == sorted(set(ids)) and ids[0] == 1, ids
        got = regs(r.messages)
        assert ['"unit-sse-%d"' % i in m["data"] for i, m in enumerate(got[:3])] == [True] * 3
        p1, p2 = int(got[1]["id"]), int(got[2]["id"])
        r.close()
        # resume with ?after= and with Last-Event-ID (which wins)
        r2 = SSEReader(hub.url + "/v1/events/live?after=%d" % p1, hub.admin_token)
        hub.wait_for(lambda: r2.messages, timeout=30, what="resumed SSE")
        assert int(r2.messages[0]["id"]) == p1 + 1
        r2.close()
        r3 = SSEReader(hub.url + "/v1/events/live?after=0", hub.admin_token, last_event_id=p1)
        hub.wait_for(lambda: r3.messages, timeout=30, what="Last-Event-ID resume")
        assert int(r3.messages[0]["id"]) == p1 + 1
        assert p2 in [int(m["id"]) for m in r3.messages] or p2 > p1
        r3.close()
        # no position: live events only
        head = hub.events()["head"]
        r4 = SSEReader(hub.url + "/v1/events/live", hub.admin_token)
        time.sleep(0.5)
        hub.create_unit("sse-3")
        hub.wait_for(lambda: regs(r4.messages), timeout=30, what="live-only SSE")
        assert all(int(m["id"]) > head for m in r4.messages), (head, r4.messages)
        assert '"unit-sse-3"' in regs(r4.messages)[0]["data"]
        r4.close()
        st, body, _ = hub.admin("GET", "/v1/events/live?after=x")
        assert st == 400
        # SIGTERM with an open stream: graceful exit 0
        r5 = SSEReader(hub.url + "/v1/events/live", hub.admin_token)
        assert hub.terminate(timeout=60) == 0
        r5.close()


def projections(hub, digest=False):
    st, body, _ = hub.admin("GET", "/v1/projections" + ("?digest=1" if digest else ""))
    assert st == 200, body
    return {p["name"]: p for p in body}


def fill(hub, n_units=20, n_users=20):
    for i in range(n_units):
        hub.create_unit("p-%03d" % i, lockers=[("A%02d" % j, "SML"[j % 3]) for j in range(5)])
    for i in range(n_users):
        hub.create_user("user-%d" % i)


def wait_rebuilt(hub, name, gen_before, timeout=120):
    def done():
        p = projections(hub)[name]
        return p if p["generation"] > gen_before and p["state"] == "live" else None
    return hub.wait_for(done, timeout=timeout, interval=0.2, what="rebuild of " + name)


def test_projection_rebuild_http():
    with lfhub.Hub() as hub:
        fill(hub)
        head = hub.events()["head"]
        hub.admin("GET", "/v1/units?min_position=%d" % head)
        # min_position waited for `units`; the others catch up on their own
        # (a live projection pauses up to 25 ms between batches)
        hub.wait_for(lambda: all(projections(hub)[n]["lag"] == 0 for n in ("alerts", "revenue")),
                     timeout=10, interval=0.05, what="alerts and revenue at the head")
        before = projections(hub, digest=True)
        for name in ("units", "alerts", "revenue"):
            assert before[name]["state"] == "live" and before[name]["lag"] == 0
            st, body, _ = hub.admin("POST", "/v1/projections/%s/rebuild" % name)
            assert st == 202 and body["name"] == name
            wait_rebuilt(hub, name, before[name]["generation"])
        after = projections(hub, digest=True)
        for name in ("units", "alerts", "revenue"):
            assert after[name]["digest"] == before[name]["digest"], name
            assert after[name]["position"] >= before[name]["position"]
        st, body, _ = hub.admin("POST", "/v1/projections/nope/rebuild")
        assert st == 404
        st, body, _ = hub.admin("GET", "/v1/units?min_position=%d" % head)
        assert st == 200 and len(body["units"]) == 20


def test_rebuild_killed_resumes():
    slow = {"LF_TEST_REBUILD_DELAY_MS": "150"}  # 50 events per committed step
    with lfhub.Hub(env=slow, log_level="info") as hub:
        fill(hub, n_units=60, n_users=300)
        head = hub.events()["head"]
        hub.admin("GET", "/v1/units?min_position=%d" % head)
        before = projections(hub, digest=True)["units"]
        st, _, _ = hub.admin("POST", "/v1/projections/units/rebuild")
        assert st == 202
        hub.wait_for(lambda: projections(hub)["units"].get("rebuild", {}).get("position", 0) > 0,
                     timeout=60, interval=0.05, what="rebuild progress")
        p = projections(hub)["units"]
        assert p["rebuild"]["position"] < head, "rebuild finished before the kill"
        hub.kill()
        hub.restart(env=slow)
        p = projections(hub)["units"]
        assert p["generation"] == before["generation"], "the old file serves until the swap"
        wait_rebuilt(hub, "units", before["generation"])
        assert "resuming an interrupted rebuild" in hub.stderr_tail(10 ** 6)
        after = projections(hub, digest=True)["units"]
        assert after["digest"] == before["digest"]


def test_offline_rebuild_cli():
    with lfhub.Hub() as hub:
        fill(hub, n_units=10, n_users=5)
        head = hub.events()["head"]
        hub.admin("GET", "/v1/units?min_position=%d" % head)
        before = projections(hub, digest=True)
        assert hub.terminate() == 0
        for name in ("units", "alerts", "revenue"):
            out = subprocess.run([lfhub.LF_BIN, "rebuild", "--data", hub.data_dir, name],
                                 capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, out.stderr
            assert "digest " + before[name]["digest"] in out.stdout, (out.stdout, before[name])
            assert "events/s" in out.stdout
        out = subprocess.run([lfhub.LF_BIN, "rebuild", "--data", hub.data_dir, "nope"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2
        hub.start()
        after = projections(hub, digest=True)
        for name in ("units", "alerts", "revenue"):
            assert after[name]["digest"] == before[name]["digest"]
            assert after[name]["generation"] == before[name]["generation"] + 1
        st, body, _ = hub.admin("GET", "/v1/units")
        assert len(body["units"]) == 10


def test_generated_admin_token():
    hub = lfhub.Hub(admin_token=None, start=False)
    try:
        hub.start()
        lines = [l for l in hub.output if l.startswith("admin token: ")]
        assert len(lines) == 1, hub.output
        tok = lines[0].split(": ", 1)[1]
        assert oct(os.stat(os.path.join(hub.data_dir, "admin.token")).st_mode & 0o777) == "0o600"
        st, _, _ = hub.get("/v1/units", token=tok)
        assert st == 200
        hub.restart()
        assert not [l for l in hub.output if l.startswith("admin token: ")], "printed twice"
        st, _, _ = hub.get("/v1/units", token=tok)
        assert st == 200
    finally:
        hub.cleanup()


if __name__ == "__main__":
    lfhub.run_tests([
        test_health_metrics_assets,
        test_auth_and_errors,
        test_users_and_units,
        test_events_paging_and_stream,
        test_sse_live_and_resume,
        test_projection_rebuild_http,
        test_rebuild_killed_resumes,
        test_offline_rebuild_cli,
        test_generated_admin_token,
    ])
