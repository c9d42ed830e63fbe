"""lfunit.py — helpers for end-to-end tests of `lockerfleet unit` and `sim`.

Standard library only. A Unit is a real `lockerfleet unit` process on a free
loopback port (listen 127.0.0.1:0), its data in a temp dir unless given:

    import lfunit
    with lfunit.Unit("u-1", ["--hub-token", "ht"]) as u:
        st, body, _ = u.get("/ping")

Also make_code(): a booking code made the same way as src/domain/code.c, so a
test can hand a unit a reservation code without a hub.
"""
import base64
import hashlib
import hmac
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import lfhub

LF_BIN = os.environ.get("LF_BIN", "lockerfleet")


class Proc:
    """A lockerfleet subcommand that prints `<prefix> http://HOST:PORT` when ready."""

    def __init__(self, args, data_dir=None, ready_prefix="listening on ", ready_word=2,
                 startup_timeout=60, name="proc"):
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="lf-e2e-%s-" % name)
        self.base_args = list(args)
        self.ready_prefix = ready_prefix
        self.ready_word = ready_word
        self.startup_timeout = startup_timeout
        self.name = name
        self.proc = None
        self.url = None
        self.output = []
        self.stderr_file = None

    def start(self, extra=None):
        args = [LF_BIN] + self.base_args + list(extra or [])
        self.stderr_path = os.path.join(self.data_dir, self.name + ".stderr.log")
        self.stderr_file = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.stderr_file,
                                     text=True)
        ready = threading.Event()
        self.url = None

        def reader():
            for line in self.proc.stdout:
                self.output.append(line.rstrip("\n"))
                if line.startswith(self.ready_prefix) and not self.url:
                    words = line.split()
                    self.url = words[self.ready_word].rstrip("/,")
                    ready.set()
            ready.set()

        threading.Thread(target=reader, daemon=True).start()
        if not ready.wait(self.startup_timeout) or not self.url:
            self.kill()
            raise RuntimeError("%s did not start: %s" % (self.name, self.stderr_tail()))
        return self

    def stderr_tail(self, n=4000):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except (OSError, AttributeError):
            return ""

    def terminate(self, timeout=30):
        """SIGTERM and wait; returns the exit code."""
        try:
            if not self.proc or self.proc.poll() is not None:
                return self.proc.returncode if self.proc else None
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("%s did not stop on SIGTERM within %ss" % (self.name, timeout))
        finally:
            self._close()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self):
        if self.stderr_file:
            self.stderr_file.close()
            self.stderr_file = None

    def cleanup(self):
        self.kill()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            sys.stderr.write("--- %s stderr ---\n%s\n" % (self.name, self.stderr_tail()))
        self.cleanup()
        return False

    def call(self, method, path, body=None, token=None, timeout=30):
        return lfhub.request(method, self.url + path, body, token, timeout=timeout)

    def get(self, path, token=None, **kw):
        return self.call("GET", path, None, token, **kw)

    def post(self, path, body=None, token=None, **kw):
        return self.call("POST", path, body, token, **kw)

    def put(self, path, body=None, token=None, **kw):
        return self.call("PUT", path, body, token, **kw)


class Unit(Proc):
    """`lockerfleet unit --name NAME` with its data dir and a free port."""

    def __init__(self, name, args=None, data_dir=None, start=True, log_level="warn"):
        super().__init__(["unit", "--name", name, "--listen", "127.0.0.1:0",
                          "--log-level", log_level], data_dir, name="unit-" + name)
        self.base_args += ["--data", os.path.join(self.data_dir, "unit")]
        self.unit_args = list(args or [])
        if start:
            self.start()

    def start(self, extra=None):
        return super().start(self.unit_args + list(extra or []))


def wait_for(fn, timeout=30, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError("timed out waiting for " + what)


def make_code(key_hex, reservation_id, locker, from_ms, to_ms):
    """A booking code in the LF1 format of src/domain/code.h."""
    key = bytes.fromhex(key_hex)
    b = bytes([1]) + uuid.UUID(reservation_id).bytes + struct.pack(">QQ", from_ms, to_ms)
    b += bytes([len(locker)]) + locker.encode()
    mac = hmac.new(key, b, hashlib.sha256).digest()[:12]
    return "LF1" + base64.urlsafe_b64encode(b + mac).decode().rstrip("=")
