#!/usr/bin/env bash
# The SSH front against OpenSSH measured in the same run, on the same client:
#  1. One command: `ssh host apps:list` (Slipway) vs `ssh host true` on
#     (a) a lean sshd: its own config, curve25519, UsePAM no, key only, for a
#         dedicated user `slipbench` (shell /bin/sh, a home without rc files), and
#     (b) Debian's stock sshd_config (/usr/share/openssh/sshd_config: UsePAM yes),
#         same user, same host key; only port, address, host key and pid file set.
#     Interleaved (each round runs the three in a random order), one client command
#     line for all: no ControlMaster, no agent, the same key, curve25519.
#     Targets: Slipway median <= 25 ms and <= 0.3x the lean sshd.
#  2. A 50 MB git push through Slipway vs the same push to a local bare repository,
#     interleaved, median of 5. The push goes to a branch other than the deploy
#     branch, so the pre-receive hook runs but nothing is built. Target <= 1.03x.
#  3. 500 parallel `apps:list` sessions against the default limits: all succeed (past
#     max_startups they wait in line for a handshake place); wall time, the server's
#     peak RSS (VmHWM, reset before the burst) and memory per concurrent session.
#     Target: peak RSS < 150 MB.
# Usage: Benchmarks/ssh-front.sh [path/to/slipway]   (default: a release build)
#   ROUNDS=60 (latency rounds), PUSHES=5, PARALLEL=500.
# Creates the user slipbench if missing (and removes it, with its home, at exit).
#
# Where a session's time goes (issue 19; client `ssh -vvv` lines timestamped as they
# arrive, median of 21 interleaved, release build, ms since the client started;
# lean sshd runs `true`, Slipway `apps:list`):
#   milestone                  before   after   lean sshd
#   TCP connected                 4.4     4.5     4.6   (client start-up: config, key)
#   server KEXINIT received       4.9     5.2    12.9
#   KEX_ECDH_REPLY received      49.4     6.6    17.7   <- 44 ms: delayed ACK (below)
#   NEWKEYS received             52.1     9.5    20.1
#   SERVICE_ACCEPT received      52.2     9.6    61.5   (sshd: the same kind of stall)
#   key probe answered (PK_OK)   53.1    10.3    71.9
#   channel open, exec sent      54.5    11.6   133.5   (sshd: privsep child, session)
#   exit-status received         56.7    13.7   136.5   (Slipway: 2.1 ms of command)
#   client exited                57.7    14.7   136.6
# The 44 ms: OpenSSH's client keeps Nagle on during the key exchange, so its 48-byte
# KEXDH_INIT waits for the ACK of its KEXINIT; the server had just answered the
# client's banner, Linux took the connection for ping-pong and delayed that ACK
# ~40 ms. SSHConnection.exchangeKeys steps the key exchange itself and sets
# TCP_QUICKACK after every step. The end of a command (last output, exit-status,
# EOF, close) leaves corked, in one segment.
set -euo pipefail
cd "$(dirname "$0")/.."
need() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" || apt-get install -y -qq --no-install-recommends "$1" >/dev/null; }
need openssh-server; need git; need python3
rounds=${ROUNDS:-60}; pushes=${PUSHES:-5}; parallel=${PARALLEL:-500}
bin=${1:-}
if [ -z "$bin" ]; then
  swift build -c release --product slipway >/dev/null
  bin="$(swift build -c release --show-bin-path)/slipway"
fi
work=$(mktemp -d)
pids=()
bench_user=slipbench
created_user=
keys_backup=
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  # The server's managed nginx (it normally stops it itself).
  [ -f "$work/data/nginx/nginx.pid" ] && kill -QUIT "$(cat "$work/data/nginx/nginx.pid")" 2>/dev/null
  if [ -n "$created_user" ]; then
    userdel -r "$bench_user" 2>/dev/null
  elif [ -n "$keys_backup" ]; then
    # The user was there before: its authorized_keys goes back as it was.
    if [ "$keys_backup" = none ]; then rm -f "$home/.ssh/authorized_keys"; else cp -p "$keys_backup" "$home/.ssh/authorized_keys"; fi
  fi
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ssh-keygen -q -t ed25519 -N '' -C bench -f "$work/id"

