"""End-to-end: `lockerfleet sim` against a real hub. Units registered through
the admin API and served under /u/{name}/ on one port; scripted behaviour
reaches the hub exactly once and in order per unit; a restart on the same
data reuses the saved credentials; --storm holds every unit offline, then
they all reconnect and deliver their backlog; SIGTERM exits 0."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402
import lfunit  # noqa: E402

N = 30


def sim_proc(hub, data_dir, extra):
    p = lfunit.Proc(["sim", "--hub", hub.url, "--admin-token", hub.admin_token, "--units", str(N),
                     "--listen", "127.0.0.1:0", "--data", data_dir, "--seed", "7",
                     "--events-per-minute", "120", "--push-interval", "0.3",
                     "--log-level", "warn"] + extra,
                    data_dir=data_dir, ready_prefix="sim: ", ready_word=6, name="sim")
    p.own_dir = False
    return p.start()


def check_stream(hub, name):
    st, b, _ = hub.admin("GET", "/v1/events?stream=unitlog-%s&limit=10000" % name)
    assert st == 200, b
    vs = [e["version"] for e in b["events"]]
    assert vs == list(range(1, len(vs) + 1)), (name, vs)
    assert len({e["id"] for e in b["events"]}) == len(vs)
    return len(vs)


def sim_status(sim):
    st, b, _ = sim.get("/sim/status")
    assert st == 200, b
    return b


def test_sim_basic_and_restart():
    with lfhub.Hub() as hub:
        data = os.path.join(hub.data_dir, "sim")
        os.makedirs(data)
        sim = sim_proc(hub, data, ["--presence", "heartbeat", "--heartbeat-interval", "1",
                                   "--offline-fraction", "0.1", "--flap-fraction", "0.1",
                                   "--slow-fraction", "0.1"])
        try:
            assert sim.output[-1].startswith("sim: %d units registered, serving on http" % N), \
                sim.output
            st, b, _ = sim.get("/u/sim-00001/ping", timeout=40)
            assert st == 200 and b["name"] == "sim-00001", b
            st, b, _ = sim.get("/u/nope/ping")
            assert st == 404, b
            # the units list is a projection: it follows the registrations
            # asynchronously (the sim does not pass ?min_position)
            def listed():
                st, b, _ = hub.admin("GET", "/v1/units?limit=1000")
                assert st == 200, b
                return b if len(b["units"]) == N else None
            b = lfunit.wait_for(listed, timeout=30, what="all %d units listed" % N)
            assert all(u["presence"] == "heartbeat" for u in b["units"]), b
            lfunit.wait_for(lambda: sim_status(sim)["events"] > 5 * N, timeout=60,
                            what="scripted events")
            totals = {}
            lfunit.wait_for(lambda: sum(check_stream(hub, "sim-%05d" % i) > 1
                                        for i in range(1, N + 1)) >= N // 2,
                            timeout=60, what="events of half the units on the hub")
            for i in range(1, N + 1):
                totals[i] = check_stream(hub, "sim-%05d" % i)
            assert sim.terminate() == 0
            # restart on the same data: no re-registration error, events continue
            sim = sim_proc(hub, data, ["--presence", "heartbeat", "--heartbeat-interval", "1"])
            lfunit.wait_for(lambda: sum(check_stream(hub, "sim-%05d" % i) > totals[i]
                                        for i in range(1, N + 1)) >= N // 2,
                            timeout=60, what="events after the restart")
            assert sim.terminate() == 0
        finally:
            sim.kill()


def test_storm():
    with lfhub.Hub() as hub:
        data = os.path.join(hub.data_dir, "sim")
        os.makedirs(data)
        t0 = time.time()
        sim = sim_proc(hub, data, ["--storm", "6", "--name-prefix", "storm-"])
        try:
            b = sim_status(sim)
            assert b["storm"] and b["offline"] == N, b
            # no answers during the storm
            try:
                st, _, _ = sim.get("/u/storm-00001/ping", timeout=1)
                assert time.time() - t0 > 6, "answered during the storm: %s" % st
            except OSError:
                pass
            time.sleep(max(0, 6 - (time.time() - t0)) + 0.5)
            backlog = sim_status(sim)["events"]
            assert backlog > N, backlog
            st, b, _ = sim.get("/u/storm-00001/ping", timeout=10)
            assert st == 200, b
            # everything held during the storm reaches the hub, once, in order
            lfunit.wait_for(lambda: sim_status(sim)["acked"] >= backlog, timeout=90,
                            what="the backlog to be acknowledged")
            total = sum(check_stream(hub, "storm-%05d" % i) for i in range(1, N + 1))
            assert total >= backlog, (total, backlog)
            assert sim.terminate() == 0
        finally:
            sim.kill()


if __name__ == "__main__":
    lfhub.run_tests([test_sim_basic_and_restart, test_storm])
