"""test_config.py — configuration the way daemons take it (src/cli/config.c).

Real `lockerfleet hub` / `lockerfleet unit` processes:
  - the shipped examples contrib/config/{hub,unit}.ini are valid
    (--print-config exits 0);
  - --print-config shows each value's source, flag > env > file > default,
    and never the admin token;
  - unknown keys, unknown sections and bad values exit 2 naming file:line;
  - a hub started from a config file alone (--config, no other flag) serves
    on the configured port with the configured admin token, logs JSON lines
    (time, level, component, message) and no token in them;
  - a unit started from a config file (+ LOCKERFLEET_TOKEN in the env)
    serves on its configured port, heartbeats into that hub, logs JSON.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402

LF_BIN = lfhub.LF_BIN
SRC = os.environ.get("LF_SOURCE_DIR",
                     os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TOKEN = "cfg-admin-token-0123456789abcdef0123456789"


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOCKERFLEET_")}
    env.update(extra)
    return env


def run(args, env=None):
    p = subprocess.run([LF_BIN] + args, capture_output=True, text=True, timeout=60,
                       env=env or clean_env())
    return p.returncode, p.stdout, p.stderr


def line_of(out, key):
    for ln in out.splitlines():
        if ln.split("=")[0].strip() == key:
            return ln
    raise AssertionError("no %r in:\n%s" % (key, out))


def check_json_log(path, secrets):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    for s in secrets:
        assert s not in text, "a secret leaked into %s" % path
    n = 0
    for ln in text.splitlines():
        if not ln.strip():
            continue
        obj = json.loads(ln)  # every line one JSON object
        for k in ("time", "level", "component", "message"):
            assert k in obj, (k, ln)
        n += 1
    return n


def test_examples_valid():
    for cmd in ("hub", "unit"):
        rc, out, err = run([cmd, "--config", os.path.join(SRC, "contrib/config/%s.ini" % cmd),
                            "--print-config"])
        assert rc == 0, (cmd, rc, err)
        assert "[%s]" % cmd in out
    print("shipped examples: valid")


def test_print_config(d):
    ini = os.path.join(d, "hub.ini")
    with open(ini, "w") as f:
        f.write("; test\n[hub]\nlisten = 127.0.0.1:1111\nping-interval = 11\n"
                "admin-token = %s\nnode-id = from-file\n" % TOKEN)
    env = clean_env(LOCKERFLEET_LISTEN="127.0.0.1:2222", LOCKERFLEET_PING_INTERVAL="22")
    rc, out, err = run(["hub", "--config", ini, "--print-config", "--listen", "127.0.0.1:3333"],
                       env)
    assert rc == 0, err
    assert TOKEN not in out and TOKEN not in err
    assert "127.0.0.1:3333" in line_of(out, "listen") and "flag --listen" in line_of(out, "listen")
    ln = line_of(out, "ping-interval")
    assert "22" in ln and "env LOCKERFLEET_PING_INTERVAL" in ln, ln
    ln = line_of(out, "node-id")
    assert "from-file" in ln and "file %s:6" % ini in ln, ln
    ln = line_of(out, "admin-token")
    assert "********" in ln and "masked" in ln, ln
    assert "default" in line_of(out, "hold-seconds")
    print("print-config: flag > env > file > default, token masked")


def test_errors(d):
    ini = os.path.join(d, "bad.ini")
    cases = [("[hub]\nlisten = 127.0.0.1:1\nlisen = 127.0.0.1:2\n", ":3: unknown key 'lisen'"),
             ("[hub]\n[hubb]\nlisten = 127.0.0.1:1\n", ":3: unknown section [hubb]"),
             ("[hub]\n\nshard-digits = 9\n", ":3: shard-digits '9': must be 1..4"),
             ("[hub]\nping-interval = soon\n", ":2: ping-interval wants a number"),
             ("[hub]\nlog-format = xml\n", ":2: log-format 'xml': must be text or json")]
    for text, want in cases:
        with open(ini, "w") as f:
            f.write(text)
        rc, out, err = run(["hub", "--config", ini])
        assert rc == 2, (text, rc, err)
        assert ini + want in err, (want, err)
    rc, _, err = run(["hub", "--print-config"], clean_env(LOCKERFLEET_BODY_MAX="tiny"))
    assert rc == 2 and "LOCKERFLEET_BODY_MAX: body-max wants an integer" in err, err
    rc, _, err = run(["hub", "--config", os.path.join(d, "missing.ini")])
    assert rc == 2 and "cannot read config file" in err, err
    print("errors: unknown key/section, bad values -> exit 2 with file:line")


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            st, body, _ = lfhub.request("GET", url, timeout=5)
            return st, body
        except OSError:
            time.sleep(0.1)
    raise AssertionError("no answer from " + url)


def test_hub_and_unit_from_config(d):
    port, uport = lfhub.free_port(), lfhub.free_port()
    data, udata = os.path.join(d, "hub-data"), os.path.join(d, "unit-data")
    ini = os.path.join(d, "hub.ini")
    with open(ini, "w") as f:
        f.write("[hub]\nlisten = 127.0.0.1:%d\ndata = %s\nadmin-token = %s\n"
                "log-level = debug\nlog-format = json\nping-interval = 2\n" % (port, data, TOKEN))
    herr = os.path.join(d, "hub.stderr")
    hub = subprocess.Popen([LF_BIN, "hub", "--config", ini], stdout=subprocess.PIPE,
                           stderr=open(herr, "wb"), text=True, env=clean_env())
    unit = None
    try:
        first = hub.stdout.readline()
        assert first.startswith("listening on http://127.0.0.1:%d" % port), first
        base = "http://127.0.0.1:%d" % port
        st, _ = wait_http(base + "/healthz")
        assert st == 200
        st, _, _ = lfhub.request("GET", base + "/v1/units", token=TOKEN)
        assert st == 200, st  # the admin token of the file
        st, resp, _ = lfhub.request("POST", base + "/v1/units", token=TOKEN,
                                    body={"name": "cab-1", "display_name": "cab-1",
                                          "presence": "heartbeat", "url": "",
                                          "lockers": [{"id": "A01", "size": "S"}]})
        assert st == 201, (st, resp)
        utoken = resp["token"]

        uini = os.path.join(d, "unit.ini")
        with open(uini, "w") as f:
            f.write("[unit]\nname = cab-1\nhub = %s\nlisten = 127.0.0.1:%d\ndata = %s\n"
                    "heartbeat-interval = 1\nlockers = A01:S\nlog-level = debug\n"
                    "log-format = json\n" % (base, uport, udata))
        rc, out, err = run(["unit", "--config", uini, "--print-config"],
                           clean_env(LOCKERFLEET_TOKEN=utoken))
        assert rc == 0, err
        assert utoken not in out and "env LOCKERFLEET_TOKEN, masked" in line_of(out, "token")
        uerr = os.path.join(d, "unit.stderr")
        unit = subprocess.Popen([LF_BIN, "unit", "--config", uini], stdout=subprocess.PIPE,
                                stderr=open(uerr, "wb"), text=True,
                                env=clean_env(LOCKERFLEET_TOKEN=utoken))
        first = unit.stdout.readline()
        assert first.startswith("listening on http://127.0.0.1:%d" % uport), first
        st, _ = wait_http("http://127.0.0.1:%d/ping" % uport)
        assert st == 200, st
        # the unit's heartbeats reach the hub with the token from the env
        deadline, online = time.time() + 30, False
        while time.time() < deadline and not online:
            st, body, _ = lfhub.request("GET", base + "/v1/units/cab-1", token=TOKEN)
            online = st == 200 and body.get("online") is True
            time.sleep(0.2)
        assert online, body
    finally:
        for p in (unit, hub):
            if p and p.poll() is None:
                p.terminate()
                p.wait(30)
    assert hub.returncode == 0 and unit.returncode == 0, (hub.returncode, unit.returncode)
    nh = check_json_log(herr, [TOKEN, utoken])
    nu = check_json_log(uerr, [TOKEN, utoken])
    assert nh > 0 and nu > 0
    print("hub and unit from config files: serve on their ports, %d + %d JSON log lines, "
          "no token" % (nh, nu))


def main():
    d = tempfile.mkdtemp(prefix="lf-config-")
    try:
        test_examples_valid()
        test_print_config(d)
        test_errors(d)
        test_hub_and_unit_from_config(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    main()