# --- The OpenSSH user: /bin/sh, no rc files, a password field sshd does not read as locked.
if ! getent passwd "$bench_user" >/dev/null; then
  useradd --create-home --skel /dev/null --shell /bin/sh "$bench_user"
  created_user=1
fi
usermod -p '*' "$bench_user"
home=$(getent passwd "$bench_user" | cut -d: -f6)
for rc in .profile .bashrc .shrc .ssh/rc .ssh/environment; do
  [ -e "$home/$rc" ] && { echo "error: $home/$rc exists; the baseline needs a user without rc files (remove it or the user $bench_user)" >&2; exit 1; }
done
install -d -m 700 -o "$bench_user" -g "$bench_user" "$home/.ssh"
if [ -z "$created_user" ]; then
  if [ -e "$home/.ssh/authorized_keys" ]; then keys_backup=$work/authorized_keys.before; cp -p "$home/.ssh/authorized_keys" "$keys_backup"; else keys_backup=none; fi
fi
install -m 600 -o "$bench_user" -g "$bench_user" "$work/id.pub" "$home/.ssh/authorized_keys"

# --- sshd, twice
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$work/sshd_host"
lean_port=$(free_port); stock_port=$(free_port)
cat > "$work/lean_sshd_config" <<CFG
Port $lean_port
ListenAddress 127.0.0.1
HostKey $work/sshd_host
PidFile $work/lean.pid
KexAlgorithms curve25519-sha256
UsePAM no
AuthenticationMethods publickey
PasswordAuthentication no
KbdInteractiveAuthentication no
PrintMotd no
PrintLastLog no
PermitUserRC no
CFG
/usr/sbin/sshd -D -f "$work/lean_sshd_config" -E "$work/lean.log" & pids+=($!)
/usr/sbin/sshd -D -f /usr/share/openssh/sshd_config -E "$work/stock.log" -o "Port=$stock_port" -o ListenAddress=127.0.0.1 \
  -o "HostKey=$work/sshd_host" -o "PidFile=$work/stock.pid" & pids+=($!)

# --- Slipway: an admin with the same key, one app to list
s() { "$bin" --data-dir "$work/data" "$@"; }
s users:add bench --admin >/dev/null
s ssh-keys:add bench < "$work/id.pub" >/dev/null
s apps:create web >/dev/null
for i in $(seq "$pushes"); do s apps:create "pushed$i" >/dev/null; done
# The default SSH limits: the burst must pass as any server would take it.
printf 'proxy_port = %s\ntls_port = %s\n' "$(free_port)" "$(free_port)" > "$work/slipway.toml"
"$bin" --data-dir "$work/data" --config "$work/slipway.toml" serve --listen 127.0.0.1:0 > "$work/serve.out" 2> "$work/serve.err" &
pids+=($!); server_pid=$!
for _ in $(seq 200); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.05; done
slip_port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/serve.out")
[ -n "$slip_port" ] || { echo "error: the Slipway server did not start:" >&2; tail -5 "$work/serve.err" >&2; exit 1; }
for port in $lean_port $stock_port; do
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
done

# One client command line for every row.
ssh_opts="-F /dev/null -o ControlMaster=no -o ControlPath=none -o IdentityAgent=none -o IdentitiesOnly=yes -i $work/id
  -o KexAlgorithms=curve25519-sha256 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
ssh_opts=$(echo $ssh_opts)
echo "slipway: $("$bin" --version 2>/dev/null || echo "$bin")   sshd: $(/usr/sbin/sshd -V 2>&1 | head -1)   load: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== 1. one command over SSH: $rounds interleaved rounds after 5 warm-ups (ms)"
python3 - "$rounds" "$work/latency.txt" \
  "slipway apps:list=ssh $ssh_opts -p $slip_port $bench_user@127.0.0.1 apps:list" \
  "openssh lean true=ssh $ssh_opts -p $lean_port $bench_user@127.0.0.1 true" \
  "openssh stock true=ssh $ssh_opts -p $stock_port $bench_user@127.0.0.1 true" <<'PY'
