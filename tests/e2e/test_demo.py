"""test_demo.py — `lockerfleet demo`: one command runs a hub + a simulated
fleet, prints the dashboard URL and the admin token, stops cleanly on
SIGTERM, and resumes on the same data when run again."""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402

UNITS = 12
STOP_BOUND = 40  # seconds for SIGTERM -> exit (the demo's own bound is 15 s per child)


class Demo:
    def __init__(self, data_dir, port, sim_port, units=UNITS):
        args = [lfhub.LF_BIN, "demo", "--data", data_dir, "--listen", "127.0.0.1:%d" % port,
                "--sim-listen", "127.0.0.1:%d" % sim_port, "--units", str(units)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines = []
        self.url = None
        self.token = None
        self.got = threading.Event()

        def reader():
            for line in self.proc.stdout:
                line = line.rstrip("\n")
                self.lines.append(line)
                m = re.search(r"dashboard:\s+(http://\S+?)/?$", line)
                if m:
                    self.url = m.group(1)
                m = re.search(r"admin token:\s+(\S+)", line)
                if m:
                    self.token = m.group(1)
                if self.url and self.token:
                    self.got.set()
            self.got.set()

        threading.Thread(target=reader, daemon=True).start()

    def output(self):
        return "\n".join(self.lines)

    def wait_ready(self, timeout=120):
        if not self.got.wait(timeout) or not (self.url and self.token):
            self.kill()
            raise AssertionError("demo printed no URL/token:\n" + self.output())

    def terminate(self, timeout=STOP_BOUND, sig=signal.SIGTERM):
        t0 = time.time()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("demo did not stop within %ds of SIGTERM" % timeout)
        return rc, time.time() - t0

    def kill(self):
        if self.proc.poll() is None:
            # the demo's children die with it (PR_SET_PDEATHSIG)
            self.proc.kill()
            self.proc.wait()


def get(url, path, token=None):
    return lfhub.request("GET", url + path, token=token, timeout=10)


def wait_units(url, token, n, timeout=120):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        st, body, _ = get(url, "/v1/units?limit=1000", token)
        last = (st, body)
        if st == 200 and len(body.get("units", [])) >= n:
            return body["units"]
        time.sleep(0.5)
    raise AssertionError("hub never listed %d units: %s" % (n, last))


def pids_of_children(pid):
    try:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                             text=True).stdout
        return [int(x) for x in out.split()]
    except OSError:
        return []


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def test_demo_runs_stops_and_resumes():
    data = tempfile.mkdtemp(prefix="lf-e2e-demo-")
    demo = None
    try:
        port, sim_port = lfhub.free_port(), lfhub.free_port()
        demo = Demo(data, port, sim_port)
        demo.wait_ready()
        assert demo.url == "http://127.0.0.1:%d" % port, demo.url
        st, body, _ = get(demo.url, "/healthz")
        assert st == 200 and body.get("status") == "ok", (st, body)
        st, _, _ = get(demo.url, "/v1/units")
        assert st == 401, "units listed without a token: %s" % st
        units = wait_units(demo.url, demo.token, UNITS)
        names = sorted(u["name"] for u in units)
        st, page, _ = get(demo.url, "/", None)
        assert st == 200 and "lockerfleet" in page, "dashboard not served at /"

        token_file = os.path.join(data, "admin.token")
        assert os.stat(token_file).st_mode & 0o777 == 0o600, oct(os.stat(token_file).st_mode)
        with open(token_file) as f:
            assert f.read().strip() == demo.token

        children = pids_of_children(demo.proc.pid)
        assert len(children) == 2, "expected a hub and a sim child, got %s" % children
        rc, took = demo.terminate()
        assert rc == 0, "demo exit %s after SIGTERM:\n%s" % (rc, demo.output())
        print("demo stopped in %.1f s" % took)
        for c in children:
            assert not alive(c), "child %d still running after the demo exited" % c

        # Again on the same data: same token, same units, no set-up.
        port2, sim_port2 = lfhub.free_port(), lfhub.free_port()
        demo = Demo(data, port2, sim_port2)
        demo.wait_ready()
        with open(token_file) as f:
            assert demo.token == f.read().strip()
        units2 = wait_units(demo.url, demo.token, UNITS)
        names2 = sorted(u["name"] for u in units2)
        assert names2 == names, "units changed across runs: %s vs %s" % (names, names2)
        rc, took = demo.terminate(sig=signal.SIGINT)  # as Ctrl-C does
        assert rc == 0, "second demo exit %s after SIGINT:\n%s" % (rc, demo.output())
        print("demo stopped on SIGINT in %.1f s" % took)
    except Exception:
        if demo:
            sys.stderr.write("--- demo output ---\n" + demo.output() + "\n")
        for log in ("hub.log", "sim.log"):
            try:
                with open(os.path.join(data, log), "rb") as f:
                    sys.stderr.write("--- %s ---\n%s\n" % (log, f.read()[-3000:].decode(
                        errors="replace")))
            except OSError:
                pass
        raise
    finally:
        if demo:
            demo.kill()
        shutil.rmtree(data, ignore_errors=True)


def test_demo_reports_a_dead_child():
    """The hub cannot start (its port is taken): the demo names it, exits 1."""
    data = tempfile.mkdtemp(prefix="lf-e2e-demo-")
    import socket
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        demo = Demo(data, port, lfhub.free_port())
        try:
            rc = demo.proc.wait(90)
        except subprocess.TimeoutExpired:
            demo.kill()
            raise AssertionError("demo kept running with a hub that cannot start:\n" +
                                 demo.output())
        out = demo.output()
        assert rc != 0, "demo exit 0 with a dead hub:\n" + out
        assert "hub" in out and ("exited" in out or "did not answer" in out), out
    finally:
        blocker.close()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    lfhub.run_tests([test_demo_runs_stops_and_resumes, test_demo_reports_a_dead_child])
