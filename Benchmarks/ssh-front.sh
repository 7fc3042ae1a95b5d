#!/usr/bin/env bash
# The SSH front against baselines measured in the same run:
#  1. `ssh host apps:list` median latency vs OpenSSH's sshd running `true` (same client,
#     same key, curve25519). Target: Slipway <= 0.4x sshd.
#  2. A 50 MB `git push` through Slipway vs the same push to a local path. Target <= 1.05x.
#  3. 100 parallel `apps:list` sessions: all succeed; wall time and the server's peak RSS.
# Usage: Benchmarks/ssh-front.sh [path/to/slipway]   (default: a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
need() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" || apt-get install -y -qq --no-install-recommends "$1" >/dev/null; }
need openssh-server; need hyperfine; need git
bin=${1:-}
if [ -z "$bin" ]; then
  swift build -c release --product slipway >/dev/null
  bin="$(swift build -c release --show-bin-path)/slipway"
fi
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

ssh-keygen -q -t ed25519 -N '' -C bench -f "$work/id"
# --- Slipway
"$bin" --data-dir "$work/data" users:add bench --admin >/dev/null
"$bin" --data-dir "$work/data" ssh-keys:add bench < "$work/id.pub" >/dev/null
"$bin" --data-dir "$work/data" apps:create web >/dev/null
"$bin" --data-dir "$work/data" serve --listen 127.0.0.1:0 > "$work/serve.out" 2> "$work/serve.err" &
pids+=($!); server_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.05; done
sport=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/serve.out")

# --- OpenSSH's sshd on another loopback port, key-only, running `true`
ssh-keygen -q -t ed25519 -N '' -f "$work/sshd_host"
mkdir -p /run/sshd
cp "$work/id.pub" "$work/authorized_keys"
cat > "$work/sshd_config" <<CFG
Port 0
ListenAddress 127.0.0.1
HostKey $work/sshd_host
AuthorizedKeysFile $work/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin yes
KexAlgorithms curve25519-sha256
PidFile $work/sshd.pid
CFG
dport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -i "s/^Port 0/Port $dport/" "$work/sshd_config"
/usr/sbin/sshd -D -f "$work/sshd_config" -E "$work/sshd.log" &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$dport) 2>/dev/null && break; sleep 0.05; done

ssh_opts="-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o LogLevel=ERROR -o KexAlgorithms=curve25519-sha256 -i $work/id"
echo "== 1. one command over SSH (median of 100, after 10 warm-ups)"
hyperfine -N --warmup 10 --runs 100 --style none --export-json "$work/lat.json" \
  -n "slipway apps:list" "ssh $ssh_opts -p $sport 127.0.0.1 apps:list" \
  -n "openssh sshd true" "ssh $ssh_opts -p $dport 127.0.0.1 true" >/dev/null
python3 - "$work/lat.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
for x in r: print(f"  {x['command']:<22} median {x['median']*1000:7.1f} ms   mean {x['mean']*1000:7.1f} ms")
print(f"  ratio slipway/sshd: {r[0]['median']/r[1]['median']:.2f}  (target <= 0.40)")
PY

echo "== 2. 50 MB git push (5 x 10 MB random files), median of 3"
repo=$work/repo
git init -q -b main "$repo"
for i in 1 2 3 4 5; do head -c 10000000 /dev/urandom > "$repo/f$i"; done
git -C "$repo" add . && git -C "$repo" -c user.email=b@b -c user.name=b commit -qm big
export GIT_SSH_COMMAND="ssh $ssh_opts"
time_it() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
via=(); local_=()
for i in 1 2 3; do
  local_+=($(git init -q --bare "$work/local$i.git" && time_it git -C "$repo" push -q "$work/local$i.git" main))
  via+=($(time_it git -C "$repo" push -q "ssh://127.0.0.1:$sport/push$i" main))
done
git --git-dir "$work/data/repos/push1.git" fsck --full >/dev/null 2>&1 && echo "  fsck of the pushed repo: ok"
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
lm=$(median "${local_[@]}"); vm=$(median "${via[@]}")
echo "  local path push   median ${lm} ms   (${local_[*]})"
echo "  slipway ssh push  median ${vm} ms   (${via[*]})"
python3 -c "print(f'  ratio slipway/local: {$vm/$lm:.3f}  (target <= 1.05)')"

echo "== 3. 100 parallel apps:list sessions"
start=$(date +%s%N)
par=()
for i in $(seq 100); do ( ssh $ssh_opts -p "$sport" 127.0.0.1 apps:list >/dev/null 2>&1; echo $? > "$work/par.$i" ) & par+=($!); done
wait "${par[@]}"
end=$(date +%s%N)
ok=$(cat "$work"/par.* | grep -c '^0$' || true)
echo "  succeeded: $ok/100   wall: $(( (end - start) / 1000000 )) ms   server peak RSS: $(awk '/VmHWM/ {print $2, $3}' /proc/$server_pid/status)"
