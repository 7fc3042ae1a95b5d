#!/usr/bin/env bash
# Containers, each figure beside its baseline from the same run:
#  1. `ssh host run web true` vs (`podman run --rm <same image> true` + `ssh host apps:list`).
#     Target: Slipway's run <= 1.15x the sum.
#  2. A one-line change of a small Dockerfile app built through `git push` vs the same
#     context built directly through the engine's REST API (curl POST /build, with the
#     same labels Slipway asks for) plus the same push to a branch that does not build
#     (the git transport alone), as benchmark 1 adds the ssh command. Target <= 1.1x.
#     The ratio to the bare, unlabelled engine build is printed too.
# Usage: Benchmarks/containers.sh [path/to/slipway]   (default: a release build)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/engine.sh >/dev/null
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null
bin=${1:-}
if [ -z "$bin" ]; then
  swift build -c release --product slipway >/dev/null
  bin="$(swift build -c release --show-bin-path)/slipway"
fi
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
sock=/run/podman/podman.sock

ssh-keygen -q -t ed25519 -N '' -f "$work/id"
s() { "$bin" --data-dir "$work/data" "$@"; }
s users:add bench --admin >/dev/null
s ssh-keys:add bench < "$work/id.pub" >/dev/null
s builder:report --format json | grep -q '"present" : true' || s builder:bootstrap >/dev/null
# Not through s(): $! must be the server itself, so that cleanup stops it.
"$bin" --data-dir "$work/data" serve --listen 127.0.0.1:0 > "$work/serve.out" 2>/dev/null &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.05; done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/serve.out")
ssh_opts="-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o LogLevel=ERROR -i $work/id"
export GIT_SSH_COMMAND="ssh $ssh_opts"

repo=$work/app
git init -q -b main "$repo"
printf 'FROM slipway/builder:bookworm\nCOPY . /app\nWORKDIR /app\n' > "$repo/Dockerfile"
echo "print('v1')" > "$repo/app.py"
git -C "$repo" add . && git -C "$repo" -c user.email=b@b -c user.name=b commit -qm v1
git -C "$repo" push -q "ssh://127.0.0.1:$port/web" main
image="slipway/web:$(git -C "$repo" rev-parse HEAD | cut -c1-12)"

echo "== 1. ephemeral run (median of 30, after 3 warm-ups)"
hyperfine -N --warmup 3 --runs 30 --style none --export-json "$work/run.json" \
  -n "slipway run" "ssh $ssh_opts -p $port 127.0.0.1 run web true" \
  -n "podman run --rm" "podman run --rm $image true" \
  -n "ssh apps:list" "ssh $ssh_opts -p $port 127.0.0.1 apps:list" >/dev/null
python3 - "$work/run.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] * 1000 for x in json.load(open(sys.argv[1]))["results"]}
for k, v in r.items(): print(f"  {k:<18} median {v:7.1f} ms")
base = r["podman run --rm"] + r["ssh apps:list"]
print(f"  ratio run / (podman run + apps:list): {r['slipway run'] / base:.2f}  (target <= 1.15)")
PY

echo "== 2. build of a one-line change: through git push vs directly through the engine (median of 5)"
ms() { echo $(( ($2 - $1) / 1000000 )); }
commit() { echo "print('$1')" > "$repo/app.py"; git -C "$repo" -c user.email=b@b -c user.name=b commit -qam "$1"; }
engine_build() {  # $1: tag, $2: extra query
  git -C "$repo" archive --format=tar HEAD > "$work/ctx.tar"
  curl -fsS --unix-socket "$sock" -X POST -H 'Content-Type: application/x-tar' --data-binary @"$work/ctx.tar" \
    "http://d/v1.41/build?t=$1&forcerm=1&rm=1$2" > "$work/build.log"
}
labels=$(python3 -c 'import json,urllib.parse,sys; print(urllib.parse.quote(json.dumps({"org.slipway.app":"web","org.slipway.revision":sys.argv[1]})))' 0123456789abcdef0123456789abcdef01234567)
push=(); transport=(); labelled=(); bare=()
for i in 1 2 3 4 5; do
  commit "push $i"
  a=$(date +%s%N); git -C "$repo" push -q "ssh://127.0.0.1:$port/web" main; b=$(date +%s%N)
  push+=($(ms "$a" "$b"))
  commit "transport $i"
  a=$(date +%s%N); git -C "$repo" push -q "ssh://127.0.0.1:$port/web" HEAD:refs/heads/bench-$i; b=$(date +%s%N)
  transport+=($(ms "$a" "$b"))
  commit "direct $i"
  a=$(date +%s%N); engine_build "bench/labelled:$i" "&labels=$labels"; b=$(date +%s%N)
  labelled+=($(ms "$a" "$b"))
  commit "bare $i"
  a=$(date +%s%N); engine_build "bench/bare:$i" ""; b=$(date +%s%N)
  bare+=($(ms "$a" "$b"))
done
median() { printf '%s\n' "$@" | sort -n | sed -n 3p; }
pm=$(median "${push[@]}"); tm=$(median "${transport[@]}"); lm=$(median "${labelled[@]}"); bm=$(median "${bare[@]}")
echo "  git push + build (Slipway)          median ${pm} ms   (${push[*]})"
echo "  git push, no build (transport)      median ${tm} ms   (${transport[*]})"
echo "  engine build, Slipway's labels      median ${lm} ms   (${labelled[*]})"
echo "  engine build, no labels             median ${bm} ms   (${bare[*]})"
python3 -c "print(f'  ratio push / (engine build + transport): {$pm/($lm+$tm):.2f}  (target <= 1.10)')"
python3 -c "print(f'  ratio push / bare engine build:          {$pm/$bm:.2f}')"