import random, shlex, statistics, subprocess, sys, time
rounds, raw_path = int(sys.argv[1]), sys.argv[2]
rows = [(name, shlex.split(cmd)) for name, cmd in (a.split("=", 1) for a in sys.argv[3:])]
def once(cmd):
    t = time.perf_counter_ns()
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ms = (time.perf_counter_ns() - t) / 1e6
    if r.returncode != 0: sys.exit(f"error: {shlex.join(cmd)} exited {r.returncode}: {r.stderr.decode()[-300:]}")
    return ms
for _ in range(5):
    for _, cmd in rows: once(cmd)
times = {name: [] for name, _ in rows}
for _ in range(rounds):
    for name, cmd in random.sample(rows, len(rows)): times[name].append(once(cmd))
def p(xs, q): s = sorted(xs); return s[min(len(s) - 1, int(q * len(s)))]
with open(raw_path, "w") as raw:
    for name, xs in times.items():
        print(f"  {name:<20} median {statistics.median(xs):6.1f}  p90 {p(xs, .9):6.1f}  min {min(xs):6.1f}  max {max(xs):6.1f}")
        raw.write(f"{name}: {' '.join(f'{x:.1f}' for x in xs)}\n")
slip, lean, stock = (statistics.median(times[n]) for n, _ in rows)
print(f"  ratio slipway/lean sshd {slip/lean:.2f}  slipway/stock sshd {slip/stock:.2f}  lean/stock {lean/stock:.2f}")
print(f"  targets: slipway median <= 25 ms ({'met' if slip <= 25 else 'NOT met'}), <= 0.30x lean ({'met' if slip <= .3 * lean else 'NOT met'})")
print(f"  raw (ms, in the order measured): {raw_path}")
for line in open(raw_path): print("   ", line.rstrip()[:400] + (" ..." if len(line) > 400 else ""))
PY

echo "== 2. 50 MB git push (5 x 10 MB random files): local bare repository vs through Slipway, $pushes interleaved pairs"
repo=$work/repo
git init -q -b main "$repo"
for i in 1 2 3 4 5; do head -c 10000000 /dev/urandom > "$repo/f$i"; done
git -C "$repo" add . && git -C "$repo" -c user.email=b@b -c user.name=b commit -qm big
for i in $(seq "$pushes"); do git init -q --bare "$work/local$i.git"; done
# Wall time, and CPU time (user + system) of everything the push ran: the client's
# process tree, and for Slipway the server's own threads and the programs it reaped
# (git receive-pack, index-pack, the hook). CPU is steadier than wall on a shared host.
GIT_SSH_COMMAND="ssh $ssh_opts" python3 - "$pushes" "$repo" "$work" "$bench_user@127.0.0.1:$slip_port" "$server_pid" <<'PY'
import os, resource, statistics, subprocess, sys, time
pushes, repo, work, host, server = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
tick = os.sysconf("SC_CLK_TCK")
def server_cpu():
    fields = open(f"/proc/{server}/stat").read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / tick   # utime stime cutime cstime
