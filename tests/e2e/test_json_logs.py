"""JSON logs for log shippers: every line one JSON object with time, level,
component, message; a request's lines carry its request id, the unit it is
about and the log position it wrote; never a token or a booking code."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402


def test_json_log_fields(threads="2"):
    """In pool mode (the default) writes are answered on other threads than
    the one that writes the request's log line; see the thread-per-
    connection variant below."""
    with lfhub.Hub(extra_args=["--log-format", "json", "--http-threads", threads],
                   log_level="info") as hub:
        unit = hub.create_unit("logs-u1", lockers=[("A01", "S"), ("A02", "M")])
        user = hub.create_user("log-user")
        st, r, _ = hub.put("/v1/units/logs-u1/config?mode=queued", {"config": {"price": 3}},
                           token=hub.admin_token)
        assert st == 202, r
        pos = r["position"]
        now = time.time()
        t1 = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now + 3600))
        t2 = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(now + 7200))
        st, res, _ = hub.post("/v1/reservations", {"unit": "logs-u1", "size": "S", "from": t1,
                                                   "to": t2}, token=user["token"])
        assert st == 201, res
        st, conf, _ = hub.post("/v1/reservations/%s/confirm" % res["id"], None,
                               token=user["token"])
        assert st == 200 and conf.get("code"), conf
        time.sleep(0.5)
        with open(hub.stderr_path, encoding="utf-8") as f:
            lines = [l for l in f.read().splitlines() if l.strip()]
        assert lines, "no log lines"
        recs = []
        for l in lines:
            rec = json.loads(l)  # every line is one JSON object
            for k in ("time", "level", "component", "message"):
                assert k in rec, (k, rec)
            recs.append(rec)
        put = [r for r in recs if "PUT /v1/units/logs-u1/config" in r["message"]]
        assert put, "no request line for the config PUT"
        assert put[0].get("unit") == "logs-u1", put[0]
        assert put[0].get("position") == pos, (put[0], pos)
        assert len(put[0].get("request_id", "")) == 16, put[0]
        # the reservation's lines carry the positions their answers gave
        # (in pool mode those are answered from the store's commit thread)
        for what, ans in (("POST /v1/reservations ", res), ("/confirm ", conf)):
            line = [r for r in recs if r["component"] == "http" and what in r["message"]]
            assert line and line[0].get("position") == ans["position"], (what, line, ans)
        text = "\n".join(lines)
        for secret in (hub.admin_token, user["token"], unit["token"], conf["code"]):
            assert secret not in text, "a secret appears in the logs"


def test_json_log_fields_thread_per_connection():
    test_json_log_fields(threads="0")


if __name__ == "__main__":
    lfhub.run_tests([test_json_log_fields, test_json_log_fields_thread_per_connection])
