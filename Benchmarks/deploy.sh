#!/usr/bin/env bash
# Push to deploy, each figure beside its floor from the same run:
#  1. Push-to-first-200 of a small Procfile app (python3 HTTP server) through Slipway
#     (git push returns after the deploy; then curl through nginx), vs the floor done
#     directly: the same context built through the engine's REST API, a container
#     created and started with its port published, polled until it answers 200.
#     Target: <= 1.3x. Reported for a first push and for a code-only change (cached layers).
#  2. Failed requests during 5 redeploys under a steady request loop. Target: 0.
# Usage: Benchmarks/deploy.sh [path/to/slipway]   (default: a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
bin=${1:-}
if [ -z "$bin" ]; then
  swift build -c release --product slipway >/dev/null
  bin="$(swift build -c release --show-bin-path)/slipway"
fi
work=$(mktemp -d)
pid=
sock=/run/podman/podman.sock
proxy=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'proxy_port = %s\nwait_to_retire = 1\n' "$proxy" > "$work/slipway.toml"
s() { "$bin" --data-dir "$work/data" --config "$work/slipway.toml" "$@"; }
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -f "$work/data/nginx/nginx.pid" ] && kill -QUIT "$(cat "$work/data/nginx/nginx.pid")" 2>/dev/null
  for id in $(curl -s --unix-socket $sock -G http://d/v1.41/containers/json --data-urlencode all=1 \
      --data-urlencode "filters={\"label\":[\"org.slipway.bench=deploy\"]}" | python3 -c 'import json,sys; print(" ".join(c["Id"] for c in json.load(sys.stdin)))') \
      $(cat "$work/data/instance-id" 2>/dev/null | xargs -I{} curl -s --unix-socket $sock -G http://d/v1.41/containers/json --data-urlencode all=1 \
      --data-urlencode "filters={\"label\":[\"org.slipway.instance={}\"]}" | python3 -c 'import json,sys; print(" ".join(c["Id"] for c in json.load(sys.stdin)))'); do
    curl -s --unix-socket $sock -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT

ssh-keygen -q -t ed25519 -N '' -f "$work/id"
s users:add bench --admin >/dev/null
s ssh-keys:add bench < "$work/id.pub" >/dev/null
s builder:report --format json | grep -q '"present" : true' || s builder:bootstrap >/dev/null
"$bin" --data-dir "$work/data" --config "$work/slipway.toml" serve --listen 127.0.0.1:0 > "$work/serve.out" 2>/dev/null &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.05; done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/serve.out")
export GIT_SSH_COMMAND="ssh -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o LogLevel=ERROR -i $work/id"

app() {  # $1: directory, $2: version
  mkdir -p "$1"
  cat > "$1/server.py" <<PY
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello $2\n"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), H).serve_forever()
PY
  printf 'web: python3 server.py\n' > "$1/Procfile"
}
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
until_200() {  # $1: url, $2: expected body
  for _ in $(seq 1000); do [ "$(curl -s -m 2 "$1" 2>/dev/null)" = "$2" ] && return 0; sleep 0.01; done; echo "no 200 from $1" >&2; return 1
}

repo=$work/repo
git init -q -b main "$repo"
commit() { app "$repo" "$1"; git -C "$repo" add -A; git -C "$repo" -c user.email=b@b -c user.name=b commit -qm "$1"; }

# The floor: what Slipway does, done directly against the engine.
floor() {  # $1: version (a fresh context), prints ms
  local ctx=$work/floor-$1 a b id hostport
  app "$ctx" "$1"
  printf 'FROM slipway/builder:bookworm\nCOPY --chown=1000:1000 . /app\nWORKDIR /app\nUSER app\nENV PORT=5000\n' > "$ctx/Dockerfile"
  a=$(now)
  tar -C "$ctx" -cf "$work/floor.tar" .
  curl -fsS --unix-socket $sock -X POST -H 'Content-Type: application/x-tar' --data-binary @"$work/floor.tar" \
    "http://d/v1.41/build?t=bench/floor:$1&forcerm=1&rm=1" > /dev/null
  id=$(curl -fsS --unix-socket $sock -H 'Content-Type: application/json' -X POST "http://d/v1.41/containers/create" -d '{
    "Image": "bench/floor:'"$1"'", "Cmd": ["/bin/sh", "-c", "python3 server.py"], "Env": ["PORT=5000"],
    "Labels": {"org.slipway.bench": "deploy"}, "ExposedPorts": {"5000/tcp": {}},
    "HostConfig": {"Init": true, "PortBindings": {"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}}}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["Id"])')
  curl -fsS --unix-socket $sock -X POST "http://d/v1.41/containers/$id/start" >/dev/null
  hostport=$(curl -fsS --unix-socket $sock "http://d/v1.41/containers/$id/json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["NetworkSettings"]["Ports"]["5000/tcp"][0]["HostPort"])')
  until_200 "http://127.0.0.1:$hostport/" "hello $1"
  b=$(now)
  curl -s --unix-socket $sock -X DELETE "http://d/v1.41/containers/$id?force=1" >/dev/null
  ms "$a" "$b"
}
push() {  # $1: version, prints ms from the push to the first 200 with the new body
  local a b p
  commit "$1"
  a=$(now)
  # The app serves the new code at the switch; the push returns later, after the
  # old processes are retired, so the first 200 is watched while the push runs.
  git -C "$repo" push -q "ssh://127.0.0.1:$port/web" main 2>/dev/null &
  p=$!
  until_200 "http://web.localhost:$proxy/" "hello $1"
  b=$(now)
  wait $p
  ms "$a" "$b"
}

echo "== 1. push to first 200 vs the floor (engine build + start + first 200, direct)"
first=$(push first); floor_first=$(floor first)
echo "  first push:   slipway ${first} ms   floor ${floor_first} ms   ratio $(python3 -c "print(f'{$first/$floor_first:.2f}')")  (target <= 1.3)"
sl=(); fl=()
for i in 1 2 3; do sl+=($(push "change$i")); fl+=($(floor "change$i")); done
median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
sm=$(median "${sl[@]}"); fm=$(median "${fl[@]}")
echo "  code change:  slipway ${sm} ms (${sl[*]})   floor ${fm} ms (${fl[*]})   ratio $(python3 -c "print(f'{$sm/$fm:.2f}')")  (target <= 1.3)"

echo "== 2. failed requests during 5 redeploys under a steady request loop"
rm -f /tmp/slipway-bench-loop-stop
python3 - "http://127.0.0.1:$proxy/" > "$work/loop.out" <<'PY' &
import sys, time, urllib.request, os
url = sys.argv[1]; ok = bad = 0; stop = "/tmp/slipway-bench-loop-stop"
while not os.path.exists(stop):
    try:
        # Python does not resolve *.localhost as curl does: name the app in Host.
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": "web.localhost"}), timeout=5) as r:
            ok += r.status == 200; bad += r.status != 200
    except Exception:
        bad += 1
    time.sleep(0.005)
print(ok, bad)
PY
loop=$!
for i in 1 2 3 4 5; do commit "redeploy$i"; git -C "$repo" push -q "ssh://127.0.0.1:$port/web" main 2>/dev/null; done
touch /tmp/slipway-bench-loop-stop; wait $loop; rm -f /tmp/slipway-bench-loop-stop
read -r ok bad < "$work/loop.out"
echo "  requests: $((ok + bad)), failed: $bad  (target 0)"
