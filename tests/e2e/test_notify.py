"""test_notify.py — systemd readiness (sd_notify) of the hub and the unit.

Plays the service manager: a unix datagram socket as $NOTIFY_SOCKET, then
`lockerfleet hub` / `lockerfleet unit`; READY=1 must arrive once the
process serves (its /healthz or /ping answers right after), and
STOPPING=1 on SIGTERM. Needs a build with libsystemd (libsystemd-dev,
scripts/setup.sh); without it notify is a no-op and this test fails.
"""
import os
import shutil
import socket
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402
import lfunit  # noqa: E402


class Manager:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="lf-notify-")
        self.path = os.path.join(self.dir, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(30)

    def expect(self, word):
        got = []
        while True:
            msg = self.sock.recv(4096).decode()
            got.append(msg)
            if word in msg.split("\n"):
                return msg

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def test_hub_notifies_ready_and_stopping():
    m = Manager()
    try:
        hub = lfhub.Hub(env={"NOTIFY_SOCKET": m.path})
        try:
            msg = m.expect("READY=1")
            print("hub:", msg.replace("\n", " | "))
            assert hub.get("/healthz")[0] == 200
            assert hub.terminate() == 0
            print("hub:", m.expect("STOPPING=1").replace("\n", " | "))
        finally:
            hub.cleanup()
    finally:
        m.close()


def test_unit_notifies_ready_and_stopping():
    m = Manager()
    old = os.environ.get("NOTIFY_SOCKET")
    os.environ["NOTIFY_SOCKET"] = m.path  # lfunit.Proc passes the environment on
    try:
        with lfunit.Unit("n-1") as u:
            msg = m.expect("READY=1")
            print("unit:", msg.replace("\n", " | "))
            assert u.get("/ping")[0] == 200
            assert u.terminate() == 0
            print("unit:", m.expect("STOPPING=1").replace("\n", " | "))
    finally:
        if old is None:
            os.environ.pop("NOTIFY_SOCKET", None)
        else:
            os.environ["NOTIFY_SOCKET"] = old
        m.close()


if __name__ == "__main__":
    lfhub.run_tests([test_hub_notifies_ready_and_stopping, test_unit_notifies_ready_and_stopping])
