#!/usr/bin/env bash
# Slipway's proxying against the proxies its peers use, on the same backend, client and run:
#  (a) slipway: the managed nginx of a Slipway server, with the config Slipway rendered
#      for a deployed app (Host: <app>.localhost on its proxy port), as it runs;
#  (b) nginx:   a minimal stock nginx `proxy_pass` config, same worker count, keep-alive
#      to the upstream as (a) has it (`keepalive 64`, HTTP/1.1, empty Connection; but
#      nginx's default of 1000 requests per upstream connection where (a) sets 10000),
#      no access log (a logs each request, buffered) and no extra headers;
#  (c) caddy:   Debian's Caddy, `reverse_proxy` (keep-alive to the upstream by default;
#      it adds X-Forwarded-For/-Proto/-Host), GOMAXPROCS = the worker count;
#  (d) haproxy: Debian's HAProxy, `mode http` with `nbthread` = the worker count,
#      `http-reuse always` (idle server connections shared across clients, as nginx's
#      pool is), no log, no added headers;
#  (d') haproxy-fwd: the same HAProxy process, with the forwarding headers Slipway's config
#      sends its apps (X-Forwarded-For/-Proto/-Port, X-Real-IP, X-Request-Start), as a PaaS
#      in front of apps configures it; still no log (Slipway's nginx logs every request).
# All four pass to the same two backends, the web containers of two Slipway apps running
# one server.py (a single-threaded asyncio HTTP/1.1 server, the same file for both):
#  static: a fixed 6-byte answer, so the proxy shows;
#  work:   the same answer after a fixed amount of Python per request (WORK iterations,
#          default 5000, about 0.2-0.4 ms), as an app rendering a small page would.
# The client (wrk, 1 thread, 16 keep-alive connections, --latency) has core 0 to itself;
# every proxy and the backends run on the other cores. Runs are interleaved, in a random order each
# round, RUNS rounds (default 5) of DURATION (default 8s) each after a 2 s warm-up of
# each; medians reported, each run's figures beside them. CPU per request from /proc
# (utime + stime, clock ticks) of the proxy's processes (nginx: the master, its workers
# and the workers it reaped) and of the backend during each run, divided by the requests
# wrk counted; socket errors and runs during which nginx reloaded are counted beside them
# (Slipway's supervisor rotates an access log past access_log_max_bytes, 16 MB by
# default, every few seconds at these rates; it has nginx reopen its logs, USR1, and
# reloads only if a worker could not: a reload counted here is that fallback).
# Targets: (a) >= 0.95x (b)'s throughput and (a)'s p99 <= 1.1x (b)'s; (a) >= the better
# of (c) and (d) in throughput (printed against (d) and against (d')).
# The machine may be shared: run it more than once and compare the runs.
# Usage: [RUNS=5] [DURATION=8s] [WORK=5000] Benchmarks/proxy.sh [path/to/slipway]   (default: a release build)
. "$(dirname "$0")/lib.sh" "$@"
missing=(); for tool in wrk caddy haproxy; do command -v $tool >/dev/null || missing+=("$tool"); done
[ ${#missing[@]} -eq 0 ] || apt-get install -y -qq "${missing[@]}" >/dev/null

runs=${RUNS:-5} duration=${DURATION:-8s} work_iterations=${WORK:-5000}
wrk_opts=(-t1 -c16 --latency)
cores=$(nproc)
[ "$cores" -ge 2 ] || { echo "needs at least 2 cores (one for the client)" >&2; exit 1; }
client_cpus=0 server_cpus=1-$((cores - 1))
# A process and its descendants onto the server's cores (threads too: -a).
pin_tree() {
  local p
  taskset -a -p -c "$server_cpus" "$1" >/dev/null
  for p in $(cat /proc/"$1"/task/*/children 2>/dev/null); do pin_tree "$p"; done
}

# The proxies this script starts, stopped before lib.sh's cleanup.
stock_pid= caddy_pid= haproxy_pid=
proxy_cleanup() {
  # No errexit here: a `wait` for a killed process returns non-zero, and the rest must still run.
  set +e
  [ -n "$caddy_pid" ] && kill "$caddy_pid" 2>/dev/null && wait "$caddy_pid" 2>/dev/null
  [ -n "$haproxy_pid" ] && kill "$haproxy_pid" 2>/dev/null && wait "$haproxy_pid" 2>/dev/null
  local instance
  for instance in stock variants; do
    [ -f "$work/$instance/nginx.pid" ] && kill -QUIT "$(cat "$work/$instance/nginx.pid")" 2>/dev/null
    # nginx's master leaves after its workers: wait for it, so that the data dir can go.
    for _ in $(seq 50); do [ -f "$work/$instance/nginx.pid" ] || break; sleep 0.1; done
  done
  bench_cleanup
}
trap proxy_cleanup EXIT

server_py() {
  cat <<'PY'
# A single-threaded HTTP/1.1 server: every request (a GET, on a keep-alive connection)
# gets the same 6-byte answer after sys.argv[1] iterations of fixed Python work.
import asyncio, os, sys
ITERATIONS = int(sys.argv[1])
BODY = b"hello\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
def work():
    total = 0
    for i in range(ITERATIONS): total += i * i
    return total
class Connection(asyncio.Protocol):
    def connection_made(self, transport): self.transport = transport; self.buffer = b""
    def data_received(self, data):  # requests end with a blank line (no bodies)
        self.buffer += data
        if (n := self.buffer.count(b"\r\n\r\n")):
            self.buffer = self.buffer[self.buffer.rindex(b"\r\n\r\n") + 4:]
            for _ in range(n): work()
            self.transport.write(RESPONSE * n)
async def main():
    server = await asyncio.get_running_loop().create_server(Connection, "", int(os.environ["PORT"]), backlog=512)
    await server.serve_forever()
asyncio.run(main())
PY
}

# Deploys app $1 running server.py with $2 iterations; sets upstream_$1 (the address in
# Slipway's rendered upstream) and app_pid_$1 (the backend's process on the host).
deploy() {
  local app=$1 repo=$work/$1 host=$1.localhost url="http://127.0.0.1:$proxy/" ids
  git init -q -b main "$repo"
  server_py > "$repo/server.py"
  printf 'web: python3 server.py %s\n' "$2" > "$repo/Procfile"
  git -C "$repo" add server.py Procfile
  git -C "$repo" -c user.email=b@b -c user.name=b commit -qm "$app"
  git -C "$repo" push -q "ssh://127.0.0.1:$port/$app" main 2>"$work/push.out" || { cat "$work/push.out" >&2; exit 1; }
  for _ in $(seq 500); do [ "$(curl -s -m 2 -H "Host: $host" "$url")" = hello ] && break; sleep 0.02; done
  [ "$(curl -s -m 2 -H "Host: $host" "$url")" = hello ] || { cat "$work/push.out"; echo "no 200 from $app through Slipway's nginx"; exit 1; } >&2
  # The one address Slipway's config passes to: every proxy gets the same.
  local upstreams; upstreams=$(sed -n 's/^ *server \(127\.0\.0\.1:[0-9]*\) .*/\1/p' "$work/data/nginx/apps/$app.conf")
  [ "$(wc -w <<<"$upstreams")" -eq 1 ] || { echo "expected one upstream server in $app.conf: $upstreams" >&2; exit 1; }
  printf -v "upstream_$app" %s "$upstreams"
  local labels="\"org.slipway.app=$app\",\"org.slipway.kind=process\",\"org.slipway.instance=$(cat "$work/data/instance-id")\""
  ids=$(curl -fsS --unix-socket $sock -G http://d/v1.41/containers/json --data-urlencode "filters={\"label\":[$labels]}" |
    python3 -c 'import json,sys; print(" ".join(c["Id"] for c in json.load(sys.stdin)))')
  [ "$(wc -w <<<"$ids")" -eq 1 ] || { echo "expected one web container of $app, found: $ids" >&2; exit 1; }
  printf -v "app_pid_$app" %s "$(curl -fsS --unix-socket $sock "http://d/v1.41/containers/$ids/json" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["State"]["Pid"])')"
}
deploy static 0
deploy work "$work_iterations"

slipway_master=$(cat "$work/data/nginx/nginx.pid")
workers=$(wc -w < /proc/"$slipway_master"/task/"$slipway_master"/children)
pin_tree "$slipway_master"; pin_tree "$app_pid_static"; pin_tree "$app_pid_work"

# (b) stock nginx: what a minimal proxy_pass config is, nothing else.
mkdir -p "$work/stock/tmp"
stock_static=$(free_port) stock_work=$(free_port)
stock_server() {  # $1: port, $2: upstream name, $3: address
  printf '    upstream %s { server %s; keepalive 64; }\n' "$2" "$3"
  printf '    server { listen 127.0.0.1:%s; location / { proxy_pass http://%s; proxy_http_version 1.1; proxy_set_header Connection ""; } }\n' "$1" "$2"
}
cat > "$work/stock/nginx.conf" <<EOF
worker_processes $workers;
pid $work/stock/nginx.pid;
error_log $work/stock/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/stock/tmp/body;
    proxy_temp_path $work/stock/tmp/proxy;
    fastcgi_temp_path $work/stock/tmp/fastcgi;
    uwsgi_temp_path $work/stock/tmp/uwsgi;
    scgi_temp_path $work/stock/tmp/scgi;
$(stock_server "$stock_static" static "$upstream_static")
$(stock_server "$stock_work" work "$upstream_work")
}
EOF
taskset -c "$server_cpus" nginx -p "$work/stock" -c "$work/stock/nginx.conf"
for _ in $(seq 50); do [ -s "$work/stock/nginx.pid" ] && break; sleep 0.1; done
stock_master=$(cat "$work/stock/nginx.pid")

# (c) Caddy: any Host (a site address with a host would match on it), no admin endpoint, no automatic HTTPS, its state (the autosaved config) under the scratch dir.
caddy_static=$(free_port) caddy_work=$(free_port)
mkdir -p "$work/caddy"
cat > "$work/caddy/Caddyfile" <<EOF
{
	admin off
	auto_https off
}
http://:$caddy_static {
	bind 127.0.0.1
	reverse_proxy $upstream_static
}
http://:$caddy_work {
	bind 127.0.0.1
	reverse_proxy $upstream_work
}
EOF
XDG_DATA_HOME=$work/caddy XDG_CONFIG_HOME=$work/caddy GOMAXPROCS=$workers \
  taskset -c "$server_cpus" caddy run --config "$work/caddy/Caddyfile" --adapter caddyfile > "$work/caddy/out.log" 2>&1 &
