#!/usr/bin/env bash
# Push to deploy, each figure beside its floor from the same run:
#  1. Push-to-first-200 of a small Procfile app (python3 HTTP server) through Slipway
#     (the first 200 through nginx with the new body, watched while the push runs), vs
#     the floor done directly: the same context and the same one-step Dockerfile built
#     through the engine's REST API, a container created and started with its port
#     published, polled until it answers 200.
#     Target: <= 1.3x. Reported for a first push and for a code-only change (cached layers).
#  2. Failed requests during 5 redeploys under a steady request loop. Target: 0.
# Usage: Benchmarks/deploy.sh [path/to/slipway]   (default: a release build)
. "$(dirname "$0")/lib.sh" "$@"

app() {  # $1: directory, $2: version
  mkdir -p "$1"
  # The run's own nonce: no build of this run hits the layer cache of an earlier one.
  cat > "$1/server.py" <<PY
# run ${work##*/}
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
until_200() {  # $1: url, $2: expected body
  for _ in $(seq 1000); do [ "$(curl -s -m 2 "$1" 2>/dev/null)" = "$2" ] && return 0; sleep 0.01; done; echo "no 200 from $1" >&2; return 1
}

repo=$work/repo
git init -q -b main "$repo"
commit() { app "$repo" "$1"; git -C "$repo" add -A; git -C "$repo" -c user.email=b@b -c user.name=b commit -qm "$1"; }
target=web  # the app pushes go to

# The floor: what Slipway does, done directly against the engine.
floor() {  # $1: version (a fresh context), prints ms
  local ctx=$work/floor-$1 a b id hostport
  app "$ctx" "$1"
  # What Slipway generates for a Procfile app: the code copied onto the builder's app base.
  printf 'FROM slipway/builder:bookworm-app\nCOPY --chown=1000:1000 . /app\n' > "$ctx/Dockerfile"
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
  git -C "$repo" push -q "ssh://127.0.0.1:$port/$target" main 2>/dev/null &
  p=$!
  until_200 "http://$target.localhost:$proxy/" "hello $1"
  b=$(now)
  wait $p
  ms "$a" "$b"
}

echo "== 1. push to first 200 vs the floor (engine build + start + first 200, direct)"
# First pushes of three new apps (each creates its app), each beside its own floor.
sl=(); fl=()
for i in 1 2 3; do
  target=first$i; sl+=($(push "first$i")); fl+=($(floor "first$i"))
done
sm=$(median "${sl[@]}"); fm=$(median "${fl[@]}")
echo "  first push:   slipway ${sm} ms (${sl[*]})   floor ${fm} ms (${fl[*]})   ratio $(python3 -c "print(f'{$sm/$fm:.2f}')")  (target <= 1.3)"
target=first1
sl=(); fl=()
for i in 1 2 3; do sl+=($(push "change$i")); fl+=($(floor "change$i")); done
sm=$(median "${sl[@]}"); fm=$(median "${fl[@]}")
echo "  code change:  slipway ${sm} ms (${sl[*]})   floor ${fm} ms (${fl[*]})   ratio $(python3 -c "print(f'{$sm/$fm:.2f}')")  (target <= 1.3)"

echo "== 2. failed requests during 5 redeploys under a steady request loop"
rm -f /tmp/slipway-bench-loop-stop
python3 - "http://127.0.0.1:$proxy/" "$target.localhost" > "$work/loop.out" <<'PY' &
import sys, time, urllib.request, os
url = sys.argv[1]; ok = bad = 0; stop = "/tmp/slipway-bench-loop-stop"
while not os.path.exists(stop):
    try:
        # Python does not resolve *.localhost as curl does: name the app in Host.
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": sys.argv[2]}), timeout=5) as r:
            ok += r.status == 200; bad += r.status != 200
    except Exception:
        bad += 1
    time.sleep(0.005)
print(ok, bad)
PY
loop=$!
for i in 1 2 3 4 5; do commit "redeploy$i"; git -C "$repo" push -q "ssh://127.0.0.1:$port/$target" main 2>/dev/null; done
touch /tmp/slipway-bench-loop-stop; wait $loop; rm -f /tmp/slipway-bench-loop-stop
read -r ok bad < "$work/loop.out"
echo "  requests: $((ok + bad)), failed: $bad  (target 0)"
