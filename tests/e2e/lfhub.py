"""lfhub.py — helpers for end-to-end tests that talk to a real hub.

Standard library only. Typical use:

    import lfhub
    with lfhub.Hub() as hub:                  # free port, temp data dir
        st, body, hdrs = hub.get("/healthz")
        user = hub.create_user("alice")       # {"user_id","token",...}
        unit = hub.create_unit("u-1", lockers=[("A01", "S")])
        st, body, _ = hub.get("/v1/units", token=hub.admin_token)

Hub(extra_args=[...]) passes more flags to `lockerfleet hub`; Hub(data_dir=d)
reuses a data dir (e.g. to restart after kill()). LF_BIN names the binary
(set by CTest); LF_SOURCE_DIR the repo root.
"""
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

LF_BIN = os.environ.get("LF_BIN", "lockerfleet")
ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef0123456789abcdef0123456789abcdef"


def free_port():
    """A free loopback TCP port (racy by nature; good enough for tests)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def request(method, url, body=None, token=None, headers=None, timeout=30, raw=False):
    """One HTTP call. Returns (status, parsed JSON or text or None, headers dict
    with lower-case names). body: dict/list (sent as JSON), bytes or str."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body
    if token:
        hdrs["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, payload, rh = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, payload, rh = e.code, e.read(), e.headers
    h = {k.lower(): v for k, v in rh.items()}
    if raw:
        return status, payload, h
    ctype = h.get("content-type", "")
    if "json" in ctype:
        try:
            return status, json.loads(payload), h
        except ValueError:
            return status, payload.decode(errors="replace"), h
    return status, payload.decode(errors="replace"), h


class Hub:
    """A `lockerfleet hub` process on a free loopback port."""

    def __init__(self, extra_args=None, data_dir=None, admin_token=ADMIN_TOKEN,
                 log_level="warn", start=True, startup_timeout=60, env=None):
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="lf-e2e-")
        self.admin_token = admin_token
        self.extra_args = list(extra_args or [])
        self.log_level = log_level
        self.startup_timeout = startup_timeout
        self.env = env  # extra environment variables for the hub process
        self.proc = None
        self.port = None
        self.url = None
        self.output = []  # stdout lines
        if start:
            self.start()

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        args = [LF_BIN, "hub", "--listen", "127.0.0.1:0", "--data", self.data_dir,
                "--log-level", self.log_level]
        if self.admin_token:
            args += ["--admin-token", self.admin_token]
        args += self.extra_args
        # LF_HUB_ARGS: flags added to every hub the tests start, e.g. the
        # whole suite against --http-threads 0; a flag the test gives
        # itself wins (a test of one mode stays in that mode)
        env_args = shlex.split(os.environ.get("LF_HUB_ARGS", ""))
        i = 0
        while i < len(env_args):
            flag = env_args[i]
            takes_value = i + 1 < len(env_args) and not env_args[i + 1].startswith("--")
            if flag.startswith("--") and flag in self.extra_args:
                i += 2 if takes_value else 1
                continue
            args.append(flag)
            if takes_value:
                args.append(env_args[i + 1])
                i += 1
            i += 1
        self.stderr_path = os.path.join(self.data_dir, "hub.stderr.log")
        self.stderr_file = open(self.stderr_path, "ab")
        env = dict(os.environ)
        env.update(self.env or {})
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.stderr_file,
                                     text=True, env=env)
        ready = threading.Event()

        def reader():
            for line in self.proc.stdout:
                self.output.append(line.rstrip("\n"))
                if line.startswith("listening on "):
                    self.url = line.split()[2].rstrip("/")
                    self.port = int(self.url.rsplit(":", 1)[1])
                    ready.set()
            ready.set()

        self._reader = threading.Thread(target=reader, daemon=True)
        self._reader.start()
        if not ready.wait(self.startup_timeout) or not self.url:
            self.kill()
            raise RuntimeError("hub did not start: " + self.stderr_tail())
        deadline = time.time() + self.startup_timeout
        while time.time() < deadline:
            try:
                st, _, _ = self.get("/healthz", timeout=5)
                if st == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("hub /healthz never answered: " + self.stderr_tail())

    def stderr_tail(self, n=4000):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def terminate(self, timeout=30):
        """SIGTERM and wait; returns the exit code."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("hub did not stop on SIGTERM within %ss" % timeout)
        finally:
            self._close_files()

    def kill(self):
        """SIGKILL (kill -9) and wait."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_files()

    def _close_files(self):
        if getattr(self, "stderr_file", None):
            self.stderr_file.close()
            self.stderr_file = None

    def restart(self, extra_args=None, env=None):
        self.kill()
        if extra_args is not None:
            self.extra_args = list(extra_args)
        if env is not None:
            self.env = env
        self.output = []
        self.url = None
        return self.start()

    def cleanup(self):
        self.kill()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            sys.stderr.write("--- hub stderr ---\n" + self.stderr_tail() + "\n")
        self.cleanup()
        return False

    # -- HTTP ----------------------------------------------------------------
    def call(self, method, path, body=None, token=None, headers=None, timeout=30, raw=False):
        return request(method, self.url + path, body, token, headers, timeout, raw)

    def get(self, path, token=None, **kw):
        return self.call("GET", path, None, token, **kw)

    def post(self, path, body=None, token=None, **kw):
        return self.call("POST", path, body, token, **kw)

    def put(self, path, body=None, token=None, **kw):
        return self.call("PUT", path, body, token, **kw)

    def admin(self, method, path, body=None, **kw):
        return self.call(method, path, body, self.admin_token, **kw)

    # -- fixtures ------------------------------------------------------------
    def create_user(self, name="user"):
        st, body, _ = self.admin("POST", "/v1/users", {"name": name})
        if st != 201:
            raise RuntimeError("create_user: %s %s" % (st, body))
        return body

    def create_unit(self, name, lockers=None, display_name=None, presence="heartbeat",
                    url="", **fields):
        """lockers: list of (id, size) or dicts; default 3 lockers S, M, L."""
        if lockers is None:
            lockers = [("A01", "S"), ("A02", "M"), ("A03", "L")]
        ls = [l if isinstance(l, dict) else {"id": l[0], "size": l[1]} for l in lockers]
        body = {"name": name, "display_name": display_name or name, "presence": presence,
                "url": url, "lockers": ls}
        body.update(fields)
        st, resp, _ = self.admin("POST", "/v1/units", body)
        if st != 201:
            raise RuntimeError("create_unit: %s %s" % (st, resp))
        return resp

    def events(self, after=0, limit=1000, stream=None):
        q = "/v1/events?after=%d&limit=%d" % (after, limit)
        if stream:
            q += "&stream=" + urllib.request.quote(stream)
        st, body, _ = self.admin("GET", q)
        if st != 200:
            raise RuntimeError("events: %s %s" % (st, body))
        return body

    def wait_for(self, fn, timeout=30, interval=0.1, what="condition"):
        """Polls fn() until it returns a truthy value; returns it."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = fn()
            if v:
                return v
            time.sleep(interval)
        raise AssertionError("timed out waiting for " + what)


def run_tests(tests):
    """Runs test functions in order, prints results; exits 1 on any failure."""
    failed = 0
    for t in tests:
        t0 = time.time()
        try:
            t()
            print("ok   %s (%.1fs)" % (t.__name__, time.time() - t0), flush=True)
        except Exception:
            failed += 1
            import traceback
            print("FAIL %s" % t.__name__, flush=True)
            traceback.print_exc()
    print("%d/%d passed" % (len(tests) - failed, len(tests)))
    sys.exit(1 if failed else 0)