caddy_pid=$!

# (d) HAProxy in the foreground (-db), so that $! is it. (d') adds what Slipway's nginx
# sets on the way to the app (its X-Request-Start in ms since the epoch, nginx's in s.ms).
forwarding() {
  printf '%s\n    ' "option forwardfor" "http-request set-header X-Real-IP %[src]" "http-request set-header X-Forwarded-Proto http" \
    "http-request set-header X-Forwarded-Port %[dst_port]" "http-request set-header X-Request-Start t=%[date(0,ms)]"
}
haproxy_static=$(free_port) haproxy_work=$(free_port) haproxy_fwd_static=$(free_port) haproxy_fwd_work=$(free_port)
mkdir -p "$work/haproxy"
cat > "$work/haproxy/haproxy.cfg" <<EOF
global
    nbthread $workers
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend static
    bind 127.0.0.1:$haproxy_static
    default_backend static
frontend work
    bind 127.0.0.1:$haproxy_work
    default_backend work
frontend static_fwd
    bind 127.0.0.1:$haproxy_fwd_static
    $(forwarding)
    default_backend static
frontend work_fwd
    bind 127.0.0.1:$haproxy_fwd_work
    $(forwarding)
    default_backend work
backend static
    server app $upstream_static
backend work
    server app $upstream_work
