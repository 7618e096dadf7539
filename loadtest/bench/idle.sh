#!/usr/bin/env bash
# Memory per idle keep-alive client: shiftgate, nginx and a plain Go server.
#
#   loadtest/bench/idle.sh [N]        (N idle clients, default 10000)
#   TLS=1 loadtest/bench/idle.sh [N]  (the clients connect over TLS: shiftgate and nginx)
#
# For each target it starts a fresh server on loopback (shiftgate and nginx proxy to
# one `shiftgate backend`; the Go floor is `shiftgate loadtest idle -floor`), runs
# `shiftgate loadtest idle -n N -hold 25s` against it (one GET per client, then idle
# for 25 s), stops it by PID and does that three times (RUNS=, HOLD= change both). It prints each run and the median KiB per idle
# connection, (RSS with the clients - RSS before) / N, and the median RSS after the
# clients left. It installs nothing: without nginx it prints the apt-get line and
# measures shiftgate and the floor alone. It builds shiftgate from this checkout into
# a temporary directory (or uses $SHIFTGATE_BIN). Runs of the same target differ by a
# few percent. shiftgate parks idle connections after 1 s and returns the memory they
# left on a 10 s tick: the 25 s hold and the 15 s wait after the clients left let both
# show.
set -euo pipefail

n=${1:-10000}
runs=${RUNS:-3}
# Idle clients stay this long before the reading with them: shiftgate parks idle
# connections after 1 s and returns the memory they left on a 10 s tick.
hold=${HOLD:-25s}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

# Every client is a descriptor in the load generator and one in the server.
need=$((n + 1024))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
	ulimit -n "$need" 2>/dev/null || {
		echo "idle: needs $need open files; the hard limit is $(ulimit -Hn): raise it (ulimit -Hn) or pass a smaller N" >&2
		exit 1
	}
fi

# shellcheck source=lib.sh
. "$here/lib.sh"

tmp=$(mktemp -d)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bin=${SHIFTGATE_BIN:-}
if [ -z "$bin" ]; then
	echo "idle: building shiftgate" >&2
	(cd "$root" && go build -o "$tmp/shiftgate" .)
	bin=$tmp/shiftgate
fi

# free_port: a loopback port nothing listens on now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT: wait up to 10 s for a listener on PORT.
wait_port() {
	local i
	for i in $(seq 100); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "idle: nothing listens on $1" >&2
	return 1
}

# stop PID: end a server this script started and forget it.
stop() {
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	local keep=() p
	for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	pids=("${keep[@]}")
}

# TLS=1: shiftgate and nginx serve one self-signed ECDSA P-256 certificate (made with
# openssl) and the clients connect over TLS; the Go floor, plain only, is left out.
tls=${TLS:-}
scheme=http
if [ -n "$tls" ]; then
	if ! command -v openssl >/dev/null; then
		echo "idle: TLS=1 needs openssl; install with: apt-get update && apt-get install -y openssl" >&2
		exit 1
	fi
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
		-subj /CN=idle.test -keyout "$tmp/idle.key" -out "$tmp/idle.crt" 2>/dev/null
	scheme=https
fi

backend_port=$(free_port)
"$bin" backend -listen "127.0.0.1:$backend_port" >/dev/null 2>"$tmp/backend.log" &
pids+=($!)
wait_port "$backend_port"

# median: the middle of the numbers on stdin.
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# record TARGET JSON: keep a run's per-connection KiB and RSS after, and print it.
record() {
	local per after
	per=$(sed -n 's/.*"per_conn_bytes":\([0-9.e+-]*\).*/\1/p' <<<"$2" | awk '{printf "%.2f", $1/1024}')
	after=$(sed -n 's/.*"rss_after":\([0-9]*\).*/\1/p' <<<"$2" | awk '{printf "%.0f", $1/1048576}')
	echo "$per" >>"$tmp/$1.per"
	echo "$after" >>"$tmp/$1.after"
	echo "idle: $1 run: $per KiB per idle connection, RSS after they left $after MiB" >&2
}

