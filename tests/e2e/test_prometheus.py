"""test_prometheus.py — the hub's metrics checked by Prometheus itself.

1. /metrics of a hub with traffic passes `promtool check metrics`.
2. contrib/prometheus/alerts.yml passes `promtool check rules` and its unit
   tests (`promtool test rules alerts_test.yml`).
3. A real Prometheus server (Debian's package) on a free loopback port,
   with its own temp dir as --storage.tsdb.path and a 1 s scrape interval,
   scrapes a running hub with a `lockerfleet sim` of a few units (poll
   presence) and loads alerts.yml; its HTTP API must answer `up == 1` for
   the hub, `lockerfleet_units{state="online"}` equal to the sim's units,
   and report every alerting rule healthy; every query of
   contrib/grafana/lockerfleet.json evaluates. Stopped by PID.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402

SRC = os.environ.get("LF_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
PROM_DIR = os.path.join(SRC, "contrib", "prometheus")
UNITS = 4


def tool(name):
    path = shutil.which(name)
    assert path, "%s not found: scripts/setup.sh --all installs Debian's prometheus" % name
    return path


def run(args, **kw):
    p = subprocess.run(args, capture_output=True, text=True, timeout=120, **kw)
    out = (p.stdout + p.stderr).strip()
    print("$ %s\n%s" % (" ".join(os.path.basename(a) if i == 0 else a
                                 for i, a in enumerate(args)), out))
    return p.returncode, out


def test_promtool_check_metrics():
    with lfhub.Hub() as hub:
        user = hub.create_user("m")
        hub.create_unit("m-1")
        hub.get("/v1/units", token=hub.admin_token)
        hub.get("/v1/units", token=user["token"])  # 403, a labelled series
        hub.get("/no-such")
        st, text, _ = hub.get("/metrics")
        assert st == 200
        for name in ("lockerfleet_http_requests_total", "lockerfleet_units",
                     "lockerfleet_projection_lag", "lockerfleet_data_fs_avail_bytes",
                     "lockerfleet_build_info"):
            assert "\n" + name in "\n" + text, name + " missing from /metrics"
        p = subprocess.run([tool("promtool"), "check", "metrics"], input=text,
                           capture_output=True, text=True, timeout=60)
        out = (p.stdout + p.stderr).strip()
        print("promtool check metrics: rc=%d %s" % (p.returncode, out or "(no findings)"))
        assert p.returncode == 0 and not out, "promtool check metrics: " + out


def test_promtool_rules():
    rc, out = run([tool("promtool"), "check", "rules", os.path.join(PROM_DIR, "alerts.yml")])
    assert rc == 0, out
    rc, out = run([tool("promtool"), "test", "rules", "alerts_test.yml"], cwd=PROM_DIR)
    assert rc == 0 and "SUCCESS" in out, out


class Sim:
    def __init__(self, hub, units):
        self.dir = tempfile.mkdtemp(prefix="lf-e2e-psim-")
        self.log = open(os.path.join(self.dir, "sim.log"), "ab")
        self.ready = threading.Event()
        self.proc = subprocess.Popen(
            [lfhub.LF_BIN, "sim", "--hub", hub.url, "--admin-token", hub.admin_token,
             "--units", str(units), "--listen", "127.0.0.1:%d" % lfhub.free_port(),
             "--data", self.dir, "--seed", "3", "--presence", "poll",
             "--log-level", "warn"], stdout=subprocess.PIPE, stderr=self.log, text=True)

        def reader():
            for line in self.proc.stdout:
                if "units registered" in line:
                    self.ready.set()
            self.ready.set()

        threading.Thread(target=reader, daemon=True).start()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def prom_query(base, expr):
    st, body, _ = lfhub.request("GET", base + "/api/v1/query?query=" + urllib.parse.quote(expr))
    assert st == 200 and body.get("status") == "success", (expr, st, body)
    return body["data"]["result"]


def test_real_prometheus_scrapes_hub_and_sim():
    prom = tool("prometheus")
    tmp = tempfile.mkdtemp(prefix="lf-e2e-prom-")
    proc = None
    sim = None
    try:
        with lfhub.Hub(["--ping-interval", "1", "--ping-timeout", "1"]) as hub:
            sim = Sim(hub, UNITS)
            assert sim.ready.wait(60), "sim did not register its units"
            hub.wait_for(lambda: len(hub.admin("GET", "/v1/units?online=true")[1]
                                     .get("units", [])) == UNITS, timeout=60,
                         what="all sim units online")
            port = lfhub.free_port()
            shutil.copy(os.path.join(PROM_DIR, "alerts.yml"), os.path.join(tmp, "alerts.yml"))
            with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
                f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                        "rule_files: [alerts.yml]\n"
                        "scrape_configs:\n  - job_name: lockerfleet-hub\n"
                        "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % hub.port)
            rc, out = run([tool("promtool"), "check", "config",
                           os.path.join(tmp, "prometheus.yml")])
            assert rc == 0, out
            log = open(os.path.join(tmp, "prometheus.log"), "ab")
            proc = subprocess.Popen(
                [prom, "--config.file=" + os.path.join(tmp, "prometheus.yml"),
                 "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                 "--web.listen-address=127.0.0.1:%d" % port,
                 "--web.console.templates=" + tmp, "--web.console.libraries=" + tmp],
                stdout=log, stderr=log)
            base = "http://127.0.0.1:%d" % port

            def ready():
                try:
                    return lfhub.request("GET", base + "/-/ready", timeout=2)[0] == 200
                except OSError:
                    return False

            hub.wait_for(ready, timeout=60, what="prometheus ready")
            up = hub.wait_for(lambda: [r for r in prom_query(base, 'up{job="lockerfleet-hub"} == 1')],
                              timeout=60, what="up == 1")
            print("up == 1:", json.dumps(up))
            online = hub.wait_for(
                lambda: [r for r in prom_query(base, 'lockerfleet_units{state="online"}')
                         if float(r["value"][1]) == UNITS],
                timeout=60, what='lockerfleet_units{state="online"} == %d' % UNITS)
            print('lockerfleet_units{state="online"}:', json.dumps(online))
            # every query of the Grafana dashboard is valid PromQL here
            with open(os.path.join(SRC, "contrib", "grafana", "lockerfleet.json")) as f:
                dash = json.load(f)
            exprs = [t["expr"] for pnl in dash["panels"] for t in pnl["targets"]]
            for e in exprs:
                prom_query(base, e.replace("$instance", ".*").replace("$__rate_interval", "5s"))
            print("grafana: %d queries evaluated" % len(exprs))
            st, rules, _ = lfhub.request("GET", base + "/api/v1/rules")
            assert st == 200, rules
            names = [(r["name"], r["health"]) for g in rules["data"]["groups"]
                     for r in g["rules"]]
            print("rules:", names)
            assert len(names) >= 7 and all(h in ("ok", "unknown") for _, h in names), names
            # evaluated at least once, and healthy
            hub.wait_for(lambda: all(r["health"] == "ok" for g in lfhub.request(
                "GET", base + "/api/v1/rules")[1]["data"]["groups"] for r in g["rules"]),
                timeout=30, what="rules evaluated ok")
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if sim:
            sim.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    lfhub.run_tests([test_promtool_check_metrics, test_promtool_rules,
                     test_real_prometheus_scrapes_hub_and_sim])
