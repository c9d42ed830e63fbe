"""test_browser_dashboard.py — the dashboard in a real browser.

Starts a real hub (short ping interval and timeout) and a real sim of 40
units with --offline-fraction 0.3, waits until the hub knows every unit and
has seen some offline, then runs tests/browser/dashboard.test.mjs (Debian's
chromium driven by playwright-core) against it. The screenshot is kept as
a test artefact in the test's working directory (the build tree); its path
is printed.

Needs node and tests/browser/node_modules (scripts/setup.sh --all runs
npm install there).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402

SRC = os.environ.get("LF_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BROWSER_DIR = os.path.join(SRC, "tests", "browser")
UNITS = 40


class Sim:
    """A `lockerfleet sim` process registered with hub."""

    def __init__(self, hub, units, extra_args=()):
        self.data_dir = tempfile.mkdtemp(prefix="lf-e2e-sim-")
        self.log_path = os.path.join(self.data_dir, "sim.log")
        self.port = lfhub.free_port()
        args = [lfhub.LF_BIN, "sim", "--hub", hub.url, "--admin-token", hub.admin_token,
                "--units", str(units), "--listen", "127.0.0.1:%d" % self.port,
                "--data", self.data_dir, "--seed", "7"] + list(extra_args)
        self.log = open(self.log_path, "ab")
        self.lines = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True)

        def reader():
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))
                if "units registered" in line:
                    self.ready.set()
            self.ready.set()

        threading.Thread(target=reader, daemon=True).start()

    def tail(self):
        try:
            with open(self.log_path, "rb") as f:
                err = f.read()[-3000:].decode(errors="replace")
        except OSError:
            err = ""
        return "\n".join(self.lines[-20:]) + "\n" + err

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def units_of(hub, query):
    st, body, _ = hub.admin("GET", "/v1/units?" + query)
    assert st == 200, "GET /v1/units?%s: %s %s" % (query, st, body)
    return body["units"]


def test_dashboard_in_chromium():
    node = shutil.which("node")
    assert node, "node is not installed (scripts/setup.sh --all)"
    assert os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")), \
        "playwright-core missing: run scripts/setup.sh --all (npm install in tests/browser)"
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    assert os.path.exists(chromium), chromium + " missing (scripts/setup.sh --all)"

    with lfhub.Hub(extra_args=["--ping-interval", "1", "--ping-timeout", "1"]) as hub:
        sim = Sim(hub, UNITS, ["--presence", "poll", "--offline-fraction", "0.3"])
        try:
            if not sim.ready.wait(120) or sim.proc.poll() is not None:
                raise AssertionError("sim did not report its units:\n" + sim.tail())

            def fleet_ready():
                units = units_of(hub, "limit=1000")
                off = [u for u in units if u.get("online") is False]
                on = [u for u in units if u.get("online") is True]
                return len(units) >= UNITS and off and on and (units, off)

            units, off = hub.wait_for(fleet_ready, timeout=120, interval=0.5,
                                      what="%d units, some online and some offline" % UNITS)
            print("hub: %d units, %d offline" % (len(units), len(off)), flush=True)

            art = os.path.join(os.getcwd(), "e2e-artifacts")
            os.makedirs(art, exist_ok=True)
            shot = os.path.join(art, "dashboard.png")
            if os.path.exists(shot):
                os.unlink(shot)
            env = dict(os.environ, HUB_URL=hub.url, ADMIN_TOKEN=hub.admin_token,
                       SCREENSHOT=shot, CHROMIUM=chromium)
            t0 = time.time()
            r = subprocess.run([node, os.path.join(BROWSER_DIR, "dashboard.test.mjs")],
                               cwd=BROWSER_DIR, env=env, timeout=600)
            print("browser test: exit %d in %.1f s" % (r.returncode, time.time() - t0))
            assert r.returncode == 0, "dashboard.test.mjs failed (exit %d)" % r.returncode
            assert os.path.getsize(shot) > 10000, "no screenshot at " + shot
            print("screenshot artefact: " + shot, flush=True)
        finally:
            sim.stop()


if __name__ == "__main__":
    lfhub.run_tests([test_dashboard_in_chromium])