def push(target):
    before, cpu0, t = resource.getrusage(resource.RUSAGE_CHILDREN), server_cpu(), time.perf_counter()
    r = subprocess.run(["git", "-C", repo, "push", "-q", target, "main:bench"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall, after = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0: sys.exit(f"error: push to {target} failed: {r.stderr.decode()[-300:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall * 1000, (cpu + (server_cpu() - cpu0 if "ssh://" in target else 0)) * 1000
rows = {"local": [], "slipway": []}
for i in range(1, pushes + 1):
    pair = [("local", f"{work}/local{i}.git"), ("slipway", f"ssh://{host}/pushed{i}")]
    for name, target in (pair if i % 2 else pair[::-1]): rows[name].append(push(target))
for name, xs in rows.items():
    walls, cpus = [w for w, _ in xs], [c for _, c in xs]
    print(f"  {name:<8} wall median {statistics.median(walls):6.0f} ms ({' '.join(f'{w:.0f}' for w in walls)})"
          f"   cpu median {statistics.median(cpus):6.0f} ms ({' '.join(f'{c:.0f}' for c in cpus)})")
w = statistics.median(w for w, _ in rows["slipway"]) / statistics.median(w for w, _ in rows["local"])
c = statistics.median(c for _, c in rows["slipway"]) / statistics.median(c for _, c in rows["local"])
print(f"  ratio slipway/local: wall {w:.3f} (target <= 1.03: {'met' if w <= 1.03 else 'NOT met'}), cpu {c:.3f}")
PY
git --git-dir "$work/data/repos/pushed1.git" fsck --full >/dev/null 2>&1 && echo "  fsck of a pushed repository: ok"

echo "== 3. $parallel parallel apps:list sessions"
rss_before=$(awk '/VmRSS/ {print $2}' /proc/$server_pid/status)
echo 5 > /proc/$server_pid/clear_refs   # VmHWM starts again from VmRSS
# A sampler of the server's threads (one per connection) and RSS during the burst.
idle_sockets=$(ls -l /proc/$server_pid/fd | grep -c 'socket:')
python3 - "$server_pid" "$work/sampler.stop" "$idle_sockets" "$work/sampler.ready" > "$work/samples" <<'PY' &
import os, sys, time
pid, stop, idle = sys.argv[1], sys.argv[2], int(sys.argv[3])
open(sys.argv[4], "w").close()
def sockets():
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try: n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError: pass
    return n
threads = connections = 0
while not os.path.exists(stop):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Threads:"): threads = max(threads, int(line.split()[1]))
    connections = max(connections, sockets() - idle)
    time.sleep(0.01)
print(threads, connections)
PY
sampler=$!
while [ ! -e "$work/sampler.ready" ]; do sleep 0.01; done
threads_before=$(awk '/Threads/ {print $2}' /proc/$server_pid/status)
start=$(date +%s%N)
par=()
for i in $(seq "$parallel"); do
  ( ssh $ssh_opts -p "$slip_port" "$bench_user@127.0.0.1" apps:list > "$work/par.$i.out" 2> "$work/par.$i.err"; echo $? > "$work/par.$i" ) & par+=($!)
done
wait "${par[@]}"
end=$(date +%s%N)
touch "$work/sampler.stop"; wait $sampler
read -r peak_threads peak_connections < "$work/samples"
ok=0; for i in $(seq "$parallel"); do [ "$(cat "$work/par.$i")" = 0 ] && grep -q '^web' "$work/par.$i.out" && ok=$((ok + 1)); done
hwm=$(awk '/VmHWM/ {print $2}' /proc/$server_pid/status)
echo "  succeeded: $ok/$parallel   wall: $(( (end - start) / 1000000 )) ms"
echo "  server RSS before: $((rss_before / 1024)) MB   peak (VmHWM): $((hwm / 1024)) MB (target < 150 MB: $([ $((hwm / 1024)) -lt 150 ] && echo met || echo NOT met))"
echo "  at the peak (sampled every 10 ms): $peak_connections connections, $peak_threads threads ($threads_before idle)"
echo "  memory per concurrent session: $(( (hwm - rss_before) / (peak_connections > 0 ? peak_connections : 1) )) KB ((VmHWM - RSS before) / peak connections)"
if [ "$ok" -ne "$parallel" ]; then
  echo "  failures (first 5):"; for i in $(seq "$parallel"); do [ "$(cat "$work/par.$i")" != 0 ] && echo "    $(cat "$work/par.$i"): $(head -c 200 "$work/par.$i.err")"; done | head -5
fi
