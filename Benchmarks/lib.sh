# Shared by the benchmarks (sourced, not run): a release build, a Slipway server on
# a scratch data dir with an admin key, and a cleanup that leaves nothing behind
# (server, its managed nginx, its containers). Sets: bin, work, sock, port (SSH),
# proxy (nginx), ssh_opts, GIT_SSH_COMMAND; defines s (the local CLI), ms, median.
# Usage: . Benchmarks/lib.sh [path/to/slipway]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh >/dev/null
bin=${1:-}
if [ -z "$bin" ]; then
  swift build -c release --product slipway >/dev/null
  bin="$(swift build -c release --show-bin-path)/slipway"
fi
work=$(mktemp -d)
pid=
sock=/run/podman/podman.sock
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
proxy=$(free_port)
printf 'proxy_port = %s\ntls_port = %s\nwait_to_retire = 1\n' "$proxy" "$(free_port)" > "$work/slipway.toml"
s() { "$bin" --data-dir "$work/data" --config "$work/slipway.toml" "$@"; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Ids of the containers carrying label $1.
labelled() {
  curl -s --unix-socket $sock -G http://d/v1.41/containers/json --data-urlencode all=1 \
    --data-urlencode "filters={\"label\":[\"$1\"]}" | python3 -c 'import json,sys; print(" ".join(c["Id"] for c in json.load(sys.stdin)))'
}
bench_cleanup() {
  # Everything below runs even when a step fails (a killed server's wait returns 143).
  set +e
  # The server first (and wait for it), or its supervisor could start nginx again.
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  [ -f "$work/data/nginx/nginx.pid" ] && kill -QUIT "$(cat "$work/data/nginx/nginx.pid")" 2>/dev/null
  local id ids
  ids="$(labelled org.slipway.bench) $([ -f "$work/data/instance-id" ] && labelled "org.slipway.instance=$(cat "$work/data/instance-id")")"
  for id in $ids; do curl -s --unix-socket $sock -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null; done
  # Each app's network (TenantSandbox), named after the server's instance.
  [ -f "$work/data/instance-id" ] && for net in $(curl -s --unix-socket $sock -G http://d/v1.41/networks \
      --data-urlencode "filters={\"label\":[\"org.slipway.instance=$(cat "$work/data/instance-id")\"]}" | python3 -c 'import json,sys; print(" ".join(n["Name"] for n in json.load(sys.stdin)))'); do
    curl -s --unix-socket $sock -X DELETE "http://d/v1.41/networks/$net" >/dev/null
  done
  # The images its builds made.
  [ -f "$work/data/slipway.db" ] && for image in $(sqlite3 "$work/data/slipway.db" "SELECT DISTINCT image FROM builds" 2>/dev/null); do
    curl -s --unix-socket $sock -X DELETE "http://d/v1.41/images/$image" >/dev/null
  done
  rm -rf "$work"
}
trap bench_cleanup EXIT

ssh-keygen -q -t ed25519 -N '' -f "$work/id"
s users:add bench --admin >/dev/null
s ssh-keys:add bench < "$work/id.pub" >/dev/null
s builder:report --format json | grep -q '"present":true' || s builder:bootstrap >/dev/null
# Not through s(): $! must be the server itself, so that cleanup stops it.
"$bin" --data-dir "$work/data" --config "$work/slipway.toml" serve --listen 127.0.0.1:0 > "$work/serve.out" 2>/dev/null &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.05; done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/serve.out")
ssh_opts="-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o LogLevel=ERROR -i $work/id"
export GIT_SSH_COMMAND="ssh $ssh_opts"
