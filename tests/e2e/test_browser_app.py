"""test_browser_app.py — the customer app (/app) in a real browser.

Starts a real hub, registers a unit with lockers and a user, then runs
tests/browser/app.test.mjs (Debian's chromium driven by playwright-core):
sign in with the user's token, check availability, reserve, pay (the
simulated step), confirm, see the code and the countdown, cancel from the
list — each checked again through the API. The screenshot is kept in
e2e-artifacts/app.png under the test's working directory.

Needs node and tests/browser/node_modules (scripts/setup.sh --all).
"""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402

SRC = os.environ.get("LF_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BROWSER_DIR = os.path.join(SRC, "tests", "browser")


def test_app_reserve_and_confirm_in_chromium():
    node = shutil.which("node")
    assert node, "node is not installed (scripts/setup.sh --all)"
    assert os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")), \
        "playwright-core missing: run scripts/setup.sh --all (npm install in tests/browser)"
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    assert os.path.exists(chromium), chromium + " missing (scripts/setup.sh --all)"
    with lfhub.Hub() as hub:
        st, page, hdrs = hub.get("/app")
        assert st == 200 and "text/html" in hdrs.get("content-type", ""), (st, hdrs)
        for a in ("/assets/app.js", "/assets/app.css"):
            assert hub.get(a)[0] == 200, a
        hub.create_unit("station-1", lockers=[("A01", "S"), ("A02", "S"), ("A03", "M")])
        user = hub.create_user("carol")
        art = os.path.join(os.getcwd(), "e2e-artifacts")
        os.makedirs(art, exist_ok=True)
        shot = os.path.join(art, "app.png")
        if os.path.exists(shot):
            os.unlink(shot)
        env = dict(os.environ, HUB_URL=hub.url, USER_TOKEN=user["token"], UNIT="station-1",
                   SCREENSHOT=shot, CHROMIUM=chromium)
        t0 = time.time()
        r = subprocess.run([node, os.path.join(BROWSER_DIR, "app.test.mjs")], cwd=BROWSER_DIR,
                           env=env, timeout=600)
        print("browser test: exit %d in %.1f s" % (r.returncode, time.time() - t0))
        assert r.returncode == 0, "app.test.mjs failed (exit %d)" % r.returncode
        # and through the API, independently of the page
        st, lst, _ = hub.get("/v1/reservations", token=user["token"])
        assert st == 200
        statuses = sorted(x["status"] for x in lst["reservations"])
        assert statuses == ["cancelled", "confirmed"], statuses
        assert os.path.getsize(shot) > 5000, "no screenshot at " + shot
        print("screenshot artefact: " + shot, flush=True)


if __name__ == "__main__":
    lfhub.run_tests([test_app_reserve_and_confirm_in_chromium])