EOF
taskset -c "$server_cpus" haproxy -db -f "$work/haproxy/haproxy.cfg" > "$work/haproxy/out.log" 2>&1 &
haproxy_pid=$!

# Each proxy answers both backends before anything is measured.
for target in "$proxy static.localhost" "$proxy work.localhost" "$stock_static x" "$stock_work x" \
    "$caddy_static x" "$caddy_work x" "$haproxy_static x" "$haproxy_work x" "$haproxy_fwd_static x" "$haproxy_fwd_work x"; do
  read -r p h <<<"$target"
  for _ in $(seq 100); do [ "$(curl -s -m 2 -H "Host: $h" "http://127.0.0.1:$p/")" = hello ] && break; sleep 0.1; done
  [ "$(curl -s -m 2 -H "Host: $h" "http://127.0.0.1:$p/")" = hello ] || { cat "$work/caddy/out.log" "$work/haproxy/out.log" "$work/stock/error.log"; echo "no answer on port $p (Host $h)"; exit 1; } >&2
done

# CPU time (clock ticks, user + system, all threads) of processes $@ and their descendants
# (the container's first process may be an init or a shell, the server its child), with
# that of the children they have reaped: an nginx master's count keeps the time of the
# workers a reload retired (a deploy, or a rotation's fallback).
cpu_ticks() {
  local p t=0
  for p in "$@"; do
    [ -r /proc/"$p"/stat ] || continue
    t=$((t + $(awk '{print $14 + $15 + $16 + $17}' /proc/"$p"/stat)))
    t=$((t + $(cpu_ticks $(cat /proc/"$p"/task/*/children 2>/dev/null))))
  done
  echo $t
}

# Context switches (voluntary and not, all threads) of processes $@ and their descendants
# now: a proxy that hands each request on at once wakes the backend once per request, and
# is preempted by it on a shared core; one that batches its writes wakes it less often.
switches() {
  local p t=0
  for p in "$@"; do
    [ -r /proc/"$p"/stat ] || continue
    t=$((t + $(cat /proc/"$p"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s + 0}')))
    t=$((t + $(switches $(cat /proc/"$p"/task/*/children 2>/dev/null))))
  done
  echo $t
}

# One wrk run; prints "requests/s p99-ms proxy-us backend-us errors reloaded proxy-cs backend-cs": the CPU
# time per request of the processes $3 (the proxy's) and $4 (the backend) during the run,
# the socket errors and non-2xx answers wrk counted (shown, not fatal: they are part of
# what a proxy does to its clients), and 1 if the proxy's processes changed meanwhile
# (an nginx reload: new workers, idle client connections closed), and the context
# switches per request of the proxy's processes and of the backend.
bench() {  # $1: port, $2: Host header, $3: the proxy's pid, $4: the backend's pid, $5: duration
  local out p0 p1 a0 a1 w0 w1 s0 s1 b0 b1
  w0=$(cat /proc/"$3"/task/*/children); p0=$(cpu_ticks $3); a0=$(cpu_ticks $4); s0=$(switches $3); b0=$(switches $4)
  out=$(taskset -c "$client_cpus" wrk "${wrk_opts[@]}" -H "Host: $2" -d"$5" "http://127.0.0.1:$1/")
  p1=$(cpu_ticks $3); a1=$(cpu_ticks $4); s1=$(switches $3); b1=$(switches $4); w1=$(cat /proc/"$3"/task/*/children)
  python3 - "$out" $((p1 - p0)) $((a1 - a0)) "$(getconf CLK_TCK)" "$([ "$w0" = "$w1" ] && echo 0 || echo 1)" $((s1 - s0)) $((b1 - b0)) <<'PY'
import re, sys
out, proxy, app, hz, reloaded = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
proxy_switches, app_switches = int(sys.argv[6]), int(sys.argv[7])
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0)
rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
requests = int(re.search(r"(\d+) requests in", out).group(1))
value, unit = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
per_request = lambda ticks: f"{ticks / hz * 1e6 / requests:.1f}"
print(f"{rps:.0f} {float(value) * {'us': 0.001, 'ms': 1, 's': 1000}[unit]:.2f} {per_request(proxy)} {per_request(app)} {errors} {reloaded}"
      f" {proxy_switches / requests:.2f} {app_switches / requests:.2f}")
PY
}

# The proxy's process: nginx's master (its workers and the workers it reaped count with it).
proxy_pids() {
  case $1 in
    slipway) echo "$slipway_master" ;;
    nginx) echo "$stock_master" ;;
    caddy) echo "$caddy_pid" ;;
    haproxy|haproxy-fwd) echo "$haproxy_pid" ;;
    *) cat "$work/variants/nginx.pid" ;;
  esac
}
# Port and Host header of proxy $1 for backend $2.
target() {
  case $1 in
    slipway) echo "$proxy $2.localhost" ;;
    nginx) eval "echo \$stock_$2 x" ;;
    caddy) eval "echo \$caddy_$2 x" ;;
    haproxy) eval "echo \$haproxy_$2 x" ;;
    haproxy-fwd) eval "echo \$haproxy_fwd_$2 x" ;;
    *) echo "${variant_port[$1]} $2.localhost" ;;
  esac
}

