#!/usr/bin/env bash
# The cost of tenant isolation (user namespaces, a network per app), before and
# after, measured in one run with two release builds of Slipway:
#  1. `ssh host run web true` (median of 20, after 3 warm-ups);
#  2. push-to-first-200: a new Procfile app pushed until nginx answers 200 for it
#     (median of 5, a new app each time, so each pays for its network).
# Target: after <= 1.15x before, for both.
# Usage: Benchmarks/isolation.sh [before-commit]   (default: 2235c9a, the last commit
# without isolation); the "before" binary is built in a git worktree under
# .build-baseline-src and built into .build-baseline (both ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
before=${1:-2235c9a}
scripts/setup.sh >/dev/null
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null

root=$PWD
# The baseline's sources in a worktree of their own, kept between runs (ignored by git).
tree=$root/.build-baseline-src
[ -d "$tree" ] || git worktree add -q --detach "$tree" "$before"
git -C "$tree" checkout -q --detach "$before"
(cd "$tree" && swift build -c release --product slipway --scratch-path "$root/.build-baseline" >/dev/null)
before_bin=$root/.build-baseline/release/slipway
# AFTER_BIN: a release build of this tree made elsewhere (e.g. --scratch-path .build-release).
after_bin=${AFTER_BIN:-}
if [ -z "$after_bin" ]; then
  swift build -c release --product slipway >/dev/null
  after_bin="$(swift build -c release --show-bin-path)/slipway"
fi

measure() {  # $1: label, $2: binary; prints "label run_ms push_ms"
  ( . Benchmarks/lib.sh "$2"
    repo=$work/app
    git init -q -b main "$repo"
    printf 'web: python3 -m http.server $PORT\n' > "$repo/Procfile"
    git -C "$repo" add . && git -C "$repo" -c user.email=b@b -c user.name=b commit -qm v1
    git -C "$repo" push -q "ssh://127.0.0.1:$port/web" main 2>/dev/null
    hyperfine -N --warmup 3 --runs 20 --style none --export-json "$work/run.json" \
      "ssh $ssh_opts -p $port 127.0.0.1 run web true" >/dev/null
    run=$(python3 -c "import json; print(round(json.load(open('$work/run.json'))['results'][0]['median']*1000))")
    pushes=()
    for i in 1 2 3 4 5; do
      a=$(date +%s%N)
      git -C "$repo" push -q "ssh://127.0.0.1:$port/app$i" main 2>/dev/null
      until [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: app$i.localhost" "http://127.0.0.1:$proxy/")" = 200 ]; do sleep 0.02; done
      b=$(date +%s%N)
      pushes+=($(ms "$a" "$b"))
    done
    echo "$1 $run $(median "${pushes[@]}") ${pushes[*]}" )
}

# Interleaved, so drift on the machine hits both alike.
results=()
for round in 1 2; do
  results+=("$(measure before "$before_bin")")
  results+=("$(measure after "$after_bin")")
done
printf '%s\n' "${results[@]}" | python3 -c '
import sys, statistics
rows = [l.split() for l in sys.stdin if l.strip()]
def med(label, col): return statistics.median(int(r[col]) for r in rows if r[0] == label)
for name, col in (("ssh run web true", 1), ("push to first 200", 2)):
    b, a = med("before", col), med("after", col)
    print(f"  {name:<18} before {b:6.0f} ms   after {a:6.0f} ms   ratio {a/b:.2f}  (target <= 1.15)")
print("  raw rows (label, run ms, push ms, each push ms):")
for r in rows: print("   ", " ".join(r))
'