run_shiftgate() {
	local port admin pid out listen tlsblock=""
	port=$(free_port)
	admin=$(free_port)
	listen=$port
	if [ -n "$tls" ]; then
		listen=$(free_port) # the plain listener, unused
		tlsblock="tls: { listen: 127.0.0.1:$port, certs: [{ cert_file: $tmp/idle.crt, key_file: $tmp/idle.key }] }"
	fi
	mkdir -p "$tmp/sg"
	cat >"$tmp/sg/shiftgate.yaml" <<EOF
listen: 127.0.0.1:$listen
$tlsblock
admin:
  listen: 127.0.0.1:$admin
state_dir: $tmp/sg/state
limits:
  max_conns: $((n + 1000))
timeouts:
  idle: 300s
regions:
  idc: { upstreams: ["127.0.0.1:$backend_port"] }
  cloud: { upstreams: ["127.0.0.1:$backend_port"] }
split: { from: idc, to: cloud, salt: idle }
routes:
  - name: default
    match: { path_prefix: / }
    percent: 0
EOF
	"$bin" serve -config "$tmp/sg/shiftgate.yaml" >/dev/null 2>"$tmp/sg/log" &
	pid=$!
	pids+=("$pid")
	wait_port "$port"
	wait_port "$admin"
	out=$("$bin" loadtest idle -json -insecure -hold "$hold" -n "$n" -pid "$pid" -metrics "http://127.0.0.1:$admin/metrics" "$scheme://127.0.0.1:$port/idle")
	stop "$pid"
	record shiftgate "$out"
}

run_nginx() {
	local port pid out ssl=""
	port=$(free_port)
	if [ -n "$tls" ]; then
		ssl="ssl; ssl_certificate $tmp/idle.crt; ssl_certificate_key $tmp/idle.key"
	fi
	mkdir -p "$tmp/ngx"
	cat >"$tmp/ngx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile $((n + 2048));
pid $tmp/ngx/nginx.pid;
error_log $tmp/ngx/error.log warn;
events { worker_connections $((n + 1024)); }
http {
    access_log off;
    client_body_temp_path $tmp/ngx/body;
    proxy_temp_path $tmp/ngx/proxy;
    fastcgi_temp_path $tmp/ngx/fastcgi;
    uwsgi_temp_path $tmp/ngx/uwsgi;
    scgi_temp_path $tmp/ngx/scgi;
    keepalive_timeout 300s;
    upstream backend { server 127.0.0.1:$backend_port; keepalive 64; }
    server {
        listen 127.0.0.1:$port backlog=4096 $ssl;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
	"$nginx" -c "$tmp/ngx/nginx.conf" -e "$tmp/ngx/error.log" &
	pid=$!
	pids+=("$pid")
	wait_port "$port"
	out=$("$bin" loadtest idle -json -insecure -hold "$hold" -n "$n" -pid "$pid" -after 2s "$scheme://127.0.0.1:$port/idle")
	stop "$pid"
	record nginx "$out"
}

run_floor() {
	local out
	out=$("$bin" loadtest idle -json -hold "$hold" -n "$n" -after 2s -floor)
	record floor "$out"
}

targets=(shiftgate floor)
if [ -n "$tls" ]; then targets=(shiftgate); fi
if nginx=$(find_bin nginx); then
	targets=(shiftgate nginx floor)
	if [ -n "$tls" ]; then targets=(shiftgate nginx); fi
else
	echo "idle: nginx missing; install with: apt-get update && apt-get install -y $(nginx_pkg)" >&2
fi
for i in $(seq "$runs"); do
	for t in "${targets[@]}"; do "run_$t"; done
done

echo "idle keep-alive $scheme clients: $n, median of $runs runs"
printf '%-10s %18s %22s\n' target "KiB/idle conn" "RSS after left (MiB)"
for t in "${targets[@]}"; do
	printf '%-10s %18s %22s\n' "$t" "$(median <"$tmp/$t.per")" "$(median <"$tmp/$t.after")"
done