measure() {  # $1: backend, $2...: proxies (slipway, nginx, caddy, haproxy or a variant's name)
  local backend=$1 app_pid x p h r l c a e w sp sb
  app_pid=$(eval "echo \$app_pid_$1")
  shift; local proxies=("$@")
  echo "== $backend backend: wrk ${wrk_opts[*]} -d$duration on core $client_cpus; proxies ($workers workers/threads) and backend on cores $server_cpus; median of $runs interleaved runs"
  for name in "${proxies[@]}"; do read -r p h <<<"$(target "$name" "$backend")"; bench "$p" "$h" "$(proxy_pids "$name")" "$app_pid" 2s >/dev/null; done
  declare -A rps p99 cpu app errors reloads proxy_cs app_cs
  for _ in $(seq "$runs"); do
    # A new order each round: no proxy always runs first, or right after another.
    for name in $(shuf -e "${proxies[@]}"); do
      read -r p h <<<"$(target "$name" "$backend")"
      x=$(bench "$p" "$h" "$(proxy_pids "$name")" "$app_pid" "$duration"); read -r r l c a e w sp sb <<<"$x"
      rps[$name]+="$r " p99[$name]+="$l " cpu[$name]+="$c " app[$name]+="$a " proxy_cs[$name]+="$sp " app_cs[$name]+="$sb " errors[$name]=$(( ${errors[$name]:-0} + e )) reloads[$name]=$(( ${reloads[$name]:-0} + w ))
    done
  done
  printf '  %-12s %8s %9s %14s %16s %12s %12s   %s\n' proxy req/s "p99 ms" "proxy us/req" "backend us/req" "proxy cs/req" "backend cs/req" \
    "runs: req/s; p99 ms; proxy us/req; errors; runs with a reload"
  declare -A med_rps med_p99
  for name in "${proxies[@]}"; do
    med_rps[$name]=$(median ${rps[$name]}) med_p99[$name]=$(median ${p99[$name]})
    printf '  %-12s %8s %9s %14s %16s %12s %12s   %s; %s; %s; %s; %s\n' "$name" "${med_rps[$name]}" "${med_p99[$name]}" \
      "$(median ${cpu[$name]})" "$(median ${app[$name]})" "$(median ${proxy_cs[$name]})" "$(median ${app_cs[$name]})" "${rps[$name]% }" "${p99[$name]% }" "${cpu[$name]% }" "${errors[$name]:-0}" "${reloads[$name]:-0}"
  done
  [ "$*" = "slipway nginx caddy haproxy haproxy-fwd" ] || return 0
  python3 - "${med_rps[slipway]}" "${med_rps[nginx]}" "${med_rps[caddy]}" "${med_rps[haproxy]}" "${med_rps[haproxy-fwd]}" "${med_p99[slipway]}" "${med_p99[nginx]}" \
    "${rps[slipway]}" "${rps[caddy]}" "${rps[haproxy]}" "${rps[haproxy-fwd]}" <<'PY'
import statistics, sys
s, n, c, h, hf, sl, nl = map(float, sys.argv[1:8])
rounds = [list(map(float, runs.split())) for runs in sys.argv[8:]]
met = lambda ok: "met" if ok else "MISSED"
# The same ratio round by round (each round runs every proxy once, minutes apart at most):
# a drift of the machine between rounds moves both sides of a round's ratio alike.
def paired(name, others):
    ratios = [mine / max(theirs) for mine, *theirs in zip(rounds[0], *others)]
    print(f"  slipway/best of caddy, {name} round by round: {' '.join(f'{r:.3f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.3f}, >= 1 in {sum(r >= 1 for r in ratios)} of {len(ratios)}")
paired("haproxy", [rounds[1], rounds[2]])
paired("haproxy-fwd", [rounds[1], rounds[3]])
print(f"  slipway/nginx throughput {s / n:.2f} (target >= 0.95: {met(s / n >= 0.95)}); "
      f"p99 {sl / nl:.2f}x (target <= 1.1: {met(sl / nl <= 1.1)}); "
      f"slipway/best of caddy, haproxy {s / max(c, h):.2f} (target >= 1: {met(s >= max(c, h))}); "
      f"slipway/best of caddy, haproxy-fwd {s / max(c, hf):.2f} (target >= 1: {met(s >= max(c, hf))})")
PY
}

