#!/usr/bin/env bash
# The proxy's cost, nginx beside its floor from the same run:
#  Requests per second and p99 latency of three small Procfile apps (python3, keep-alive)
#  through Slipway's managed nginx (Host: <app>.localhost) vs straight to the app
#  container's published port, with the same client and settings (wrk, 2 threads,
#  16 connections, 8 s), interleaved direct/nginx 3 times each after a 2 s warm-up
#  of each; the median of each is reported. The client stands in for users on other
#  machines: wrk gets core 0 to itself, and the server side (the app's processes and
#  nginx) shares the other cores, in both measurements.
#  Also the CPU time each request costs the app (direct runs) and nginx's workers
#  (nginx runs), from /proc: on a shared core the ratio can be no better than
#  app / (app + nginx), so the app cost at which 0.8x holds is 4x nginx's.
#  Target: nginx throughput >= 0.8x direct.
# Usage: Benchmarks/proxy.sh [path/to/slipway]   (default: a release build)
#   SHARED_CPUS=1 Benchmarks/proxy.sh: no pinning; client, app and nginx share every core.
. "$(dirname "$0")/lib.sh" "$@"
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null

wrk_opts=(-t2 -c16 --latency)
cores=$(nproc)
client_cpus=0 server_cpus=1-$((cores - 1))
[ "${SHARED_CPUS:-0}" = 1 ] && client_cpus=0-$((cores - 1)) server_cpus=0-$((cores - 1))
[ "$cores" -ge 2 ] || { echo "needs at least 2 cores (one for the client)" >&2; exit 1; }
# A process and its descendants onto the server's cores (threads too: -a).
pin_tree() {
  local p
  taskset -a -p -c "$server_cpus" "$1" >/dev/null
  for p in $(cat /proc/"$1"/task/*/children 2>/dev/null); do pin_tree "$p"; done
}
runs=3 duration=8s

# Two apps, each measured both ways:
#  fast:   one asyncio thread answering every GET on a keep-alive connection with a
#          fixed response, so that the proxy shows rather than the app (about 5x
#          what http.server does);
#  sample: the sample app of Benchmarks/deploy.sh (http.server's ThreadingHTTPServer),
#          answering a fixed body, with a listen backlog a production server has; its threads contend for the GIL, so its figures
#          swing more from run to run;
#  work:   the same server doing about half a millisecond of Python per request,
#          as an app rendering a small page would.
fast_app() {
  cat <<'PY'
import asyncio, os
BODY = b"hello\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
class Connection(asyncio.Protocol):
    def connection_made(self, transport): self.transport = transport; self.buffer = b""
    def data_received(self, data):  # requests are GETs: one per blank line
        self.buffer += data
        if (n := self.buffer.count(b"\r\n\r\n")):
            self.buffer = self.buffer[self.buffer.rindex(b"\r\n\r\n") + 4:]
            self.transport.write(RESPONSE * n)
async def main():
    server = await asyncio.get_running_loop().create_server(Connection, "", int(os.environ["PORT"]), backlog=128)
    await server.serve_forever()
asyncio.run(main())
PY
}
sample_app() {
  cat <<'PY'
import http.server, os
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # socketserver's default of 5 drops the SYNs of nginx's first upstream burst (1 s retries)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 65536  # headers and body in one write (no delayed-ACK stall)
    def do_GET(self):
        body = b"hello\n"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
Server(("", int(os.environ["PORT"])), H).serve_forever()
PY
}
work_app() {
  sample_app | sed 's|        body = b"hello\\n"|        sum(i * i for i in range(20000)); body = b"hello\\n"|'
}

# CPU time (clock ticks, user + system) of processes $@ and all their descendants.
cpu_ticks() {
  local p t=0
  for p in "$@"; do
    [ -r /proc/"$p"/stat ] || continue
    t=$((t + $(awk '{print $14 + $15}' /proc/"$p"/stat)))
    t=$((t + $(cpu_ticks $(cat /proc/"$p"/task/*/children 2>/dev/null))))
  done
  echo $t
}

# One wrk run; prints "requests/s p99-ms app-us nginx-us": the last two are the CPU
# time per request of the processes $4 and $5 (and their descendants) during the run.
# Errors (non-2xx, socket errors) fail it.
bench() {  # $1: url, $2: duration, $3: Host header, $4: the app's pid, $5: nginx's workers
  local out app0 app1 nginx0 nginx1
  app0=$(cpu_ticks $4); nginx0=$(cpu_ticks $5)
  out=$(taskset -c "$client_cpus" wrk "${wrk_opts[@]}" -H "Host: $3" -d"$2" "$1")
  app1=$(cpu_ticks $4); nginx1=$(cpu_ticks $5)
  python3 - "$out" $((app1 - app0)) $((nginx1 - nginx0)) "$(getconf CLK_TCK)" <<'PY'
import re, sys
out, app, nginx, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
sock = re.search(r"Socket errors: (.*)", out)
if bad or sock:
    sys.exit(f"wrk reported errors:\n{out}")
rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
requests = int(re.search(r"(\d+) requests in", out).group(1))
value, unit = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
per_request = lambda ticks: f"{ticks / hz * 1e6 / requests:.1f}"
print(f"{rps:.0f} {float(value) * {'us': 0.001, 'ms': 1, 's': 1000}[unit]:.2f} {per_request(app)} {per_request(nginx)}")
PY
}

