#!/usr/bin/env bash
# Side-by-side bench: shiftgate against nginx and HAProxy on the same cores.
#
#   loadtest/bench/bench.sh [-quick] [flags of `shiftgate loadtest bench`]
#
# It installs nothing: when nginx, haproxy or taskset is missing it prints the
# apt-get line to run and stops. It builds shiftgate from this checkout into a
# temporary directory (or uses $SHIFTGATE_BIN), and the floor proxies (or uses
# $FLOOR_BIN), then runs `shiftgate loadtest bench`,
# which writes the configs, starts every process on loopback, measures, stops them by
# PID and prints the table. Ctrl-C or SIGTERM stops everything it started.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

# shellcheck source=lib.sh
. "$here/lib.sh"

missing=()
nginx=$(find_bin nginx) || missing+=("$(nginx_pkg)")
haproxy=$(find_bin haproxy) || missing+=(haproxy)
find_bin taskset >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
	echo "bench: missing ${missing[*]}." >&2
	echo "bench: install with: apt-get update && apt-get install -y ${missing[*]}" >&2
	exit 1
fi

tmp=$(mktemp -d)
child=
cleanup() {
	if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

bin=${SHIFTGATE_BIN:-}
if [ -z "$bin" ]; then
	if ! command -v go >/dev/null; then
		echo "bench: go not found; build shiftgate and set SHIFTGATE_BIN=/path/to/shiftgate" >&2
		exit 1
	fi
	echo "bench: building shiftgate" >&2
	(cd "$root" && go build -o "$tmp/shiftgate" .)
	bin=$tmp/shiftgate
fi

# The floor targets' binary (loadtest/bench/floor): built from the checkout when Go
# is at hand, or taken from $FLOOR_BIN.
floor=${FLOOR_BIN:-}
if [ -z "$floor" ] && command -v go >/dev/null; then
	(cd "$root" && go build -o "$tmp/floor" ./loadtest/bench/floor)
	floor=$tmp/floor
fi
floorflag=()
if [ -n "$floor" ]; then floorflag=(-floor "$floor"); fi

# Run in the background and wait, so a signal to this script reaches the bench at
# once (bash defers traps while a foreground child runs); the bench stops its own
# children by PID when it gets SIGTERM or SIGINT.
"$bin" loadtest bench -nginx "$nginx" -haproxy "$haproxy" "${floorflag[@]}" "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' INT TERM
status=0
while :; do
	wait "$child" && status=0 || status=$?
	kill -0 "$child" 2>/dev/null || break
done
child=
exit "$status"
