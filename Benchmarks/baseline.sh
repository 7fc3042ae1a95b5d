# Shared by the before/after benchmarks (sourced, not run): two release builds of
# Slipway. Sets before_bin (the commit $1, built from a git worktree under
# .build-baseline-src into .build-baseline, both ignored by git and kept between
# runs) and after_bin (AFTER_BIN, a release build of this tree made elsewhere, e.g.
# with --scratch-path .build-release; else built here).
# Usage: . Benchmarks/baseline.sh <before-commit>
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh >/dev/null
command -v hyperfine >/dev/null || apt-get install -y -qq hyperfine >/dev/null
root=$PWD
tree=$root/.build-baseline-src
[ -d "$tree" ] || git worktree add -q --detach "$tree" "$1"
git -C "$tree" checkout -q --detach "$1"
(cd "$tree" && swift build -c release --product slipway --scratch-path "$root/.build-baseline" >/dev/null)
before_bin=$root/.build-baseline/release/slipway
after_bin=${AFTER_BIN:-}
if [ -z "$after_bin" ]; then
  swift build -c release --product slipway >/dev/null
  after_bin="$(swift build -c release --show-bin-path)/slipway"
fi

# Inside a Benchmarks/lib.sh server: a Procfile app's repo at $repo, pushed as `web`.
push_web() {
  repo=$work/app
  git init -q -b main "$repo"
  printf 'web: python3 -m http.server $PORT\n' > "$repo/Procfile"
  git -C "$repo" add . && git -C "$repo" -c user.email=b@b -c user.name=b commit -qm v1
  git -C "$repo" push -q "ssh://127.0.0.1:$port/web" main 2>/dev/null
}
# The median ms of 20 runs (after 3 warm-ups) of `ssh host $*`.
ssh_median() {
  hyperfine -N --warmup 3 --runs 20 --style none --export-json "$work/hf.json" "ssh $ssh_opts -p $port 127.0.0.1 $*" >/dev/null
  python3 -c "import json; print(round(json.load(open('$work/hf.json'))['results'][0]['median']*1000))"
}
# ms from pushing $repo as the new app $1 to nginx's first 200 for it.
push_to_200() {
  local a; a=$(date +%s%N)
  git -C "$repo" push -q "ssh://127.0.0.1:$port/$1" main 2>/dev/null
  until [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $1.localhost" "http://127.0.0.1:$proxy/")" = 200 ]; do sleep 0.02; done
  ms "$a" "$(date +%s%N)"
}
# Runs `measure before|after <bin>` twice each, interleaved so drift on the machine
# hits both alike, then prints each column's medians and ratio (columns named by
# the arguments, in the order `measure` prints them after its label) and the raw rows.
compare() {
  local rows=() round
  for round in 1 2; do
    rows+=("$(measure before "$before_bin")")
    rows+=("$(measure after "$after_bin")")
  done
  printf '%s\n' "${rows[@]}" | python3 -c '
import sys, statistics
names = sys.argv[1:]
rows = [l.split() for l in sys.stdin if l.strip()]
def med(label, col): return statistics.median(int(r[col]) for r in rows if r[0] == label)
for col, name in enumerate(names, start=1):
    b, a = med("before", col), med("after", col)
    print(f"  {name:<36} before {b:6.0f} ms   after {a:6.0f} ms   ratio {a/b:.2f}")
print("  raw rows (label, then " + ", ".join(names) + ", then the rest):")
for r in rows: print("   ", " ".join(r))
' "$@"
}
