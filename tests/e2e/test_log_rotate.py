"""--log-file and SIGHUP, the way logrotate works: the hub and the unit
append to the file; after the file is moved away and SIGHUP is sent, they
write to a new file at the same path and keep serving."""
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402


def wait_file_has(path, text, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                if text in f.read():
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("%s never got %r" % (path, text))


def test_hub_log_rotation():
    d = tempfile.mkdtemp(prefix="lf-log-")
    log = os.path.join(d, "hub.log")
    with lfhub.Hub(extra_args=["--log-file", log], log_level="info") as hub:
        st, _, _ = hub.get("/healthz")
        assert st == 200
        wait_file_has(log, "GET /healthz")
        os.rename(log, log + ".1")
        hub.proc.send_signal(signal.SIGHUP)
        wait_file_has(log, "log file reopened")
        st, _, _ = hub.get("/v1/units", token=hub.admin_token)
        assert st == 200
        wait_file_has(log, "GET /v1/units")
        with open(log + ".1", encoding="utf-8") as f:
            assert "GET /v1/units 200" not in f.read()
        assert hub.proc.poll() is None, "SIGHUP stopped the hub"


def test_unit_log_rotation():
    d = tempfile.mkdtemp(prefix="lf-ulog-")
    log = os.path.join(d, "unit.log")
    port = lfhub.free_port()
    p = subprocess.Popen([lfhub.LF_BIN, "unit", "--name", "rot-1", "--listen",
                          "127.0.0.1:%d" % port, "--data", os.path.join(d, "data"),
                          "--lockers", "A01:S", "--log-file", log, "--log-level", "debug"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("listening on"), line + p.stderr.read()
        url = "http://127.0.0.1:%d" % port
        st, _, _ = lfhub.request("GET", url + "/ping")
        assert st == 200
        wait_file_has(log, "/ping")
        os.rename(log, log + ".1")
        p.send_signal(signal.SIGHUP)
        wait_file_has(log, "log file reopened")
        st, _, _ = lfhub.request("GET", url + "/ping")
        assert st == 200
        assert p.poll() is None, "SIGHUP stopped the unit"
        p.terminate()
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


if __name__ == "__main__":
    lfhub.run_tests([test_hub_log_rotation, test_unit_log_rotation])
