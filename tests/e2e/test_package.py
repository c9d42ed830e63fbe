"""test_package.py — the Debian package, built and installed for real.

Configures a separate Release build (no sanitizers) in a temp dir, builds
the binary, runs `cmake --install` into a staging dir and checks the layout,
then `cpack -G DEB`. The .deb must declare its shared-library dependencies
(dpkg-shlibdeps via CPACK_DEBIAN_PACKAGE_SHLIBDEPS). Then, as root (CI):
`apt-get install -y ./lockerfleet_*.deb`, `lockerfleet --version`, the man
page, `systemd-analyze verify` on both installed units, and
`apt-get remove` again. Not root: the install part is skipped and said so.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lfhub  # noqa: E402

SRC = os.environ.get("LF_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
UNITS = ["lockerfleet-hub.service", "lockerfleet-unit.service"]


def sh(args, cwd=None, timeout=1200, check=True, env=None):
    p = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    out = (p.stdout + p.stderr).strip()
    print("$ %s -> %d\n%s" % (" ".join(args), p.returncode, out[-3000:]))
    if check:
        assert p.returncode == 0, "%s failed" % args[0]
    return p.returncode, out


def version():
    text = open(os.path.join(SRC, "CMakeLists.txt")).read()
    return re.search(r"project\(lockerfleet VERSION ([0-9.]+)", text).group(1)


def test_install_and_deb():
    tmp = tempfile.mkdtemp(prefix="lf-pkg-")
    installed = False
    try:
        build = os.path.join(tmp, "build")
        sh(["cmake", "-S", SRC, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DLF_SANITIZE=OFF",
            "-DCMAKE_INSTALL_PREFIX=/usr", "-DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON"])
        sh(["cmake", "--build", build, "--target", "lockerfleet", "-j2"], timeout=1800)

        stage = os.path.join(tmp, "stage")
        env = dict(os.environ, DESTDIR=stage)
        sh(["cmake", "--install", build], env=env)
        for rel in ["usr/bin/lockerfleet", "usr/share/man/man1/lockerfleet.1",
                    "usr/share/doc/lockerfleet/openapi.yaml",
                    "usr/share/doc/lockerfleet/examples/hub.ini",
                    "usr/share/doc/lockerfleet/examples/unit.ini",
                    "usr/share/doc/lockerfleet/examples/alerts.yml",
                    "usr/share/doc/lockerfleet/examples/lockerfleet.json",
                    "lib/systemd/system/lockerfleet-hub.service",
                    "lib/systemd/system/lockerfleet-unit.service"]:
            assert os.path.exists(os.path.join(stage, rel)), "cmake --install: missing " + rel
        # the loadable modules (src/core/module.h): server-store backends and
        # the engine benchmarks, in LIBDIR/lockerfleet next to nothing else
        mods = glob.glob(os.path.join(stage, "usr", "lib", "**", "lockerfleet", "*.so"),
                         recursive=True)
        names = sorted(os.path.basename(m) for m in mods)
        print("modules:", names)
        assert "lockerfleet-bench-engines.so" in names, names
        # libcurl's module: the hub's pinger and calls to units load it
        assert "lockerfleet-curl.so" in names, names
        for b in ("postgres", "nats", "redis"):
            if os.path.exists(os.path.join(build, "lockerfleet-store-%s.so" % b)):
                assert "lockerfleet-store-%s.so" % b in names, names

        sh(["cpack", "-G", "DEB"], cwd=build, timeout=1200)
        debs = glob.glob(os.path.join(build, "lockerfleet_*.deb"))
        assert len(debs) == 1, debs
        deb = debs[0]
        assert os.path.basename(deb).startswith("lockerfleet_%s_" % version()), deb
        _, info = sh(["dpkg-deb", "--info", deb])
        dep = re.search(r"^ Depends: (.*)$", info, re.M)
        assert dep, "the .deb declares no Depends"
        for lib in ("libsqlite3", "libmicrohttpd", "libjansson", "libcurl", "libsodium"):
            assert lib in dep.group(1), "Depends lacks %s: %s" % (lib, dep.group(1))
        # dlopen()ed, not linked (src/core/notify.c): declared by hand
        assert re.search(r"^ Recommends: .*libsystemd0", info, re.M), info
        _, listing = sh(["dpkg-deb", "--contents", deb])
        for rel in ["./usr/bin/lockerfleet", "lockerfleet-hub.service", "lockerfleet.1",
                    "/lockerfleet/lockerfleet-bench-engines.so", "/lockerfleet/lockerfleet-curl.so"]:
            assert rel in listing, rel

        if os.geteuid() != 0:
            print("SKIP apt-get install: not root (CI runs as root)")
            return
        sh(["apt-get", "install", "-y", "--no-install-recommends", os.path.abspath(deb)],
           cwd=build, timeout=600, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        installed = True
        _, out = sh(["/usr/bin/lockerfleet", "--version"])
        assert out == "lockerfleet %s" % version(), out
        # the installed binary finds its modules relative to itself: the
        # bench module parses --help, a postgres URL fails on the connection
        # (port 1), not on a missing module
        rc, out = sh(["/usr/bin/lockerfleet", "bench", "backend", "--help"], check=False)
        assert rc == 0 and "usage: lockerfleet bench backend" in out, out
        if os.path.exists(os.path.join(build, "lockerfleet-store-postgres.so")):
            data = os.path.join(tmp, "data")
            rc, out = sh(["/usr/bin/lockerfleet", "hub", "--listen", "127.0.0.1:0", "--data", data,
                          "--store", "postgres://127.0.0.1:1/none?connect_timeout=2"],
                         check=False, timeout=60)
            assert rc != 0 and "cannot open store" in out and "module" not in out, out
        _, out = sh(["dpkg", "-s", "lockerfleet"])
        assert "Status: install ok installed" in out
        assert os.path.exists("/usr/share/man/man1/lockerfleet.1"), "man page not installed"
        sad = shutil.which("systemd-analyze")
        if not sad:
            print("SKIP systemd-analyze verify: systemd-analyze is not installed")
        else:
            paths = ["/lib/systemd/system/" + u for u in UNITS]
            rc, out = sh([sad, "verify"] + paths, check=False)
            # verify reports problems of our units by their file name; the
            # state of the machine's own units (no running systemd in a
            # container) is not ours to judge
            ours = [ln for ln in out.splitlines()
                    if any(u in ln for u in UNITS)]
            assert rc == 0 and not ours, "systemd-analyze verify: %s" % out
            _, sec = sh([sad, "security", "--offline=true"] + paths, check=False)
    finally:
        if installed:
            sh(["apt-get", "remove", "-y", "lockerfleet"], check=False,
               env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    lfhub.run_tests([test_install_and_deb])
