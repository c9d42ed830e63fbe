#!/usr/bin/env bash
# nats-server-2.10.sh [--path] — the nats-server the 3-node cluster tests run.
#
# Debian 12's nats-server (2.9.10) has a clustered-mode bug (nats-server
# issue #4320, fixed in 2.9.21 and 2.10): the stream leader checks a
# publish's Nats-Expected-Last-Subject-Sequence against the last *applied*
# message, before the Raft proposal, so two concurrent appends to one event
# stream can both pass on a replicated stream. A single server is not
# affected. The cluster tests (with-server.sh nats-cluster) therefore run
# Debian 13 ("trixie")'s nats-server package, 2.10.
#
# This fetches that package with apt, from deb.debian.org, verified against
# the Debian archive keyring like any apt download, using private apt
# directories (the machine's apt sources, lists and installed packages are
# not touched), and unpacks only the binary into .deps/nats-server-2.10/.
# Idempotent: does nothing when the binary is there.
#
#   nats-server-2.10.sh          fetch if missing
#   nats-server-2.10.sh --path   print the binary's path; exit 1 if missing
#
# LF_DEPS_DIR moves .deps (default: the repository's .deps).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${LF_DEPS_DIR:-$here/.deps}/nats-server-2.10
bin=$dir/nats-server

if [[ "${1:-}" == --path ]]; then
    [[ -x "$bin" ]] || exit 1
    echo "$bin"
    exit 0
fi
[[ -x "$bin" ]] && exit 0

keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -r "$keyring" ]] || {
    echo "nats-server-2.10: $keyring missing (package debian-archive-keyring)" >&2
    exit 1
}
work=$(mktemp -d "${TMPDIR:-/tmp}/lf-nats-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
echo "deb [signed-by=$keyring] http://deb.debian.org/debian trixie main" >"$work/sources.list"
apt_opts=(-q -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
    -o Dir::State::Status=/dev/null -o Debug::NoLocking=1
    -o "APT::Architectures::=$(dpkg --print-architecture)")
# As root, apt would hand the download to the _apt user, who cannot write
# in our private temp dir.
[[ $(id -u) -eq 0 ]] && apt_opts+=(-o APT::Sandbox::User=root)

echo "setup: fetching nats-server 2.10 (Debian 13's package) for the NATS cluster tests"
apt-get "${apt_opts[@]}" update >"$work/update.log" 2>&1 || {
    cat "$work/update.log" >&2
    echo "nats-server-2.10: apt-get update of Debian 13's index failed" >&2
    exit 1
}
(cd "$work" && apt-get "${apt_opts[@]}" download nats-server >download.log 2>&1) || {
    cat "$work/download.log" >&2
    echo "nats-server-2.10: apt-get download nats-server failed" >&2
    exit 1
}
dpkg-deb -x "$work"/nats-server_*.deb "$work/x"
found=$(find "$work/x" -type f -name nats-server -perm -u+x | head -1)
[[ -n "$found" ]] || {
    echo "nats-server-2.10: no nats-server binary in the package" >&2
    exit 1
}
version=$("$found" --version 2>&1 || true)
case "$version" in
*v2.9.2[1-9]* | *v2.9.[3-9][0-9]* | *v2.1[0-9].* | *v[3-9].*) ;;
*)
    echo "nats-server-2.10: Debian 13 gave '$version', want >= 2.9.21" >&2
    exit 1
    ;;
esac
mkdir -p "$dir"
install -m 755 "$found" "$bin.tmp"
mv "$bin.tmp" "$bin"
echo "setup: $version in $bin"