# Deploys app $1 (its server.py from ${1}_app), then measures it direct and through nginx.
measure() {
  local app=$1 repo=$work/$1 host=$1.localhost nginx_url="http://127.0.0.1:$proxy/" ids hostport direct_url
  git init -q -b main "$repo"
  "${app}_app" > "$repo/server.py"
  printf 'web: python3 server.py\n' > "$repo/Procfile"
  git -C "$repo" add -A
  git -C "$repo" -c user.email=b@b -c user.name=b commit -qm "$app"
  git -C "$repo" push -q "ssh://127.0.0.1:$port/$app" main 2>"$work/push.out" || { cat "$work/push.out" >&2; exit 1; }
  for _ in $(seq 500); do [ "$(curl -s -m 2 -H "Host: $host" "$nginx_url")" = hello ] && break; sleep 0.02; done
  [ "$(curl -s -m 2 -H "Host: $host" "$nginx_url")" = hello ] || { cat "$work/push.out"; echo "no 200 from $app through nginx"; exit 1; } >&2

  # The web container's published port, from the engine (this server's containers only).
  labels="\"org.slipway.app=$app\",\"org.slipway.kind=process\",\"org.slipway.instance=$(cat "$work/data/instance-id")\""
  ids=$(curl -fsS --unix-socket $sock -G http://d/v1.41/containers/json --data-urlencode "filters={\"label\":[$labels]}" |
    python3 -c 'import json,sys; print(" ".join(c["Id"] for c in json.load(sys.stdin)))')
  set -- $ids
  [ $# -eq 1 ] || { echo "expected one web container of $app, found $#: $ids" >&2; exit 1; }
  hostport=$(curl -fsS --unix-socket $sock "http://d/v1.41/containers/$1/json" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["NetworkSettings"]["Ports"]["5000/tcp"][0]["HostPort"])')
  direct_url="http://127.0.0.1:$hostport/"
  [ "$(curl -s -m 2 "$direct_url")" = hello ] || { echo "no 200 from $app at $direct_url" >&2; exit 1; }
  local app_pid nginx_pid
  app_pid=$(curl -fsS --unix-socket $sock "http://d/v1.41/containers/$1/json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["State"]["Pid"])')
  nginx_pid=$(cat "$work/data/nginx/nginx.pid")
  pin_tree "$app_pid"; pin_tree "$nginx_pid"

  echo "== $app app: requests/s and p99 latency, through nginx vs direct to the container's port (wrk ${wrk_opts[*]:0:2} -d$duration on core $client_cpus, app and nginx on cores $server_cpus, median of $runs)"
  # The nginx workers are the master's children (the master itself only supervises).
  local workers; workers=$(cat /proc/"$nginx_pid"/task/*/children)
  bench "$direct_url" 2s "$host" "$app_pid" "$workers" >/dev/null; bench "$nginx_url" 2s "$host" "$app_pid" "$workers" >/dev/null
  local d_rps=() d_p99=() d_cpu=() n_rps=() n_p99=() n_app=() n_cpu=() x r l a c dr dl nr nl
  for _ in $(seq $runs); do
    x=$(bench "$direct_url" $duration "$host" "$app_pid" "$workers"); read -r r l a c <<<"$x"; d_rps+=("$r"); d_p99+=("$l"); d_cpu+=("$a")
    x=$(bench "$nginx_url" $duration "$host" "$app_pid" "$workers"); read -r r l a c <<<"$x"; n_rps+=("$r"); n_p99+=("$l"); n_app+=("$a"); n_cpu+=("$c")
  done
  dr=$(median "${d_rps[@]}"); dl=$(median "${d_p99[@]}"); nr=$(median "${n_rps[@]}"); nl=$(median "${n_p99[@]}")
  printf '  %-8s %8s req/s  p99 %7s ms   (req/s %s; p99 ms %s)\n' direct "$dr" "$dl" "${d_rps[*]}" "${d_p99[*]}" nginx "$nr" "$nl" "${n_rps[*]}" "${n_p99[*]}"
  printf '  CPU per request: direct, the app %s us; through nginx, the app %s us + nginx %s us  (runs: %s; %s; %s)\n' \
    "$(median "${d_cpu[@]}")" "$(median "${n_app[@]}")" "$(median "${n_cpu[@]}")" "${d_cpu[*]}" "${n_app[*]}" "${n_cpu[*]}"
  echo "  ratio nginx / direct throughput: $(python3 -c "print(f'{$nr/$dr:.2f}')")  (target >= 0.8)"
}

measure fast
measure sample
measure work