echo "nginx $(nginx -v 2>&1 | sed 's|.*/||'), $(caddy version | cut -d' ' -f1), haproxy $(haproxy -v | sed -n '1s/.*version \([^ ]*\).*/\1/p'), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
# The same path behind every proxy. Rootful podman: conmon holds the published port (to
# reserve it) and the kernel forwards the connections (DNAT); rootless: a userland forwarder.
echo "backends: static at $upstream_static, work at $upstream_work (WORK=$work_iterations); the port's holder: $(ss -ltnpH "sport = :${upstream_static#*:}" | grep -o 'users:.*' || echo none)"
measure static slipway nginx caddy haproxy haproxy-fwd
measure work slipway nginx caddy haproxy haproxy-fwd

# Which of Slipway's directives costs what (ABLATE=0 skips this): Slipway's rendered
# config for the static app, served by a third nginx (the stock main config, same
# workers), as rendered and with one part taken out at a time, beside (a) and (b) in the
# same rounds. `rendered` vs (a) is the main config's share (and (a)'s shared port).
declare -A variant_port
ablate() {
  mkdir -p "$work/variants/tmp"
  local name servers=""
  for name in rendered no-log no-upgrade no-headers no-retry none; do
    variant_port[$name]=$(free_port)
    servers+=$(python3 - "$name" "${variant_port[$name]}" "$work/variants" "$work/data/nginx/apps/static.conf" <<'PY'
import re, sys
name, port, directory, rendered = sys.argv[1:]
text = open(rendered).read()
text = re.sub(r"\bslipway-static\b", f"slipway-static-{name}", text)
text = re.sub(r"\$slipway_(upgrade|connection)_static\b", lambda m: f"$slipway_{m.group(1)}_static_{name.replace('-', '_')}", text)
text = re.sub(r"listen \d+;", f"listen 127.0.0.1:{port};", text)
text = re.sub(r"access_log \S+", f"access_log {directory}/{name}.access.log", text)
drop = []
if name in ("no-log", "none"): drop.append(r"access_log ")
if name in ("no-upgrade", "none"):
    drop += [r"map \$http_upgrade", r"proxy_set_header Upgrade "]
    text = re.sub(r"proxy_set_header Connection \$slipway_connection_\w+;", 'proxy_set_header Connection "";', text)
if name in ("no-headers", "none"): drop.append(r"proxy_set_header (Host|X-)")
if name in ("no-retry", "none"):
    drop.append(r"proxy_next_upstream ")
    text = text.replace(" max_fails=1 fail_timeout=2s", "")
lines = [l for l in text.splitlines() if not any(re.match(r"\s*" + d, l) for d in drop)]
print("\n".join(lines))
PY
)$'\n'
  done
  sed -e "s|$work/stock|$work/variants|g" -e '/^ *upstream \|^ *server {/d' -e '/^}/d' "$work/stock/nginx.conf" > "$work/variants/nginx.conf"
  printf '%s\n}\n' "$servers" >> "$work/variants/nginx.conf"
  taskset -c "$server_cpus" nginx -p "$work/variants" -c "$work/variants/nginx.conf"
  for _ in $(seq 50); do [ -s "$work/variants/nginx.pid" ] && break; sleep 0.1; done
  for name in "${!variant_port[@]}"; do
    [ "$(curl -s -m 2 -H "Host: static.localhost" "http://127.0.0.1:${variant_port[$name]}/")" = hello ] || { echo "variant $name does not answer" >&2; exit 1; }
  done
  echo "== Slipway's config taken apart (static backend): rendered = its app file in the stock main config; no-log: without its access_log; no-upgrade: without the WebSocket maps (Connection \"\"); no-headers: without Host/X-* proxy_set_header; no-retry: without proxy_next_upstream and max_fails; none: all four out"
  measure static slipway nginx rendered no-log no-upgrade no-headers no-retry none
}
if [ "${ABLATE:-1}" = 1 ]; then ablate; fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
