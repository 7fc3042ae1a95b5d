#!/usr/bin/env bash
# Containers, each figure beside its baseline from the same run:
#  1. `ssh host run web true` vs (`podman run --rm <same image> true` + `ssh host apps:list`).
#     Target: Slipway's run <= 1.15x the sum.
#  2. A one-line change of a small Dockerfile app built through `git push` (timed until
#     the push prints "Built"; the deploy that follows is Benchmarks/deploy.sh's) vs the
#     same context built directly through the engine's REST API (curl POST /build) plus
#     the same push to a branch that does not build (the git transport alone), as
#     benchmark 1 adds the ssh command. Target <= 1.1x.
# Usage: Benchmarks/containers.sh [path/to/slipway]   (default: a release build)
. "$(dirname "$0")/lib.sh" "$@"
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null

repo=$work/app
git init -q -b main "$repo"
printf 'FROM slipway/builder:bookworm\nCOPY . /app\nWORKDIR /app\nCMD python3 -m http.server $PORT\n' > "$repo/Dockerfile"
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
until_built() {  # runs the push; prints ms until its output says the image is built
  python3 - "$@" <<'PY'
import subprocess, sys, time
start = time.time(); built = None
p = subprocess.Popen(sys.argv[1:], stderr=subprocess.PIPE, text=True)
for line in p.stderr:
    if built is None and "=====> Built" in line: built = time.time()
if p.wait() != 0 or built is None: sys.exit("the push failed or built nothing")
print(int((built - start) * 1000))
PY
}
commit() { echo "print('$1')" > "$repo/app.py"; git -C "$repo" -c user.email=b@b -c user.name=b commit -qam "$1"; }
engine_build() {  # $1: tag, $2: extra query
  git -C "$repo" archive --format=tar HEAD > "$work/ctx.tar"
  curl -fsS --unix-socket "$sock" -X POST -H 'Content-Type: application/x-tar' --data-binary @"$work/ctx.tar" \
    "http://d/v1.41/build?t=$1&forcerm=1&rm=1$2" > "$work/build.log"
}
push=(); transport=(); direct=()
for i in 1 2 3 4 5; do
  commit "push $i"
  push+=($(until_built git -C "$repo" push "ssh://127.0.0.1:$port/web" main))
  commit "transport $i"
  a=$(date +%s%N); git -C "$repo" push -q "ssh://127.0.0.1:$port/web" HEAD:refs/heads/bench-$i; b=$(date +%s%N)
  transport+=($(ms "$a" "$b"))
  commit "direct $i"
  a=$(date +%s%N); engine_build "bench/direct:$i" ""; b=$(date +%s%N)
  direct+=($(ms "$a" "$b"))
done
pm=$(median "${push[@]}"); tm=$(median "${transport[@]}"); dm=$(median "${direct[@]}")
echo "  git push until built (Slipway)      median ${pm} ms   (${push[*]})"
echo "  git push, no build (transport)      median ${tm} ms   (${transport[*]})"
echo "  engine build (curl POST /build)     median ${dm} ms   (${direct[*]})"
python3 -c "print(f'  ratio push / (engine build + transport): {$pm/($dm+$tm):.2f}  (target <= 1.10)')"
