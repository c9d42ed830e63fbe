"""test_tls.py — HTTPS for the hub and the unit (DESIGN §9, issue 7).

The test makes its own CA and a server certificate for 127.0.0.1 with the
openssl CLI, in a temp dir. The hub and a `lockerfleet unit` serve HTTPS
(--tls-cert/--tls-key) and verify each other with --ca-file: the hub pings
the unit and delivers config and a reservation over https; the unit pushes
its events to the hub over https. A client that does not trust the CA fails
verification (python, and a unit given another CA: its pushes fail and
nothing of it reaches the hub)."""
import datetime
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402
import lfunit  # noqa: E402

ADMIN = lfhub.ADMIN_TOKEN
_now = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
T0 = (_now + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
T1 = (_now + datetime.timedelta(days=1, hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
            name + ".pem", "-days", "2", "-subj", "/CN=lockerfleet test " + name,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def make_server(d, ca, name):
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
            name + ".csr", "-subj", "/CN=127.0.0.1", cwd=d)
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext",
            cwd=d)


def https(url, method="GET", body=None, token=None, cafile=None, timeout=30):
    ctx = ssl.create_default_context(cafile=cafile)
    data = json.dumps(body).encode() if body is not None else None
    hdrs = {"Content-Type": "application/json"} if data else {}
    if token:
        hdrs["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def wait_for(fn, timeout=60, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            v = fn()
            if v:
                return v
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError("timed out waiting for " + what)


def test_tls_both_ways():
    d = tempfile.mkdtemp(prefix="lf-tls-")
    procs = []
    try:
        make_ca(d, "ca")
        make_ca(d, "other-ca")
        make_server(d, "ca", "hub")
        make_server(d, "ca", "unit")
        ca = os.path.join(d, "ca.pem")
        other = os.path.join(d, "other-ca.pem")
        hub = lfunit.Proc(["hub", "--listen", "127.0.0.1:0", "--data", os.path.join(d, "hub"),
                           "--admin-token", ADMIN, "--log-level", "info",
                           "--tls-cert", os.path.join(d, "hub.pem"),
                           "--tls-key", os.path.join(d, "hub.key"), "--ca-file", ca,
                           "--ping-interval", "0.5", "--ping-timeout", "10",
                           "--retry-schedule", "1,1"], data_dir=d, name="hub")
        procs.append(hub)
        hub.start()
        assert hub.url.startswith("https://"), hub.url
        st, b = wait_for(lambda: https(hub.url + "/healthz", cafile=ca), what="hub https")
        assert st == 200 and b["status"] == "ok", b
        # a client that does not trust the CA: verification fails
        for cafile in [None, other]:
            try:
                https(hub.url + "/healthz", cafile=cafile)
                raise AssertionError("an untrusted certificate was accepted")
            except urllib.error.URLError as e:
                assert isinstance(e.reason, ssl.SSLCertVerificationError), e
        # plain http on the TLS port gets nothing useful
        try:
            st, _, _ = lfhub.request("GET", hub.url.replace("https", "http") + "/healthz",
                                     timeout=5)
            assert st >= 400, st
        except (OSError, ValueError):
            pass

        port = lfhub.free_port()
        st, reg = https(hub.url + "/v1/units", "POST",
                        {"name": "tls-u", "presence": "poll",
                         "url": "https://127.0.0.1:%d" % port,
                         "lockers": [{"id": "A01", "size": "S"}, {"id": "A02",
                                                                  "size": "M"}]},
                        token=ADMIN, cafile=ca)
        assert st == 201, reg
        unit = lfunit.Proc(["unit", "--name", "tls-u", "--listen", "127.0.0.1:%d" % port,
                            "--hub", hub.url, "--token", reg["token"],
                            "--hub-token", reg["hub_token"], "--booking-key", reg["booking_key"],
                            "--lockers", "A01:S,A02:M", "--push-interval", "0.3",
                            "--data", os.path.join(d, "u"),
                            "--tls-cert", os.path.join(d, "unit.pem"),
                            "--tls-key", os.path.join(d, "unit.key"), "--ca-file", ca,
                            "--log-level", "info"], data_dir=d, name="unit-tls-u")
        procs.append(unit)
        unit.start()
        assert unit.url.startswith("https://"), unit.url
        st, b = https(unit.url + "/ping", cafile=ca)
        assert st == 200 and b["name"] == "tls-u", b
        try:
            https(unit.url + "/ping")
            raise AssertionError("the unit's certificate was accepted without the CA")
        except urllib.error.URLError as e:
            assert isinstance(e.reason, ssl.SSLCertVerificationError), e
        # hub -> unit: pings over https make it online
        wait_for(lambda: https(hub.url + "/v1/units/tls-u", token=ADMIN, cafile=ca)[1]
                 .get("online"), what="unit online over https (hub pings it)")
        # hub -> unit: live config delivered
        st, b = https(hub.url + "/v1/units/tls-u/config?mode=live", "PUT",
                      {"config": {"screen": "hello"}}, token=ADMIN, cafile=ca)
        # live: delivered at once, or (a slow, loaded machine) queued and retried
        assert (st == 200 and b.get("delivered") is True) or st == 202, (st, b)
        version = b["version"]
        wait_for(lambda: https(hub.url + "/v1/units/tls-u/config", token=ADMIN, cafile=ca)[1]
                 .get("applied_version") == version, what="config applied over https")
        # hub -> unit: a reservation delivered
        st, user = https(hub.url + "/v1/users", "POST", {"name": "tina"}, token=ADMIN, cafile=ca)
        st, r = https(hub.url + "/v1/reservations", "POST",
                      {"unit": "tls-u", "size": "S", "from": T0, "to": T1},
                      token=user["token"], cafile=ca)
        assert st == 201, r
        st, c = https(hub.url + "/v1/reservations/%s/confirm" % r["id"], "POST",
                      token=user["token"], cafile=ca)
        assert st == 200, c
        wait_for(lambda: https(hub.url + "/v1/reservations/" + r["id"], token=user["token"],
                               cafile=ca)[1].get("delivery") == "delivered",
                 what="reservation delivered over https")
        # unit -> hub: its events pushed over https
        st, rent = https(unit.url + "/screen/rent", "POST", {"size": "M", "minutes": 20},
                         cafile=ca)
        assert st == 200, rent

        def pushed():
            st, b = https(hub.url + "/v1/events?after=0&limit=1000&stream=unitlog-tls-u",
                          token=ADMIN, cafile=ca)
            return [e["type"] for e in b["events"]]
        wait_for(lambda: "RentalStarted" in pushed(), what="unit events pushed over https")
        st, s = https(unit.url + "/status", token=reg["hub_token"], cafile=ca)
        assert s["pushes_ok"] > 0 and s["acked_seq"] == s["seq_head"], s

        # a unit that does not trust the hub's CA: pushes fail, nothing arrives
        st, reg2 = https(hub.url + "/v1/units", "POST",
                         {"name": "tls-w", "lockers": [{"id": "A01", "size": "S"}]},
                         token=ADMIN, cafile=ca)
        assert st == 201, reg2
        bad = lfunit.Proc(["unit", "--name", "tls-w", "--listen", "127.0.0.1:0",
                           "--hub", hub.url, "--token", reg2["token"], "--lockers", "A01:S",
                           "--push-interval", "0.2", "--backoff-max", "0.5",
                           "--ca-file", other, "--data", os.path.join(d, "w"),
                           "--log-level", "debug"], data_dir=d, name="unit-tls-w")
        procs.append(bad)
        bad.start()
        st, _, _ = lfhub.request("POST", bad.url + "/screen/rent", {"size": "S", "minutes": 5})
        assert st == 200
        wait_for(lambda: lfhub.request("GET", bad.url + "/status")[1]["pushes_failed"] >= 2,
                 what="pushes to an untrusted hub fail")
        st, b = https(hub.url + "/v1/events?after=0&limit=1000&stream=unitlog-tls-w",
                      token=ADMIN, cafile=ca)
        assert b["events"] == [], b
        for p in procs:
            p.terminate()
        log = open(os.path.join(d, "unit-tls-w.stderr.log"), errors="replace").read()
        assert "certificate" in log.lower() or "ssl" in log.lower(), log[-2000:]
    except BaseException:
        for p in procs:
            sys.stderr.write("--- %s ---\n%s\n" % (p.name, p.stderr_tail()))
        raise
    finally:
        for p in procs:
            p.kill()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    if not shutil.which("openssl"):
        print("SKIP: the openssl CLI is needed to make the test CA")
        sys.exit(0)
    lfhub.run_tests([test_tls_both_ways])
